//! What can go wrong when publishing, reading and subscribing, as types.

use crate::{
    event::EventError,
    registry::{ChannelError, TooManyChannels},
    store::StoreError,
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
    /// The hub holds its maximum number of channels.
    #[error(transparent)]
    TooManyChannels(#[from] TooManyChannels),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubscribeError {
    /// Whether the same request may succeed later (everything but an invalid channel name).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Self::Channel(_))
    }
}
