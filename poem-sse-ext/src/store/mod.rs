//! The replay store: one ordered, bounded log of encoded frames per channel.
//!
//! The store is the only buffer in the crate. Publishing appends a frame, encoded once, to the
//! channel's [`ChannelLog`]; every open stream is a [`LogCursor`] into that log plus a waker, so a
//! publish costs the same whether nobody or 100,000 clients listen, and a slow reader costs its
//! cursor and nothing more.
//!
//! A [`ReplayStore`] hands out one [`StoreChannel`] per channel; the [`Hub`](crate::Hub) keeps
//! them in its channel registry (the only one: stores keep no map of their own that could grow
//! or refuse differently). [`MemoryStore`] is the default. A store shared by several instances
//! (Redis Streams) keeps its history elsewhere and fills the same kind of [`ChannelLog`] once per
//! channel from one reader task per instance, so replay, live delivery and the reset signal are
//! one mechanism whatever the store.
//!
//! ```
//! use std::sync::Arc;
//! use poem_sse_ext::{store::{MemoryStore, ReplayStore, Retention}, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new(Retention::default().max_events(100)));
//! let prices = store.channel("prices");
//! let first = prices.append(&poem_sse_ext::Event::text("1")).await?;
//! let second = prices.append(&Event::text("2")).await?;
//! // A client that saw `first` resumes exactly after it.
//! let sub = prices.subscribe(Some(first.as_str())).await?;
//! assert!(sub.reset.is_none());
//! assert_eq!(prices.head().await?, second);
//! # Ok(())
//! # }
//! ```

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::wire::Event;
use crate::wire::{EventId, Published, Recent, Reset, ResetReason};

mod budget;
mod idempotency;
mod log;
mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub(crate) mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisStore, RedisStoreBuilder, RedisStoreError};
pub(crate) use log::DEFAULT_MAX_CHUNK_BYTES;
pub use log::{ChannelLog, CursorItem, LogCursor};
pub use memory::{MemoryStore, DEFAULT_HISTORY_BUDGET};

/// A boxed future, as returned by [`ReplayStore`] methods (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`StoreChannel::subscribe`] hands the hub: the reset signal, if any, and a cursor that
/// replays the retained frames after the resume point, then delivers live frames.
pub struct Subscription {
    /// Set when the resume point could not be honoured; sent before anything else.
    pub reset: Option<Reset>,
    /// The cursor into the channel's shared log: replay first, then live frames.
    pub cursor: LogCursor,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("reset", &self.reset)
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// A failure of the store itself. The endpoint answers `503`; publishers get an `Err`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend did not answer in time. For an append, **the outcome is unknown**: the event
    /// may still be stored and delivered.
    #[error("replay store did not answer {operation} within {timeout:?}; the outcome is unknown")]
    Timeout {
        /// What was asked (`append`, `subscribe`, ...).
        operation: &'static str,
        /// How long the store waited.
        timeout: Duration,
    },
    /// The backend can not be reached; nothing was done.
    #[error("replay store unreachable: {0}")]
    Connection(String),
    /// The backend's key for this channel holds something the store did not write.
    #[error("the store's key `{key}` holds a value of another type ({detail}); remove the key to use this channel")]
    WrongKeyType {
        /// The backend key.
        key: String,
        /// What the backend said.
        detail: String,
    },
    /// The backend answered with an error.
    #[error("replay store failed: {0}")]
    Backend(String),
    /// The encoded event is larger than the channel's byte bound; it could never be retained.
    #[error(
        "encoded event is {size} bytes, larger than the channel's history bound of {limit} bytes"
    )]
    TooLarge {
        /// Size of the encoded frame.
        size: usize,
        /// The channel's `max_bytes`.
        limit: usize,
    },
}

impl StoreError {
    /// Whether an append that failed with this error may still have been stored (a timeout):
    /// retrying it may store the event twice.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// How much history each channel keeps. Every bound is enforced: the oldest events are evicted
/// as soon as any one is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept per channel (default 1,000).
    pub max_events: usize,
    /// Most bytes of encoded frames kept per channel (default 4 MiB).
    pub max_bytes: usize,
    /// Oldest event kept, by age (default 1 hour).
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_events: 1_000,
            max_bytes: 4 << 20,
            max_age: Duration::from_secs(3_600),
        }
    }
}

impl Retention {
    /// Sets [`Retention::max_events`] (at least 1).
    #[must_use]
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n.max(1);
        self
    }

    /// Sets [`Retention::max_bytes`] (at least 1).
    #[must_use]
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Sets [`Retention::max_age`].
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
}

/// Whether the store can serve right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Publishing and subscribing work.
    Ok,
    /// The backend is unreachable; open streams stay open with heartbeats.
    Degraded(String),
}

/// Where a [`Hub`](crate::Hub) keeps its channels' history: a source of [`StoreChannel`]s.
///
/// Implementations must:
/// - give every appended event an id greater than all before it on that channel;
/// - in [`subscribe`](StoreChannel::subscribe), start live delivery *before* reading history, so
///   that an event appended meanwhile is delivered exactly once;
/// - answer a resume point they can not honour with [`Subscription::reset`], never a silent gap;
/// - enforce every [`Retention`] bound.
///
/// The methods return boxed futures so that stores can be used as `Arc<dyn ReplayStore>`.
pub trait ReplayStore: Send + Sync + 'static {
    /// The store's side of channel `name`. The hub calls it when it registers the channel and
    /// keeps the handle while the channel is registered, so a store needs no registry of its own.
    /// `name` is already validated (`[A-Za-z0-9_.-]{1,64}`).
    fn channel(self: Arc<Self>, name: &str) -> Arc<dyn StoreChannel>;

    /// Whether the store can serve right now.
    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
}

/// One channel of a [`ReplayStore`]: its log, and cursors into it.
pub trait StoreChannel: Send + Sync + 'static {
    /// Appends `event` (which carries no id of its own) and returns its id.
    fn append<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<EventId, StoreError>>;

    /// Appends `event` unless an event was already appended under idempotency `key` within
    /// `window`: then nothing is stored and the first event's id is returned, with
    /// [`Published::duplicate`] set. Checking and appending are one atomic step, also between
    /// instances sharing a backend.
    fn append_once<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Published, StoreError>>;

    /// Opens a cursor after `last_event_id`, or at the head when it is `None`.
    ///
    /// `last_event_id` is untrusted client input: any value must give a subscription (with a
    /// [`Reset`] where it can not be honoured), never an error or a panic.
    fn subscribe<'a>(
        &'a self,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>>;

    /// The id of the newest event (an id meaning "the beginning" when there is none): render a
    /// page's state together with it, and the page's stream resumes exactly after it.
    fn head(&self) -> BoxFuture<'_, Result<EventId, StoreError>>;

    /// The newest retained frames, at most `max`, with the head they lead up to.
    fn recent(&self, max: usize) -> BoxFuture<'_, Result<Recent, StoreError>>;

    /// Whether this process holds nothing of the channel that a client could still ask for (no
    /// retained events here): the hub forgets such a channel once no stream reads it.
    fn is_empty(&self) -> bool;
}
