//! [`RunError`]: what can go wrong when starting, feeding, following or cancelling a run.

use poem::{error::ResponseError, http::StatusCode};

use super::end::EndReason;
use crate::hub::error::{PublishError, ReadError, SubscribeError};

/// Why a run operation failed. As an HTTP answer (it is a poem `ResponseError`): `404` for a run
/// that does not exist (any more), `409` for appending to an ended run, `503` for a full registry
/// or a store failure; each with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// No run by that id here: it never existed, is not an id, or ended more than its time to
    /// live ago.
    #[error("no run `{id}`: it never existed, or it ended more than its time to live ago")]
    NotFound {
        /// The id asked for, shortened if long.
        id: String,
    },
    /// The registry holds its maximum of runs and all of them are running.
    #[error(
        "too many runs: at most {limit} at once, and all are running; try again when one ends"
    )]
    TooManyRuns {
        /// [`RunsBuilder::max_runs`](crate::run::RunsBuilder::max_runs).
        limit: usize,
    },
    /// The run ended; nothing more can be appended.
    #[error("the run has ended ({reason}): nothing more can be appended")]
    Ended {
        /// Why it ended.
        reason: EndReason,
    },
    /// The append would pass the run's bound on events: the run ended with
    /// [`EndReason::Failed`].
    #[error("the run passed its bound of {limit} events and ended as failed")]
    TooManyEvents {
        /// [`RunsBuilder::max_events`](crate::run::RunsBuilder::max_events).
        limit: usize,
    },
    /// The append would pass the run's bound on bytes: the run ended with
    /// [`EndReason::Failed`].
    #[error("the run passed its bound of {limit} bytes of events and ended as failed")]
    TooManyBytes {
        /// [`RunsBuilder::max_bytes`](crate::run::RunsBuilder::max_bytes).
        limit: usize,
    },
    /// The event carries an id or a reserved name; a run's events get ids from the store.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Reading the run's log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The follower's stream could not be opened (a cap, shutdown, the store).
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
}

impl RunError {
    pub(crate) fn not_found(id: &str) -> Self {
        let mut shown: String = id.chars().take(80).collect();
        if shown.len() < id.len() {
            shown.push('…');
        }
        Self::NotFound { id: shown }
    }
}

impl ResponseError for RunError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Ended { .. } | Self::TooManyEvents { .. } | Self::TooManyBytes { .. } => {
                StatusCode::CONFLICT
            }
            Self::Publish(err) => err.status(),
            Self::Read(err) => err.status(),
            Self::Subscribe(err) => err.status(),
            Self::TooManyRuns { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}
