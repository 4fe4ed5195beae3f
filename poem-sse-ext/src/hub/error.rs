//! What can go wrong when publishing, reading and subscribing, as types.

use crate::{
    hub::admission::{Refusal, RefusalReason},
    hub::registry::{ChannelError, TooManyChannels},
    store::StoreError,
    wire::EventError,
};

/// Why a publish failed. Nothing already stored is affected by a failed publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The channel name is not valid.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The event carries an id; a hub's store assigns ids itself.
    #[error("published events get their id from the store: remove the id `{0}`")]
    HasId(String),
    /// The event could not be built.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// The idempotency key is empty, longer than 256 bytes, or not visible ASCII.
    #[error("invalid idempotency key: use 1 to 256 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// The hub holds its maximum number of channels.
    #[error(transparent)]
    TooManyChannels(#[from] TooManyChannels),
    /// The store refused or failed; see [`StoreError::outcome_unknown`] for whether the event
    /// may still have been stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    /// Whether the event may still have been stored (the store timed out): retrying without an
    /// idempotency key may publish it twice; with [`Hub::publish_once`](crate::Hub::publish_once)
    /// a retry is safe.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Store(err) if err.outcome_unknown())
    }
}

/// Why reading a channel's head or recent events failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The channel name is not valid.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The hub holds its maximum number of channels.
    #[error(transparent)]
    TooManyChannels(#[from] TooManyChannels),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The channel name is not valid.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The set of channels is empty or too large.
    #[error("invalid set of channels: {0}")]
    InvalidSet(String),
    /// Not now: a cap, the connect rate, or shutdown (see [`Refusal::reason`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubscribeError {
    /// Whether the same request may succeed later (everything but an invalid channel name or
    /// set).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Self::Channel(_) | Self::InvalidSet(_))
    }

    /// Why the stream was refused, for temporary refusals.
    pub fn reason(&self) -> Option<RefusalReason> {
        match self {
            Self::Channel(_) | Self::InvalidSet(_) => None,
            Self::Refused(refusal) => Some(refusal.reason()),
            Self::Store(_) => Some(RefusalReason::Store),
        }
    }

    /// Refusals of this client in a row (0 when not counted per client): a retry hint should
    /// grow with it, so that a client reconnecting in a tight loop backs off.
    pub fn streak(&self) -> u32 {
        match self {
            Self::Refused(refusal) => refusal.streak(),
            _ => 0,
        }
    }
}

impl From<TooManyChannels> for SubscribeError {
    fn from(full: TooManyChannels) -> Self {
        Self::Refused(
            Refusal::new(RefusalReason::MaxChannels, full.limit).on_channel(&full.channel),
        )
    }
}
