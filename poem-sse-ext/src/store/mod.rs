//! The replay store: one ordered, bounded log of encoded frames per channel.
//!
//! The store is the only buffer in the crate. Publishing appends a frame, encoded once, to the
//! channel's [`ChannelLog`]; every open stream is a [`LogCursor`] into that log plus a waker, so a
//! publish costs the same whether nobody or 100,000 clients listen, and a slow reader costs its
//! cursor and nothing more.
//!
//! [`MemoryStore`] is the default. A store shared by several instances (Redis Streams) keeps its
//! history elsewhere and feeds the same [`ChannelLog`] from one reader task per instance: the
//! endpoint never knows the difference.
//!
//! ```
//! use poem_sse_ext::{store::{MemoryStore, ReplayStore, Retention}, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new(Retention::default().max_events(100));
//! let first = store.append("prices", &Event::text("1")).await?;
//! let second = store.append("prices", &Event::text("2")).await?;
//! // A client that saw `first` resumes exactly after it.
//! let sub = store.subscribe("prices", Some(first.as_str())).await?;
//! assert!(sub.reset.is_none());
//! assert_eq!(store.head("prices").await?, second);
//! # Ok(())
//! # }
//! ```

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::Event;

mod log;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder, RedisStoreError};
pub use log::{ChannelLog, CursorItem, LogCursor};
pub use memory::MemoryStore;

/// A boxed future, as returned by [`ReplayStore`] methods (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The id a store gave an event: an opaque string to clients, ordered inside its store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(Arc<str>);

impl EventId {
    /// Wraps an id made by a store.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as sent in the `id:` field.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Why a stream could not resume exactly where the client asked; sent as the reset signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetReason {
    /// Events after the resume point were evicted (by count, bytes or age) before the client read
    /// them: the client missed events and must refresh its state.
    Evicted,
    /// The resume point comes from another epoch of the store (the process restarted with the
    /// in-memory store, or the Redis stream was recreated).
    Epoch,
    /// The resume point is not an id this store issued (malformed, too long, or ahead of the log).
    Unknown,
}

impl ResetReason {
    /// The reason as written in the reset signal: `evicted`, `epoch` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Epoch => "epoch",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The explicit signal that replaces a silent gap.
///
/// On the wire it is an event of type [`crate::RESET_EVENT`] (`sse-reset`) whose `id` is
/// `resume_from` and whose data is `{"reason": "<reason>", "resume_from": "<id>"}`. The stream
/// goes on live from `resume_from`; the client should refresh its state (which the server renders
/// together with the id it corresponds to) and continue from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// Why the resume point could not be honoured.
    pub reason: ResetReason,
    /// The id the stream continues after: the channel's head when the signal was made.
    pub resume_from: EventId,
}

/// What [`ReplayStore::subscribe`] hands the endpoint: replay, then live frames.
pub struct Subscription {
    /// Set when the resume point could not be honoured; sent before anything else.
    pub reset: Option<Reset>,
    /// Encoded frames to send before the cursor's, for stores whose history is not in the local
    /// log (Redis). Empty for [`MemoryStore`], whose cursor replays from the log itself.
    pub replay: Vec<Bytes>,
    /// The cursor that delivers every frame after the replay, then live frames.
    pub cursor: LogCursor,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("reset", &self.reset)
            .field("replay", &self.replay.len())
            .finish_non_exhaustive()
    }
}

/// A failure of the store itself; the endpoint answers `503` and publishers get an `Err`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend can not be reached; nothing was stored.
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
    /// The store already holds its maximum number of channels.
    #[error("too many channels: the store holds at most {0}")]
    TooManyChannels(usize),
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
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n.max(1);
        self
    }

    /// Sets [`Retention::max_bytes`] (at least 1).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Sets [`Retention::max_age`].
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

/// A per-channel log of encoded frames with ordered ids.
///
/// Implementations must:
/// - give every appended event an id greater than all before it on that channel;
/// - in [`subscribe`](ReplayStore::subscribe), start live delivery *before* reading history, so
///   that an event appended meanwhile is delivered exactly once;
/// - answer a resume point they can not honour with [`Subscription::reset`], never a silent gap;
/// - enforce every [`Retention`] bound.
///
/// The methods return boxed futures so that the store can be used as `Arc<dyn ReplayStore>`.
pub trait ReplayStore: Send + Sync + 'static {
    /// Appends `event` (which carries no id of its own) to `channel`'s log and returns its id.
    fn append<'a>(
        &'a self,
        channel: &'a str,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<EventId, StoreError>>;

    /// Opens a cursor on `channel` after `last_event_id`, or at the head when it is `None`.
    ///
    /// `last_event_id` is untrusted client input: any value must give a subscription (with a
    /// [`Reset`] where it can not be honoured), never an error or a panic.
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>>;

    /// The id of the newest event of `channel` (an id meaning "the beginning" when it has none):
    /// render a page's state together with it, and the page's stream resumes exactly after it.
    fn head<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<EventId, StoreError>>;

    /// Whether the store can serve right now.
    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
}
