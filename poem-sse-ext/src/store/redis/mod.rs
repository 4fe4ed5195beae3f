//! The Redis Streams replay store: see [`RedisStore`].
//!
//! The files follow an event: `channel.rs` publishes it (`XADD`; `once.rs` once per idempotency
//! key) and opens streams; `backfill.rs` fills a channel's log with its history once;
//! `reader.rs` appends every new entry to the log; `gap.rs` decides when the stream lost entries
//! the log can not replace, and the log turns that into its one reset signal. `follow.rs` is a
//! channel's state in this process, `shared.rs` what the handles and the reader share,
//! `reply.rs` the parsing of Redis's replies, `error.rs`, `commands.rs` and `health.rs` what
//! failures mean. `keys.rs` names the keys (and, on a Redis Cluster, spreads channels over
//! buckets of one slot each); `topology.rs` finds the node a reader connects to.

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{ReplayStore, Retention, StoreChannel, StoreHealth};

mod backfill;
mod builder;
mod channel;
pub(crate) mod commands;
mod error;
mod follow;
mod gap;
mod health;
mod keys;
mod once;
mod reader;
mod reply;
mod shared;
pub(crate) mod topology;

pub use builder::{RedisStoreBuilder, RedisStoreError};

use channel::RedisChannel;
use reader::ReaderTask;
use shared::Shared;

/// A [`ReplayStore`] on Redis Streams, shared by every instance of an app (feature `redis`).
///
/// ```no_run
/// use std::time::Duration;
/// use poem::Route;
/// use poem_sse_ext::{store::{RedisStore, Retention}, Event, Hub};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("myapp:sse")
///     .retention(Retention::default().max_events(1_000).max_age(Duration::from_secs(600)))
///     .connect()
///     .await?;
/// let hub = Hub::builder().store(store).build();
/// let app = Route::new().at("/events/:channel", hub.endpoint());
/// // Published here, delivered to the subscribers of every instance on the same Redis:
/// hub.publish("prices", Event::text("1.08")).await?;
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// - **One stream per channel**, at key `<prefix>:<channel>`. Publishing is one round trip:
///   `XADD <key> MAXLEN ~ <max_events> * f <frame>` (plus `XTRIM <key> MINID <now - max_age>`
///   in the same pipeline, as `XADD` can not take both bounds). The frame is the event encoded
///   once, *without* its id; the stream id Redis gives it (`<ms>-<seq>`) is the event id, the
///   same on every instance. Each instance writes the `id:` line onto the frame once, when it
///   reads the entry.
/// - **One log per channel per instance.** The first stream (or [`StoreChannel::recent`]) of a
///   channel on this instance reads the channel's retained history from Redis once, newest
///   first, in batches bounded by the retention's count and bytes, into a [`ChannelLog`];
///   streams that open meanwhile wait for that one read instead of making their own. From then on
///   **one reader task per instance** appends every new entry of the channels followed here (one
///   `XREAD BLOCK` over all of them, on a connection of its own). Streams are cursors into those
///   logs, exactly as with the [`MemoryStore`](crate::store::MemoryStore): the same replay (the
///   frames after the resume point, joined into chunks), the same reset signal, the same cost
///   (a publish costs one entry per instance, never one message per client, and clients never
///   hold a Redis connection).
/// - [`StoreChannel::head`] asks Redis (`XINFO STREAM`): the newest id on any instance.
///   [`StoreChannel::recent`] reads the log, which follows Redis by the reader's latency; its
///   frames and its head always match, so a page rendered from it resumes exactly.
/// - A channel is followed until no stream has read it here for the
///   [`idle_grace`](RedisStoreBuilder::idle_grace) (30 s by default); its log is then dropped.
///
/// [`ChannelLog`]: crate::store::ChannelLog
///
/// # Bounds
///
/// Every instance must use the same [`Retention`]. The count bound is approximate in Redis
/// (`MAXLEN ~` trims whole macro nodes, which is much cheaper) but exact for clients: the log
/// holds at most `max_events` events and `max_bytes` bytes, so a resume point with more after it
/// is answered with [`ResetReason::Evicted`], as the in-memory store would. The age bound is
/// enforced with `XTRIM MINID` on every publish and history read, comparing the stream ids
/// (stamped by the Redis server's clock) with this instance's clock; the log ages entries by
/// their ids too.
///
/// [`ResetReason::Evicted`]: crate::store::ResetReason::Evicted
///
/// # Resume points and resets
///
/// | `Last-Event-ID` | answer |
/// |---|---|
/// | not a stream id (`<ms>-<seq>`, both `u64`) | `Unknown` |
/// | after the stream's last generated id | `Epoch` |
/// | older than what the log holds (trimmed in Redis, or more than the retention before the head) | `Evicted` |
/// | otherwise | exact replay |
///
/// A well-formed id *ahead* of the stream is answered with `Epoch`, not `Unknown`: the stream
/// ids are the Redis server's clock, so such an id almost always means the stream was recreated
/// since the client read it (Redis restarted without persistence, or was flushed); the client's
/// state belongs to an earlier life of the stream. An id the stream issued that this instance's
/// reader has not read yet (the client saw it through another instance a moment ago) resumes
/// exactly: the stream continues with what follows it as soon as the reader has it.
///
/// An id that has itself been trimmed is answered with `Evicted` even if the client had in fact
/// seen everything up to the oldest retained entry: Redis does not record the newest trimmed id,
/// so the store can not tell "just at the edge" from "behind". Redis 7.0 or later is required
/// (`XINFO STREAM` reports `entries-added` and `max-deleted-entry-id`). The keys under the
/// prefix belong to the store: other programs must not write other types there or remove entries
/// with `XDEL`.
///
/// # When Redis loses entries
///
/// When the reader finds that the stream lost entries it had not read (trimmed while it was cut
/// off, or the stream was deleted or Redis restarted without persistence), the channel's log
/// breaks: every open stream of the channel gets one reset (`evicted`, or `epoch` for a lost
/// stream), counted as a reset in the hub's metrics, and continues with what Redis has from
/// there on (after an `epoch` reset: every event of the new stream).
///
/// # When Redis is down
///
/// - Publishing returns [`StoreError::Connection`](crate::store::StoreError::Connection), or
///   [`StoreError::Timeout`](crate::store::StoreError::Timeout) (the event may still have been
///   stored) within the command timeout: nothing is dropped silently, the publisher decides.
/// - Open streams stay open; the hub's heartbeats keep them alive. A stream of a channel not
///   followed here yet needs Redis to read the history, and gets `503` with `Retry-After`.
/// - [`ReplayStore::health`] returns [`StoreHealth::Degraded`] with the reason.
/// - The reader reconnects with exponential backoff and continues `XREAD` from the last id it
///   read on each channel, so the events published meanwhile (through other instances, or after
///   Redis came back) are delivered, or a reset says what was lost.
///
/// # A key of the wrong type
///
/// If a key of the store holds something else than a stream (someone ran `SET <prefix>:news x`),
/// only channel `news` is affected:
///
/// - publishing or subscribing there fails with
///   [`StoreError::WrongKeyType`](crate::store::StoreError::WrongKeyType), which names the key
///   and says it is not a stream (the endpoint answers `503` with that message and a
///   `Retry-After`);
/// - the reader logs a warning naming the channel, stops reading that key, and keeps reading
///   every other channel; [`ReplayStore::health`] stays [`StoreHealth::Ok`]. It checks the key
///   again every second (and at once when someone subscribes there): when the key is a stream
///   again or gone, the channel's open streams continue, after an `Epoch` reset (the stream they
///   followed was lost when the key was overwritten).
///
/// # On a Redis Cluster
///
/// With the feature `redis-cluster`, `RedisStore::cluster_builder([seed, ...])` runs the same
/// store (the same retention, timeouts, publish, idempotent publish, history and reset paths) on
/// a Redis Cluster. What changes is where keys live and how the readers find them:
///
/// - **Keys.** Channel `c` is stored at `<prefix>:{<tag>}:<c>`, its idempotency keys beside it,
///   where `<tag>` is one of 16 *bucket* tags picked by a fixed hash of the channel's name. All
///   of a channel's keys share one slot, so the idempotent append stays one script on one node,
///   and a failover rolls a stream and its idempotency keys back together. Buckets rather than a
///   tag per channel: a blocking read covers one slot, so with a tag per channel every followed
///   channel would hold a blocking connection of its own; with buckets an instance holds at most
///   16, however many channels it follows. The tags are chosen to hash to evenly spaced slots
///   (`1024 * i + 512`), so masters with even slot ranges get an even share of buckets (bare
///   `{0}`..`{15}` would not), and a reshard moves whole buckets. The key format is fixed: the
///   same on every instance and every version.
/// - **Commands** (publish, history reads, `head`) go through redis-rs's cluster connection,
///   which routes them by key and follows `MOVED`/`ASK`.
/// - **Readers.** One reader per bucket in use blocks in `XREAD` on a connection of its own to
///   the master that owns the bucket's slot (a blocked read on the shared cluster connection
///   would stall every other command to that node). `MOVED` after a reshard, `UNBLOCKED` from a
///   demoted master, `CLUSTERDOWN` while a failed master awaits its replacement, `TRYAGAIN`
///   mid-migration and lost connections are topology, not data: the reader drops its connection,
///   backs off with jitter, asks the cluster who owns the slot now, and resumes each channel from
///   its own position, so no entry is skipped or read twice.
/// - **Health** is degraded, naming the node, while a reader has had no reachable master for
///   its slots for longer than the
///   [`unreachable_grace`](RedisStoreBuilder::unreachable_grace) (1 s by default), and ready
///   again by itself once it has one.
/// - [`RedisStoreBuilder::connect`] refuses a single Redis given to the cluster builder and a
///   cluster node given to [`RedisStore::builder`] (which would acknowledge publishes it can
///   never read back), with [`RedisStoreError`]s that say which is which.
///
/// # When a failover loses acknowledged events
///
/// Redis replicates asynchronously: a publish is acknowledged once the master has it, and a
/// replica promoted after the master died (or a node behind an address that moved to a promoted
/// replica, on one node) may lack the last ones. Stream ids are the master's clock, so the new
/// master's next ids usually sort after the lost ones, and a reader that only asked for "what
/// follows my position" would never notice; if the new master has got more entries than were
/// lost, even the stream's counters look like a stream that only grew. So each time a reader
/// (re)connects, and every 10 s, it checks that each channel's position is still an entry of
/// the stream. Where it is not, Redis lost events this instance delivered: a WARN names the
/// channel, the channel's log is refilled from what Redis holds, and every open stream of the
/// channel gets one `epoch` reset whose `resume_from` is the newest event Redis kept (what the
/// client holds after it is not Redis's), counted in the channel's `resets`; the events that
/// follow are those Redis has. A client that comes back later with the id of a lost event gets
/// the same reset. Events published meanwhile are never skipped. The check compares ids: it
/// relies on the new master's ids sorting after the lost ones, which holds unless the new master
/// writes within the millisecond of the last lost write (a promotion takes far longer).
///
/// The window is the replication lag: on a healthy local network, milliseconds of publishes.
/// To narrow it, run Redis with `min-replicas-to-write 1` and `min-replicas-max-lag` (a master
/// cut from its replicas then refuses writes, which publishers see as errors), or have the
/// application send `WAIT 1 <ms>` after publishes it can not afford to lose. Neither makes
/// replication synchronous. Where a publisher must know that an event is stored exactly once,
/// use [`Hub::publish_once`](crate::Hub::publish_once) with an idempotency key and retry on
/// error: a retry of an event Redis lost stores it again (after the reset, clients may then see
/// it again, with a new id), one that Redis kept gets the first id back.
///
/// # Example: any instance resumes exactly
///
/// ```no_run
/// use std::sync::Arc;
/// use futures_util::StreamExt;
/// use poem_sse_ext::{store::{CursorItem, RedisStore, ReplayStore, Retention}, Event};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(
///     RedisStore::builder("redis://127.0.0.1:6379")
///         .retention(Retention::default().max_events(100))
///         .connect()
///         .await?,
/// );
/// let prices = Arc::clone(&store).channel("prices");
/// let first = prices.append(&Event::text("1")).await?;
/// let second = prices.append(&Event::text("2")).await?;
/// let third = prices.append(&Event::text("3")).await?;
/// // Any instance on the same Redis resumes exactly after `first`:
/// let mut sub = prices.subscribe(Some(first.as_str())).await?;
/// assert!(sub.reset.is_none());
/// // The missed events come from the log in one chunk.
/// let Some(CursorItem::Frames { count: 2, .. }) = sub.cursor.next().await else {
///     panic!("`2` and `3` replayed together");
/// };
/// assert_eq!(prices.head().await?, third);
/// # let _ = second;
/// # Ok(())
/// # }
/// ```
pub struct RedisStore {
    shared: Arc<Shared>,
    reader: Arc<ReaderTask>,
    #[cfg_attr(not(feature = "durable-streams"), allow(dead_code))]
    source: topology::Source,
}

impl RedisStore {
    /// A builder for a store on the Redis at `url` (`redis://host:port[/db]`; see
    /// [`redis::Client::open`](::redis::Client::open) for every form).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into())
    }

    /// A builder for a store on the Redis Cluster that `seeds` belong to (feature
    /// `redis-cluster`): `redis://host:port` URLs of any of its nodes, in any order (the first
    /// one that answers tells the others). See
    /// [On a Redis Cluster](RedisStore#on-a-redis-cluster).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster_builder<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> RedisStoreBuilder {
        RedisStoreBuilder::cluster(seeds.into_iter().map(Into::into).collect())
    }

    /// The Redis key of `channel`'s stream: `<prefix>:<channel>` (on a cluster
    /// `<prefix>:{<bucket tag>}:<channel>`).
    pub fn stream_key(&self, channel: &str) -> String {
        self.shared.stream_key(channel)
    }

    /// The retention every channel keeps.
    pub fn retention(&self) -> Retention {
        self.shared.retention
    }

    /// The command connection and where to open connections of one's own (for the Durable
    /// Streams backend on the same Redis).
    #[cfg(feature = "durable-streams")]
    pub(crate) fn link(&self) -> (commands::Commands, topology::Source) {
        (self.shared.commands.clone(), self.source.clone())
    }
}

impl ReplayStore for RedisStore {
    fn channel(self: Arc<Self>, name: &str) -> Arc<dyn StoreChannel> {
        Arc::new(RedisChannel {
            inner: self.shared.channel(name),
            shared: Arc::clone(&self.shared),
            _reader: Arc::clone(&self.reader),
        })
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.status()
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.keys.prefix())
            .field("retention", &self.shared.retention)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

// A poisoned lock only means a panic elsewhere while holding it; the data is plain values that
// are consistent between statements, so keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
