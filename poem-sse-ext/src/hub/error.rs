//! What can go wrong when publishing, reading and subscribing, as types.

use crate::{
    hub::admission::RefusalReason,
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
    /// The hub is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The hub has its maximum number of open streams.
    #[error("too many open streams: the server holds at most {limit}")]
    TooManyStreams {
        /// [`crate::HubBuilder::max_streams`].
        limit: usize,
    },
    /// The channel has its maximum number of open streams.
    #[error("too many open streams on channel `{channel}`: it holds at most {limit}")]
    TooManyStreamsOnChannel {
        /// The channel.
        channel: String,
        /// [`crate::HubBuilder::max_streams_per_channel`].
        limit: usize,
    },
    /// This client address has its maximum number of open streams.
    #[error("too many open streams from this address: at most {limit}")]
    TooManyStreamsForClient {
        /// [`crate::HubBuilder::max_streams_per_client`].
        limit: usize,
        /// Refusals of this client in a row.
        streak: u32,
    },
    /// This principal has its maximum number of open streams.
    #[error("too many open streams for this user: at most {limit}")]
    TooManyStreamsForPrincipal {
        /// [`crate::HubBuilder::max_streams_per_principal`].
        limit: usize,
    },
    /// This client address connects faster than [`crate::HubBuilder::connect_rate`] allows.
    #[error("too many connects from this address: slow down")]
    RateLimited {
        /// Refusals of this client in a row: the retry hint grows with it.
        streak: u32,
    },
    /// The hub holds its maximum number of channels.
    #[error(transparent)]
    TooManyChannels(#[from] TooManyChannels),
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
        Some(match self {
            Self::Channel(_) | Self::InvalidSet(_) => return None,
            Self::ShuttingDown => RefusalReason::ShuttingDown,
            Self::TooManyStreams { .. } => RefusalReason::MaxStreams,
            Self::TooManyStreamsOnChannel { .. } => RefusalReason::MaxStreamsPerChannel,
            Self::TooManyStreamsForClient { .. } => RefusalReason::MaxStreamsPerClient,
            Self::TooManyStreamsForPrincipal { .. } => RefusalReason::MaxStreamsPerPrincipal,
            Self::RateLimited { .. } => RefusalReason::RateLimited,
            Self::TooManyChannels(_) => RefusalReason::MaxChannels,
            Self::Store(_) => RefusalReason::Store,
        })
    }

    /// Refusals of this client in a row (0 when not counted per client): a retry hint should
    /// grow with it, so that a client reconnecting in a tight loop backs off.
    pub fn streak(&self) -> u32 {
        match self {
            Self::TooManyStreamsForClient { streak, .. } | Self::RateLimited { streak } => *streak,
            _ => 0,
        }
    }
}
