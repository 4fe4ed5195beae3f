//! The Redis Streams replay store: see [`RedisStore`].

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisError, RedisResult,
    ServerErrorKind, Value,
};
use bytes::Bytes;
use tokio::{sync::Notify, task::JoinHandle, time::Instant};

use super::{
    BoxFuture, ChannelLog, EventId, ReplayStore, Reset, ResetReason, Retention, StoreError,
    StoreHealth, Subscription,
};
use crate::{
    event::{frame_with_id, reset_frame},
    Event,
};

/// The stream field that holds the encoded frame.
const FIELD: &str = "f";
/// Longest `id: <ms>-<seq>\n` line the store writes (two `u64`s).
const ID_LINE_MAX: usize = "id: ".len() + 20 + 1 + 20 + 1;
/// How often the reader checks the followed streams for a gap even when nothing went wrong
/// (catches a `FLUSHALL` or a deleted key while the connection stayed up).
const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// How often the reader checks again the keys it stopped reading because they hold another
/// type than a stream (see [`RedisStore`], "A key of the wrong type").
const BAD_KEY_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Most entries one `XREAD` returns per stream.
const MAX_READ_COUNT: usize = 10_000;

/// Sends `PING` on the command connection; `Err` says why there was no answer in `timeout`.
async fn ping(commands: &ConnectionManager, timeout: Duration) -> Result<(), String> {
    let mut commands = commands.clone();
    let ping = Cmd::new().arg("PING").clone();
    match tokio::time::timeout(timeout, commands.send_packed_command(&ping)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Why a [`RedisStore`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisStoreError {
    /// The URL is not a Redis URL (`redis://host:port[/db]`, `rediss://`, `unix://`).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// [`RedisStoreBuilder::connect`] could not reach Redis.
    #[error("Redis can not be reached: {0}")]
    Unreachable(String),
    /// The store was built outside a tokio runtime; its reader task needs one.
    #[error("a RedisStore must be built inside a tokio runtime (it spawns its reader task)")]
    NoRuntime,
}

/// Configures and connects a [`RedisStore`]; made by [`RedisStore::builder`].
///
/// ```
/// use std::time::Duration;
/// use poem_sse_ext::store::{RedisStore, RedisStoreError, ReplayStore, Retention, StoreHealth};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let builder = RedisStore::builder("redis://127.0.0.1:1") // nothing listens there
///     .prefix("myapp:sse")
///     .retention(Retention::default().max_events(500))
///     .command_timeout(Duration::from_millis(500))
///     .connect_timeout(Duration::from_millis(200))
///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2));
///
/// // `connect` waits for Redis and fails when it does not answer...
/// assert!(matches!(builder.clone().connect().await, Err(RedisStoreError::Unreachable(_))));
/// // ... `connect_lazy` starts anyway, degraded until Redis answers.
/// let store = builder.connect_lazy().expect("a valid URL");
/// assert!(matches!(store.health(), StoreHealth::Degraded(_)));
/// assert_eq!(store.stream_key("prices"), "myapp:sse:prices");
///
/// assert!(matches!(
///     RedisStore::builder("http://example.com").connect_lazy(),
///     Err(RedisStoreError::InvalidUrl(_))
/// ));
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    retention: Retention,
    max_channels: usize,
    command_timeout: Duration,
    connect_timeout: Duration,
    block: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    idle_grace: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The prefix of the stream keys: channel `c` is stored at `<prefix>:<c>` (default `sse`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How much history each channel keeps (default [`Retention::default`]). Use the same value
    /// on every instance.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Most channels this instance follows at once (default 10,000); above it, subscribing
    /// fails with [`StoreError::TooManyChannels`]. Publishing is not limited.
    pub fn max_channels(mut self, n: usize) -> Self {
        self.max_channels = n.max(1);
        self
    }

    /// How long a command (publish, history read) may take before it fails with
    /// [`StoreError::Unavailable`] (default 2 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one attempt to open a connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The `BLOCK` time of the reader's `XREAD` (default 5 s): how often an idle reader goes
    /// back to Redis. Delivery latency does not depend on it.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(1));
        self
    }

    /// The delays between reconnection attempts: from `min`, doubling, up to `max`, with jitter
    /// (default 50 ms to 2 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// How long the reader keeps following a channel after its last subscriber here left
    /// (default 30 s), so that clients that reconnect at once do not cost a new registration.
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    /// Connects and waits until Redis answers, then starts the reader task.
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`], [`RedisStoreError::Unreachable`] when Redis does not
    /// answer within the connect timeout, or [`RedisStoreError::NoRuntime`].
    pub async fn connect(self) -> Result<RedisStore, RedisStoreError> {
        let store = self.connect_lazy()?;
        match ping(&store.commands, store.settings.command_timeout).await {
            Ok(()) => Ok(store),
            Err(reason) => Err(RedisStoreError::Unreachable(reason)),
        }
    }

    /// Starts the store without waiting for Redis: it reports
    /// [`StoreHealth::Degraded`] and refuses publishes until Redis answers. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`] or [`RedisStoreError::NoRuntime`].
    pub fn connect_lazy(self) -> Result<RedisStore, RedisStoreError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisStoreError::NoRuntime)?;
        let client = Client::open(self.url.as_str()).map_err(|err| {
            RedisStoreError::InvalidUrl(format!("{}: {err}", redacted(&self.url)))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(self.backoff_min)
            .set_max_delay(self.backoff_max);
        let commands =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|err| {
                RedisStoreError::InvalidUrl(format!("{}: {err}", redacted(&self.url)))
            })?;
        let settings = Settings {
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
            block: self.block,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            idle_grace: self.idle_grace,
        };
        let shared = Arc::new(Shared {
            prefix: self.prefix,
            retention: self.retention,
            max_channels: self.max_channels,
            channels: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            reader_down: Mutex::new(Some("connecting to Redis".to_owned())),
            commands_down: Mutex::new(None),
            commands_failing: AtomicBool::new(false),
            recheck: AtomicBool::new(false),
        });
        let reader = Reader {
            shared: Arc::clone(&shared),
            client,
            commands: commands.clone(),
            settings: settings.clone(),
        };
        let task = runtime.spawn(reader.run());
        Ok(RedisStore {
            shared,
            commands,
            settings,
            task,
        })
    }
}

/// A [`ReplayStore`] on Redis Streams, shared by every instance of an app (feature `redis`).
///
/// ```no_run
/// use std::time::Duration;
/// use poem::{get, Route};
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
/// let app = Route::new().at("/events/:channel", get(hub.endpoint()));
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
/// - **One reader task per instance** reads the channels that have subscribers here with one
///   `XREAD BLOCK` on a connection of its own, and appends what it reads to a per-channel
///   [`ChannelLog`] (the live window). Streams are cursors into those logs, exactly as with the
///   [`MemoryStore`](crate::store::MemoryStore): a publish costs one entry per instance, never one
///   message per client, and clients never hold a Redis connection.
/// - **Subscribing** first makes sure the reader follows the channel from a known stream id, then
///   reads the history after `Last-Event-ID` with `XRANGE`, and places the cursor at the end of
///   that replay: nothing published meanwhile is lost or sent twice.
///
/// # Bounds
///
/// Every instance must use the same [`Retention`]. The count bound is approximate in Redis
/// (`MAXLEN ~` trims whole macro nodes, which is much cheaper) but exact for clients: a resume
/// point with more than `max_events` events after it is answered with
/// [`ResetReason::Evicted`], as the in-memory store would. The same holds for `max_bytes`
/// (Redis has no byte bound; the replay is measured). The age bound is enforced with
/// `XTRIM MINID` on every publish and subscribe, comparing the stream ids (stamped by the Redis
/// server's clock) with this instance's clock.
///
/// # Resume points and resets
///
/// | `Last-Event-ID` | answer |
/// |---|---|
/// | not a stream id (`<ms>-<seq>`, both `u64`) | [`ResetReason::Unknown`] |
/// | after the stream's last generated id | [`ResetReason::Epoch`] |
/// | older than the oldest retained entry, or more than the retention after it | [`ResetReason::Evicted`] |
/// | otherwise | exact replay |
///
/// A well-formed id *ahead* of the stream is answered with `Epoch`, not `Unknown`: the stream
/// ids are the Redis server's clock, so such an id almost always means the stream was recreated
/// since the client read it (Redis restarted without persistence, or was flushed); the client's
/// state belongs to an earlier life of the stream. `resume_from` is the stream's last generated
/// id (`0-0` for a stream that does not exist yet).
///
/// An id that has itself been trimmed is answered with `Evicted` even if the client had in fact
/// seen everything up to the oldest retained entry: Redis does not record the newest trimmed id,
/// so the store can not tell "just at the edge" from "behind". Redis 7.0 or later is required
/// (`XINFO STREAM` reports `entries-added` and `max-deleted-entry-id`). The keys under the
/// prefix belong to the store: other programs must not write other types there or remove entries
/// with `XDEL`.
///
/// # When Redis is down
///
/// - [`ReplayStore::append`] returns [`StoreError::Unavailable`] within the command timeout:
///   nothing is dropped silently, the publisher decides.
/// - Open streams stay open; the hub's heartbeats keep them alive. New streams need Redis to
///   read the history and get `503` with `Retry-After`.
/// - [`ReplayStore::health`] returns [`StoreHealth::Degraded`] with the reason.
/// - The reader reconnects with exponential backoff and continues `XREAD` from the last id it
///   read on each channel, so the events published meanwhile (through other instances, or after
///   Redis came back) are delivered. If some were trimmed before it could read them, its streams
///   get an `Evicted` reset; if the stream was lost (Redis restarted without persistence), an
///   `Epoch` reset followed by every event of the new stream.
///
/// # A key of the wrong type
///
/// If a key of the store holds something else than a stream (someone ran `SET <prefix>:news x`),
/// only channel `news` is affected:
///
/// - publishing there fails with [`StoreError::Unavailable`], whose message names the key and
///   says it is not a stream;
/// - subscribing there fails the same way (the endpoint answers `503` with that message and a
///   `Retry-After`): there is no history to read and nothing to follow;
/// - the reader logs a warning naming the channel, stops reading that key, and keeps reading
///   every other channel; [`ReplayStore::health`] stays [`StoreHealth::Ok`]. It checks the key
///   again every second (and at once when someone subscribes there): when the key is a stream
///   again or gone, the channel's open streams continue, after an `Epoch` reset (the stream they
///   followed was lost when the key was overwritten).
///
/// # Example: any instance resumes exactly
///
/// ```no_run
/// use poem_sse_ext::{store::{RedisStore, ReplayStore, Retention}, Event};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .retention(Retention::default().max_events(100))
///     .connect()
///     .await?;
/// let first = store.append("prices", &Event::text("1")).await?;
/// let second = store.append("prices", &Event::text("2")).await?;
/// // Any instance on the same Redis resumes exactly after `first`:
/// let sub = store.subscribe("prices", Some(first.as_str())).await?;
/// assert!(sub.reset.is_none());
/// assert_eq!(sub.replay.len(), 1);
/// assert_eq!(store.head("prices").await?, second);
/// # Ok(())
/// # }
/// ```
pub struct RedisStore {
    shared: Arc<Shared>,
    commands: ConnectionManager,
    settings: Settings,
    task: JoinHandle<()>,
}

impl RedisStore {
    /// A builder for a store on the Redis at `url` (`redis://host:port[/db]`; see
    /// [`redis::Client::open`](::redis::Client::open) for every form).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "sse".to_owned(),
            retention: Retention::default(),
            max_channels: 10_000,
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            block: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            idle_grace: Duration::from_secs(30),
        }
    }

    /// The Redis key of `channel`'s stream: `<prefix>:<channel>`.
    pub fn stream_key(&self, channel: &str) -> String {
        self.shared.stream_key(channel)
    }

    /// The retention every channel keeps.
    pub fn retention(&self) -> Retention {
        self.shared.retention
    }

    /// Runs one command (or pipeline) within the command timeout; failures become
    /// [`StoreError::Unavailable`] and mark the store degraded while they last.
    async fn run<T>(
        &self,
        op: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        self.run_on(None, op).await
    }

    /// [`Self::run`] for commands on `key`: an error about the key's type says so.
    async fn run_on<T>(
        &self,
        key: Option<&str>,
        op: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.settings.command_timeout, op).await {
            Ok(Ok(value)) => {
                self.shared.commands_ok();
                Ok(value)
            }
            Ok(Err(err)) => {
                if is_connection_error(&err) {
                    let message = format!("redis: {err}");
                    self.shared.commands_failed(&message);
                    return Err(StoreError::Unavailable(message));
                }
                Err(match key {
                    Some(key) => key_unavailable(key, &err),
                    None => unavailable(err),
                })
            }
            Err(_) => {
                let message = format!(
                    "redis did not answer within {:?}",
                    self.settings.command_timeout
                );
                self.shared.commands_failed(&message);
                Err(StoreError::Unavailable(message))
            }
        }
    }

    async fn stream_info(&self, key: &str) -> Result<Option<StreamInfo>, StoreError> {
        let mut pipe = Pipeline::new();
        pipe.cmd("XINFO").arg("STREAM").arg(key);
        let mut commands = self.commands.clone();
        let mut replies: Vec<RedisResult<Value>> = self
            .run(pipe.ignore_errors().query_async(&mut commands))
            .await?;
        let reply = replies.pop().unwrap_or(Ok(Value::Nil));
        StreamInfo::from_reply(reply).map_err(|err| key_unavailable(key, &err))
    }

    /// The channel's entry in the reader's table, registered (at the stream's current last id)
    /// if it is not followed yet. From the moment this returns, every entry after that id reaches
    /// the channel's log.
    async fn follow(&self, channel: &str) -> Result<Arc<Channel>, StoreError> {
        let existing = lock(&self.shared.channels).get(channel).cloned();
        if let Some(followed) = existing {
            let bad = lock(&followed.state).bad.clone();
            if let Some(reason) = bad {
                // The reader stopped reading this key: ask it to look again now, so that a
                // repaired key does not wait for the next periodic check.
                self.shared.recheck.store(true, Ordering::Release);
                self.shared.wake.notify_one();
                return Err(StoreError::Unavailable(reason));
            }
            return Ok(followed);
        }
        let key = self.shared.stream_key(channel);
        let info = self.stream_info(&key).await?;
        let (start, added) = info.map_or((StreamId::ZERO, 0), |info| {
            (info.last_generated, info.entries_added)
        });
        let followed = {
            let mut channels = lock(&self.shared.channels);
            if let Some(followed) = channels.get(channel) {
                // Registered by a concurrent subscribe meanwhile: that one is as good.
                return Ok(Arc::clone(followed));
            }
            if channels.len() >= self.shared.max_channels {
                return Err(StoreError::TooManyChannels(self.shared.max_channels));
            }
            let followed = Arc::new(Channel {
                name: channel.into(),
                key,
                start,
                log: ChannelLog::new(self.shared.retention, start.key(), start.event_id()),
                state: Mutex::new(ReadState {
                    position: start,
                    added,
                    shift: 0,
                    idle_since: None,
                    bad: None,
                }),
            });
            channels.insert(channel.into(), Arc::clone(&followed));
            followed
        };
        // The reader picks the channel up with its next XREAD; this interrupts the current one.
        self.shared.wake.notify_one();
        Ok(followed)
    }

    /// A subscription that starts with `reset` and continues live after `head`.
    fn reset_at(channel: &Channel, reason: ResetReason, head: StreamId) -> Subscription {
        let key = channel.log_key(head);
        Subscription {
            reset: Some(Reset {
                reason,
                resume_from: head.event_id(),
            }),
            replay: Vec::new(),
            cursor: channel.log.cursor(key, key),
        }
    }

    /// Reads the history after `after` and decides between an exact replay and a reset.
    async fn resume(&self, channel: &Channel, after: StreamId) -> Result<Subscription, StoreError> {
        let retention = self.shared.retention;
        let mut pipe = Pipeline::new();
        if let Some(min_id) = min_id(retention.max_age) {
            pipe.cmd("XTRIM")
                .arg(&channel.key)
                .arg("MINID")
                .arg(min_id.to_string())
                .ignore();
        }
        pipe.cmd("XINFO").arg("STREAM").arg(&channel.key);
        pipe.cmd("XRANGE")
            .arg(&channel.key)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(retention.max_events.saturating_add(1));
        let mut commands = self.commands.clone();
        let mut replies: Vec<RedisResult<Value>> = self
            .run(pipe.ignore_errors().query_async(&mut commands))
            .await?;
        let (Some(range), Some(info)) = (replies.pop(), replies.pop()) else {
            return Err(StoreError::Unavailable(
                "redis: short pipeline reply".to_owned(),
            ));
        };
        let info =
            StreamInfo::from_reply(info).map_err(|err| key_unavailable(&channel.key, &err))?;
        let entries = range
            .and_then(parse_entries)
            .map_err(|err| key_unavailable(&channel.key, &err))?;
        let head = info
            .as_ref()
            .map_or(StreamId::ZERO, |info| info.last_generated);
        if let Some(reason) = resume_gap(after, info.as_ref()) {
            return Ok(Self::reset_at(channel, reason, head));
        }
        if entries.len() > retention.max_events {
            return Ok(Self::reset_at(channel, ResetReason::Evicted, head));
        }
        let mut replay = Vec::with_capacity(entries.len());
        let mut bytes = 0usize;
        let mut last = after;
        for (id, body) in entries {
            last = id;
            let Some(body) = body else { continue };
            let frame = frame_with_id(&id.to_string(), &body);
            bytes = bytes.saturating_add(frame.len());
            replay.push(frame);
        }
        if bytes > retention.max_bytes || last < channel.start {
            // Over the byte bound; or (defensively) a replay that ends before the live window
            // begins, which only trimming between the two reads can cause.
            return Ok(Self::reset_at(channel, ResetReason::Evicted, head));
        }
        let key = channel.log_key(last);
        Ok(Subscription {
            reset: None,
            replay,
            cursor: channel.log.cursor(key, key),
        })
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
            .field("retention", &self.shared.retention)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl ReplayStore for RedisStore {
    fn append<'a>(
        &'a self,
        channel: &'a str,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<EventId, StoreError>> {
        Box::pin(async move {
            let retention = self.shared.retention;
            let body = event.encode_with_id(None);
            let size = body.len() + ID_LINE_MAX;
            if size > retention.max_bytes {
                return Err(StoreError::TooLarge {
                    size,
                    limit: retention.max_bytes,
                });
            }
            let key = self.shared.stream_key(channel);
            let mut pipe = Pipeline::new();
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(retention.max_events)
                .arg("*")
                .arg(FIELD)
                .arg(&body[..]);
            if let Some(min_id) = min_id(retention.max_age) {
                pipe.cmd("XTRIM")
                    .arg(&key)
                    .arg("MINID")
                    .arg(min_id.to_string())
                    .ignore();
            }
            let mut commands = self.commands.clone();
            let (id,): (Value,) = self
                .run_on(Some(&key), pipe.query_async(&mut commands))
                .await?;
            let id = value_bytes(&id)
                .and_then(StreamId::parse_bytes)
                .ok_or_else(|| unavailable("XADD did not answer with a stream id"))?;
            Ok(id.event_id())
        })
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>> {
        Box::pin(async move {
            // Live first: from here on the reader appends every entry after `followed.start`.
            let followed = self.follow(channel).await?;
            match last_event_id.map(StreamId::parse) {
                None => {
                    let (key, _) = followed.log.head();
                    Ok(Subscription {
                        reset: None,
                        replay: Vec::new(),
                        cursor: followed.log.cursor(key, key),
                    })
                }
                Some(None) => {
                    let head = self
                        .stream_info(&followed.key)
                        .await?
                        .map_or(StreamId::ZERO, |info| info.last_generated);
                    Ok(Self::reset_at(&followed, ResetReason::Unknown, head))
                }
                Some(Some(after)) => self.resume(&followed, after).await,
            }
        })
    }

    fn head<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<EventId, StoreError>> {
        Box::pin(async move {
            let info = self.stream_info(&self.shared.stream_key(channel)).await?;
            Ok(info
                .map_or(StreamId::ZERO, |info| info.last_generated)
                .event_id())
        })
    }

    fn health(&self) -> StoreHealth {
        if let Some(reason) = lock(&self.shared.reader_down).clone() {
            return StoreHealth::Degraded(reason);
        }
        if self.shared.commands_failing.load(Ordering::Acquire) {
            if let Some(reason) = lock(&self.shared.commands_down).clone() {
                return StoreHealth::Degraded(reason);
            }
        }
        StoreHealth::Ok
    }
}

#[derive(Debug, Clone)]
struct Settings {
    command_timeout: Duration,
    connect_timeout: Duration,
    block: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    idle_grace: Duration,
}

/// What the store and its reader task share.
struct Shared {
    prefix: String,
    retention: Retention,
    max_channels: usize,
    /// The channels the reader follows. Subscribe inserts (then wakes the reader); the reader
    /// removes a channel once nothing but this table has held it for `idle_grace`. Both happen
    /// under this lock, and subscribe clones the entry under it, so a channel is never removed
    /// while a subscribe is using it.
    channels: Mutex<HashMap<Box<str>, Arc<Channel>>>,
    /// Wakes the reader when a channel is added (a permit is stored if it is not waiting, so a
    /// registration between its snapshot and its XREAD still interrupts that XREAD).
    wake: Notify,
    /// Why the reader has no working connection, if it has none.
    reader_down: Mutex<Option<String>>,
    /// Why the last command failed, while commands fail.
    commands_down: Mutex<Option<String>>,
    /// Fast path for the common case: set with `commands_down`, cleared by the next success.
    commands_failing: AtomicBool,
    /// Set (with a wake) when someone subscribes to a channel whose key the reader stopped
    /// reading: check those keys again now.
    recheck: AtomicBool,
}

impl Shared {
    fn stream_key(&self, channel: &str) -> String {
        format!("{}:{channel}", self.prefix)
    }

    fn commands_ok(&self) {
        if self.commands_failing.swap(false, Ordering::AcqRel) {
            *lock(&self.commands_down) = None;
        }
    }

    fn commands_failed(&self, reason: &str) {
        *lock(&self.commands_down) = Some(reason.to_owned());
        self.commands_failing.store(true, Ordering::Release);
    }

    fn set_reader_down(&self, reason: Option<String>) {
        let mut down = lock(&self.reader_down);
        if down.is_some() && reason.is_none() {
            tracing::info!("redis store: reader connected");
        } else if down.is_none() {
            if let Some(reason) = &reason {
                tracing::warn!(reason, "redis store: reader lost its connection");
            }
        }
        *down = reason;
    }

    /// The followed channels, after dropping those idle for longer than `grace`.
    fn snapshot(&self, grace: Duration) -> Vec<Arc<Channel>> {
        let now = Instant::now();
        let mut channels = lock(&self.channels);
        channels.retain(|_, channel| {
            // Only the table holds the channel and only the channel holds the log: no cursor,
            // no subscribe in progress.
            let unused = Arc::strong_count(channel) == 1 && Arc::strong_count(&channel.log) == 1;
            let mut state = lock(&channel.state);
            if !unused {
                state.idle_since = None;
                return true;
            }
            let since = *state.idle_since.get_or_insert(now);
            now.saturating_duration_since(since) < grace
        });
        channels.values().cloned().collect()
    }
}

/// A channel the reader follows: its stream and its local log.
struct Channel {
    name: Box<str>,
    key: String,
    /// The stream id the channel was registered at: the log holds nothing at or before it.
    start: StreamId,
    log: Arc<ChannelLog>,
    state: Mutex<ReadState>,
}

/// Where the reader is on one stream.
struct ReadState {
    /// The last stream id read (or the registration point).
    position: StreamId,
    /// The stream's `entries-added` count at `position`: the number of entries up to it.
    added: u64,
    /// Added to a stream id's key to get its log key. Zero until the stream is recreated with
    /// lower ids (see [`Reader::break_stream`]); log keys must only grow.
    shift: u128,
    idle_since: Option<Instant>,
    /// Why the reader does not read the key (it holds another type than a stream), while so.
    bad: Option<String>,
}

impl Channel {
    fn log_key(&self, id: StreamId) -> u128 {
        id.key().saturating_add(lock(&self.state).shift)
    }

    fn is_bad(&self) -> bool {
        lock(&self.state).bad.is_some()
    }

    /// Sets the channel aside after `err` about its key; `true` if it was read until now.
    fn set_bad(&self, err: &RedisError) -> bool {
        let reason = key_problem(&self.key, err);
        let mut state = lock(&self.state);
        let newly = state.bad.is_none();
        if newly {
            tracing::warn!(
                channel = &*self.name,
                stream = self.key,
                %err,
                "redis store: the channel's key can not be read as a stream; the channel is \
                 unavailable until it is (other channels are not affected)"
            );
        }
        state.bad = Some(reason);
        newly
    }

    /// Reads the channel again if it was set aside.
    fn set_good(&self) {
        if lock(&self.state).bad.take().is_some() {
            tracing::info!(
                channel = &*self.name,
                stream = self.key,
                "redis store: the channel's key is a stream again (or gone); reading it again"
            );
        }
    }
}

/// The one task per store that follows every subscribed channel.
struct Reader {
    shared: Arc<Shared>,
    client: Client,
    commands: ConnectionManager,
    settings: Settings,
}

/// When the reader last checked its streams: all of them, and those set aside.
#[derive(Default)]
struct Checked {
    all: Option<Instant>,
    bad: Option<Instant>,
}

struct ReaderConnection {
    connection: MultiplexedConnection,
    client_id: i64,
}

impl Reader {
    async fn run(self) {
        let mut backoff = self.settings.backoff_min;
        let mut connection: Option<ReaderConnection> = None;
        let mut checked_at = Checked::default();
        loop {
            let Some(conn) = connection.as_mut() else {
                match self.connect().await {
                    Ok(conn) => {
                        connection = Some(conn);
                        checked_at = Checked::default();
                        backoff = self.settings.backoff_min;
                        self.shared.set_reader_down(None);
                    }
                    Err(err) => {
                        self.shared
                            .set_reader_down(Some(format!("redis unreachable: {err}")));
                        tokio::time::sleep(jitter(backoff)).await;
                        backoff = (backoff * 2).min(self.settings.backoff_max);
                    }
                }
                continue;
            };
            let outcome = self.step(conn, &mut checked_at).await;
            if let Err(err) = outcome {
                self.shared
                    .set_reader_down(Some(format!("redis connection lost: {err}")));
                connection = None;
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(self.settings.backoff_max);
            }
        }
    }

    async fn connect(&self) -> RedisResult<ReaderConnection> {
        // The XREAD blocks for `block`: the response timeout must outlast it.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.block + self.settings.command_timeout));
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let client_id: i64 = Cmd::new()
            .arg("CLIENT")
            .arg("ID")
            .query_async(&mut connection)
            .await?;
        Ok(ReaderConnection {
            connection,
            client_id,
        })
    }

    /// One round: check the streams if due, then one XREAD, applied to the logs.
    async fn step(&self, conn: &mut ReaderConnection, checked_at: &mut Checked) -> RedisResult<()> {
        if self.shared.commands_failing.load(Ordering::Acquire) {
            // Publishes failed; tell health as soon as the command connection works again
            // rather than at the next publish.
            if ping(&self.commands, self.settings.command_timeout)
                .await
                .is_ok()
            {
                self.shared.commands_ok();
            }
        }
        let all = self.shared.snapshot(self.settings.idle_grace);
        if checked_at
            .all
            .is_none_or(|at| at.elapsed() >= CHECK_INTERVAL)
        {
            self.check(conn, &all, &HashMap::new()).await?;
            checked_at.all = Some(Instant::now());
            checked_at.bad = checked_at.all;
        }
        let bad: Vec<Arc<Channel>> = all.iter().filter(|c| c.is_bad()).cloned().collect();
        let recheck = self.shared.recheck.swap(false, Ordering::AcqRel);
        if !bad.is_empty()
            && (recheck
                || checked_at
                    .bad
                    .is_none_or(|at| at.elapsed() >= BAD_KEY_CHECK_INTERVAL))
        {
            self.check(conn, &bad, &HashMap::new()).await?;
            checked_at.bad = Some(Instant::now());
        }
        let channels: Vec<Arc<Channel>> = all.into_iter().filter(|c| !c.is_bad()).collect();
        // While some keys are set aside, come back often enough to check them again.
        let block = if bad.is_empty() {
            self.settings.block
        } else {
            self.settings.block.min(BAD_KEY_CHECK_INTERVAL)
        };
        if channels.is_empty() {
            // Nothing to read: wait for a subscriber, and ping now and then so that health
            // stays true.
            tokio::select! {
                () = self.shared.wake.notified() => return Ok(()),
                () = tokio::time::sleep(block) => {}
            }
            return Cmd::new()
                .arg("PING")
                .query_async::<Value>(&mut conn.connection)
                .await
                .map(drop);
        }
        let reply = match self.read(conn, &channels, block).await {
            Ok(reply) => reply,
            Err(err) if is_key_error(&err) => {
                // One key fails the whole XREAD (typically WRONGTYPE): find it and set it aside,
                // so that the other channels are read on.
                let (_, set_aside) = self.check(conn, &channels, &HashMap::new()).await?;
                if set_aside == 0 {
                    return Err(err);
                }
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        let mut batches = parse_read_reply(reply)?;
        if batches.is_empty() {
            return Ok(());
        }
        // A batch as large as half the retention may mean that the stream was trimmed past
        // the position before it could be read: check those streams before applying them.
        let threshold = (self.shared.retention.max_events / 2).clamp(1, read_count(&self.shared));
        let suspicious: HashMap<&str, Vec<StreamId>> = batches
            .iter()
            .filter(|(_, entries)| entries.len() >= threshold)
            .map(|(key, entries)| (key.as_str(), entries.iter().map(|(id, _)| *id).collect()))
            .collect();
        let mut broken = Vec::new();
        if !suspicious.is_empty() {
            let subset: Vec<Arc<Channel>> = channels
                .iter()
                .filter(|channel| suspicious.contains_key(channel.key.as_str()))
                .cloned()
                .collect();
            broken = self.check(conn, &subset, &suspicious).await?.0;
        }
        for channel in &channels {
            if broken.contains(&channel.key) {
                continue;
            }
            if let Some(entries) = batches.remove(&channel.key) {
                apply(channel, entries);
            }
        }
        Ok(())
    }

    /// `XREAD BLOCK` over `channels` from each one's position, interrupted (with
    /// `CLIENT UNBLOCK`) when a channel is added meanwhile.
    async fn read(
        &self,
        conn: &mut ReaderConnection,
        channels: &[Arc<Channel>],
        block: Duration,
    ) -> RedisResult<Value> {
        let mut xread = Cmd::new();
        xread
            .arg("XREAD")
            .arg("COUNT")
            .arg(read_count(&self.shared))
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS");
        for channel in channels {
            xread.arg(&channel.key);
        }
        for channel in channels {
            xread.arg(lock(&channel.state).position.to_string());
        }
        let client_id = conn.client_id;
        let read = xread.query_async::<Value>(&mut conn.connection);
        tokio::pin!(read);
        tokio::select! {
            reply = &mut read => return reply,
            () = self.shared.wake.notified() => {}
        }
        // A channel was added: end the blocked XREAD early (it answers nil, or the entries it
        // already had). UNBLOCK can reach Redis before the XREAD does (they travel on different
        // connections), so retry it, a bounded number of times, until it hits.
        let mut commands = self.commands.clone();
        let mut unblock_cmd = Cmd::new();
        unblock_cmd.arg("CLIENT").arg("UNBLOCK").arg(client_id);
        for _ in 0..100 {
            let unblock = unblock_cmd.query_async::<i64>(&mut commands);
            tokio::select! {
                reply = &mut read => return reply,
                unblocked = unblock => {
                    if matches!(unblocked, Ok(1) | Err(_)) {
                        break;
                    }
                }
            }
            tokio::select! {
                reply = &mut read => return reply,
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
        read.await
    }

    /// Compares each channel's position with its stream; signals a reset where events were
    /// lost. `batches` holds, for channels whose just-read entries are not applied yet, their
    /// ids. Sets aside the channels whose key can not be read as a stream (and takes back those
    /// whose key is a stream again, or gone). Returns the keys of the channels that were reset or
    /// set aside, and how many were newly set aside.
    async fn check(
        &self,
        conn: &mut ReaderConnection,
        channels: &[Arc<Channel>],
        batches: &HashMap<&str, Vec<StreamId>>,
    ) -> RedisResult<(Vec<String>, usize)> {
        if channels.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut pipe = Pipeline::new();
        for channel in channels {
            pipe.cmd("XINFO").arg("STREAM").arg(&channel.key);
        }
        let replies: Vec<RedisResult<Value>> = pipe
            .ignore_errors()
            .query_async(&mut conn.connection)
            .await?;
        let mut broken = Vec::new();
        let mut set_aside = 0;
        for (channel, reply) in channels.iter().zip(replies) {
            let info = match StreamInfo::from_reply(reply) {
                Ok(info) => info,
                Err(err) if is_key_error(&err) => {
                    if channel.set_bad(&err) {
                        set_aside += 1;
                    }
                    broken.push(channel.key.clone());
                    continue;
                }
                Err(err) => return Err(err),
            };
            channel.set_good();
            let batch = batches.get(channel.key.as_str()).map(Vec::as_slice);
            let (position, added) = {
                let state = lock(&channel.state);
                (state.position, state.added)
            };
            if let Some(reason) = follow_gap(position, added, info.as_ref(), batch) {
                tracing::warn!(stream = channel.key, %position, reason = reason.as_str(), "redis store: stream broke");
                break_stream(channel, reason, info.as_ref());
                broken.push(channel.key.clone());
            }
        }
        Ok((broken, set_aside))
    }
}

/// Appends what the reader read to the channel's log.
fn apply(channel: &Channel, entries: Entries) {
    let mut state = lock(&channel.state);
    for (id, body) in entries {
        if id <= state.position {
            continue;
        }
        state.position = id;
        state.added = state.added.saturating_add(1);
        let Some(body) = body else { continue };
        let text = id.to_string();
        let frame = frame_with_id(&text, &body);
        let key = id.key().saturating_add(state.shift);
        if let Err(err) = channel.log.append_entry(key, EventId::new(text), frame) {
            // Only an entry larger than this instance's byte bound (written by an instance
            // with another retention) can fail; skipping it is what that bound means.
            tracing::warn!(stream = channel.key, %id, %err, "redis store: entry skipped");
        }
    }
}

/// Signals a reset to the channel's cursors (as an `sse-reset` entry in its log) and moves the
/// reader's position to where the stream continues.
///
/// After `Evicted` the stream continues at its head, as a cursor of the in-memory store would.
/// After `Epoch` (the stream was lost and maybe recreated), it continues before the new
/// stream's first entry when none of them was trimmed, so that every event published since
/// Redis came back still arrives after the reset.
fn break_stream(channel: &Channel, reason: ResetReason, info: Option<&StreamInfo>) {
    let (resume, added) = match info {
        None => (StreamId::ZERO, 0),
        Some(info)
            if reason == ResetReason::Epoch
                && info.entries_added == info.length
                && info.max_deleted == StreamId::ZERO =>
        {
            (StreamId::ZERO, 0)
        }
        Some(info) => (info.last_generated, info.entries_added),
    };
    let mut state = lock(&channel.state);
    // The reset entry sits right after the log's head; stream ids after `resume` map above it.
    let (head, _) = channel.log.head();
    let reset_key = resume
        .key()
        .saturating_add(state.shift)
        .max(head.saturating_add(1));
    state.shift = reset_key - resume.key();
    state.position = resume;
    state.added = added;
    let reset = Reset {
        reason,
        resume_from: resume.event_id(),
    };
    if let Err(err) = channel
        .log
        .append_entry(reset_key, resume.event_id(), reset_frame(&reset))
    {
        tracing::warn!(stream = channel.key, %err, "redis store: reset signal not stored");
    }
}

/// Whether a reader at `position` (entry number `added` of its stream) can read on without a
/// gap, given the stream as it is now. `batch` holds the ids read after `position` but not yet
/// applied.
///
/// Trimming removes the oldest entries first, so the entries numbered
/// `1 ..= entries_added - length` are gone: the reader missed events when that number exceeds
/// `added`, unless the missing ones are all in `batch`.
fn follow_gap(
    position: StreamId,
    added: u64,
    info: Option<&StreamInfo>,
    batch: Option<&[StreamId]>,
) -> Option<ResetReason> {
    let Some(info) = info else {
        return (position != StreamId::ZERO || added != 0).then_some(ResetReason::Epoch);
    };
    if info.last_generated < position || info.entries_added < added {
        return Some(ResetReason::Epoch);
    }
    if info.max_deleted > position {
        return Some(ResetReason::Evicted);
    }
    let trimmed = info.entries_added - info.length;
    if trimmed <= added {
        // If this is the stream the position came from, the position is still in it exactly
        // when fewer entries were trimmed than it was numbered.
        let still_there = info.first_entry.is_some_and(|first| first <= position);
        let consistent =
            info.length == 0 || position == StreamId::ZERO || still_there == (added > trimmed);
        return (!consistent).then_some(ResetReason::Epoch);
    }
    let lost = usize::try_from(trimmed - added).unwrap_or(usize::MAX);
    let covered = batch.is_some_and(|batch| match batch.get(lost) {
        Some(id) => info.first_entry == Some(*id),
        None => {
            lost == batch.len()
                && batch
                    .last()
                    .is_some_and(|last| info.first_entry.is_none_or(|first| first > *last))
        }
    });
    (!covered).then_some(ResetReason::Evicted)
}

/// Whether a client that read through `after` can resume exactly, given the stream as it is.
fn resume_gap(after: StreamId, info: Option<&StreamInfo>) -> Option<ResetReason> {
    let Some(info) = info else {
        return (after != StreamId::ZERO).then_some(ResetReason::Epoch);
    };
    if after > info.last_generated {
        return Some(ResetReason::Epoch);
    }
    if info.max_deleted > after {
        return Some(ResetReason::Evicted);
    }
    if after == StreamId::ZERO {
        // "Before the first entry": complete unless something was trimmed.
        return (info.entries_added > info.length).then_some(ResetReason::Evicted);
    }
    match info.first_entry {
        Some(first) => (first > after).then_some(ResetReason::Evicted),
        None => (after < info.last_generated).then_some(ResetReason::Evicted),
    }
}

/// A Redis stream id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    const ZERO: Self = Self { ms: 0, seq: 0 };

    /// Parses `<ms>-<seq>` strictly: ASCII digits only, both parts fit in `u64`.
    fn parse(text: &str) -> Option<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    fn parse_bytes(text: &[u8]) -> Option<Self> {
        fn number(digits: &[u8]) -> Option<u64> {
            if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        let dash = text.iter().position(|&b| b == b'-')?;
        Some(Self {
            ms: number(&text[..dash])?,
            seq: number(&text[dash + 1..])?,
        })
    }

    /// The log key: `ms` in the high 64 bits, `seq` in the low ones, so keys order as ids do.
    fn key(self) -> u128 {
        (u128::from(self.ms) << 64) | u128::from(self.seq)
    }

    fn event_id(self) -> EventId {
        EventId::new(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The fields of `XINFO STREAM` the store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamInfo {
    length: u64,
    last_generated: StreamId,
    max_deleted: StreamId,
    entries_added: u64,
    first_entry: Option<StreamId>,
}

impl StreamInfo {
    /// `None` for a stream that does not exist ("no such key").
    fn from_reply(reply: RedisResult<Value>) -> RedisResult<Option<Self>> {
        let value = match reply {
            Ok(value) => value,
            Err(err) if is_no_such_key(&err) => return Ok(None),
            Err(err) => return Err(err),
        };
        let Some(fields) = pairs(value) else {
            return Err(protocol_error("XINFO STREAM: not a map"));
        };
        let mut length = None;
        let mut last_generated = None;
        let mut max_deleted = StreamId::ZERO;
        let mut entries_added = None;
        let mut first_entry = None;
        for (name, value) in fields {
            match value_bytes(&name) {
                Some(b"length") => length = value_u64(&value),
                Some(b"last-generated-id") => {
                    last_generated = value_bytes(&value).and_then(StreamId::parse_bytes);
                }
                Some(b"max-deleted-entry-id") => {
                    max_deleted = value_bytes(&value)
                        .and_then(StreamId::parse_bytes)
                        .unwrap_or(StreamId::ZERO);
                }
                Some(b"entries-added") => entries_added = value_u64(&value),
                Some(b"first-entry") => {
                    first_entry = match value {
                        Value::Array(entry) => entry
                            .first()
                            .and_then(value_bytes)
                            .and_then(StreamId::parse_bytes),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
        let (Some(length), Some(last_generated)) = (length, last_generated) else {
            return Err(protocol_error("XINFO STREAM: missing fields"));
        };
        Ok(Some(Self {
            length,
            last_generated,
            max_deleted,
            // Redis before 7.0 does not count; then assume nothing was trimmed.
            entries_added: entries_added.unwrap_or(length).max(length),
            first_entry,
        }))
    }
}

/// Stream entries in order: id, and the frame body (`None` for an entry this store did not
/// write).
type Entries = Vec<(StreamId, Option<Bytes>)>;

/// The entries of an `XRANGE` reply (or of one stream of an `XREAD` reply), with their frames.
fn parse_entries(value: Value) -> RedisResult<Entries> {
    let items = match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Nil => return Ok(Vec::new()),
        _ => return Err(protocol_error("stream entries: not an array")),
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut parts) = item else {
            return Err(protocol_error("stream entry: not an array"));
        };
        if parts.len() != 2 {
            return Err(protocol_error("stream entry: not [id, fields]"));
        }
        let fields = parts.pop().and_then(pairs).unwrap_or_default();
        let id = parts
            .pop()
            .as_ref()
            .and_then(value_bytes)
            .and_then(StreamId::parse_bytes)
            .ok_or_else(|| protocol_error("stream entry: bad id"))?;
        // An entry without our field was not written by this store: nothing to deliver, but it
        // still counts in the stream's numbering.
        let body = fields
            .into_iter()
            .find(|(name, _)| value_bytes(name) == Some(FIELD.as_bytes()))
            .and_then(|(_, value)| match value {
                Value::BulkString(bytes) => Some(Bytes::from(bytes)),
                _ => None,
            });
        entries.push((id, body));
    }
    Ok(entries)
}

/// An `XREAD` reply: stream key → entries. Nil (timeout or `CLIENT UNBLOCK`) is empty.
fn parse_read_reply(value: Value) -> RedisResult<HashMap<String, Entries>> {
    let streams: Vec<(Value, Value)> = match value {
        Value::Nil => return Ok(HashMap::new()),
        Value::Map(streams) => streams,
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut parts) if parts.len() == 2 => {
                    let entries = parts.pop()?;
                    let key = parts.pop()?;
                    Some((key, entries))
                }
                _ => None,
            })
            .collect(),
        _ => return Err(protocol_error("XREAD: unexpected reply")),
    };
    let mut batches = HashMap::with_capacity(streams.len());
    for (key, entries) in streams {
        let Some(key) = value_bytes(&key).and_then(|key| std::str::from_utf8(key).ok()) else {
            continue;
        };
        batches.insert(key.to_owned(), parse_entries(entries)?);
    }
    Ok(batches)
}

/// A map reply as pairs: a RESP3 map, or a RESP2 flat array of name, value, ...
fn pairs(value: Value) -> Option<Vec<(Value, Value)>> {
    match value {
        Value::Map(pairs) => Some(pairs),
        Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((name, value));
            }
            Some(pairs)
        }
        _ => None,
    }
}

fn value_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(value_bytes(other)?).ok()?.parse().ok(),
    }
}

/// `url` without its credentials (`redis://user:password@host` → `redis://***@host`), for
/// messages and debug output.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

fn is_no_such_key(err: &RedisError) -> bool {
    err.detail()
        .is_some_and(|detail| detail.contains("no such key"))
        || err.to_string().contains("no such key")
}

fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

fn protocol_error(what: &'static str) -> RedisError {
    RedisError::from((
        ::redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from Redis",
        what.to_owned(),
    ))
}

/// An error answered by the server about one key (its type, typically), rather than about the
/// connection or the server as a whole.
fn is_key_error(err: &RedisError) -> bool {
    !is_connection_error(err)
        && (is_wrong_type(err) || err.kind() == ErrorKind::Server(ServerErrorKind::ResponseError))
}

fn is_wrong_type(err: &RedisError) -> bool {
    err.code() == Some("WRONGTYPE") || err.to_string().contains("WRONGTYPE")
}

/// What is wrong with `key`, for messages.
fn key_problem(key: &str, err: &RedisError) -> String {
    if is_wrong_type(err) {
        format!(
            "redis: key `{key}` is not a stream (another program stored another type there); \
             the channel is unavailable until the key is removed"
        )
    } else {
        format!("redis: key `{key}`: {err}")
    }
}

/// `err` (from a command on `key`) as a [`StoreError`].
fn key_unavailable(key: &str, err: &RedisError) -> StoreError {
    if is_key_error(err) {
        StoreError::Unavailable(key_problem(key, err))
    } else {
        unavailable(err)
    }
}

fn unavailable(err: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {err}"))
}

/// The oldest stream id the age bound keeps, or `None` when nothing can be that old.
fn min_id(max_age: Duration) -> Option<StreamId> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let cutoff = now.checked_sub(max_age)?;
    let ms = u64::try_from(cutoff.as_millis()).ok()?;
    (ms > 0).then_some(StreamId { ms, seq: 0 })
}

fn read_count(shared: &Shared) -> usize {
    shared.retention.max_events.clamp(1, MAX_READ_COUNT)
}

/// `delay` plus up to half of it again, so instances cut off together do not come back together.
fn jitter(delay: Duration) -> Duration {
    delay + delay.mul_f64(rand::random::<f64>() / 2.0)
}

// A poisoned lock only means a panic elsewhere while holding it; the data is plain values that
// are consistent between statements, so keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn info(length: u64, last: StreamId, added: u64, first: Option<StreamId>) -> StreamInfo {
        StreamInfo {
            length,
            last_generated: last,
            max_deleted: StreamId::ZERO,
            entries_added: added,
            first_entry: first,
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let builder = RedisStore::builder("redis://user:secret@127.0.0.1:6379/0");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("redis://***@127.0.0.1:6379/0"), "{shown}");
    }

    #[test]
    fn stream_ids_parse_strictly_and_order_as_keys() {
        assert_eq!(StreamId::parse("0-0"), Some(StreamId::ZERO));
        assert_eq!(
            StreamId::parse("1700000000000-3"),
            Some(id(1_700_000_000_000, 3))
        );
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "1-2-3",
            "a-1",
            "1-+2",
            " 1-2",
            "1-2 ",
            "%00",
            "18446744073709551616-0",
            "0-18446744073709551616",
            "1.5-2",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            StreamId::parse("18446744073709551615-18446744073709551615").map(StreamId::key),
            Some(u128::MAX)
        );
        assert!(id(1, u64::MAX).key() < id(2, 0).key());
        assert_eq!(id(5, 7).to_string(), "5-7");
    }

    #[test]
    fn resume_points_are_judged_against_the_stream() {
        let stream = info(3, id(30, 0), 10, Some(id(10, 0)));
        assert_eq!(resume_gap(id(10, 0), Some(&stream)), None);
        assert_eq!(resume_gap(id(30, 0), Some(&stream)), None);
        assert_eq!(
            resume_gap(id(9, 0), Some(&stream)),
            Some(ResetReason::Evicted)
        );
        assert_eq!(
            resume_gap(StreamId::ZERO, Some(&stream)),
            Some(ResetReason::Evicted)
        );
        assert_eq!(
            resume_gap(id(31, 0), Some(&stream)),
            Some(ResetReason::Epoch)
        );
        assert_eq!(resume_gap(id(1, 0), None), Some(ResetReason::Epoch));
        assert_eq!(resume_gap(StreamId::ZERO, None), None);
        let complete = info(3, id(30, 0), 3, Some(id(10, 0)));
        assert_eq!(resume_gap(StreamId::ZERO, Some(&complete)), None);
        let emptied = info(0, id(30, 0), 3, None);
        assert_eq!(resume_gap(id(30, 0), Some(&emptied)), None);
        assert_eq!(
            resume_gap(id(20, 0), Some(&emptied)),
            Some(ResetReason::Evicted)
        );
    }

    #[test]
    fn a_follower_sees_trimming_and_recreation_but_not_its_own_batch() {
        // Entries 1..=10 added, 1..=4 trimmed: first retained is entry 5 (id 50).
        let stream = info(6, id(100, 0), 10, Some(id(50, 0)));
        // At entry 6 (id 60): fine.
        assert_eq!(follow_gap(id(60, 0), 6, Some(&stream), None), None);
        // At entry 4 (id 40), the last trimmed one: nothing after it is gone.
        assert_eq!(follow_gap(id(40, 0), 4, Some(&stream), None), None);
        // At entry 2: entries 3 and 4 are gone.
        assert_eq!(
            follow_gap(id(20, 0), 2, Some(&stream), None),
            Some(ResetReason::Evicted)
        );
        // ... unless they are in the batch just read.
        let batch = [id(30, 0), id(40, 0), id(50, 0)];
        assert_eq!(follow_gap(id(20, 0), 2, Some(&stream), Some(&batch)), None);
        assert_eq!(
            follow_gap(id(20, 0), 2, Some(&stream), Some(&batch[1..])),
            Some(ResetReason::Evicted)
        );
        // Stream gone, or recreated with fewer entries, or with higher ids only.
        assert_eq!(
            follow_gap(id(60, 0), 6, None, None),
            Some(ResetReason::Epoch)
        );
        assert_eq!(follow_gap(StreamId::ZERO, 0, None, None), None);
        let recreated = info(2, id(200, 0), 2, Some(id(150, 0)));
        assert_eq!(
            follow_gap(id(60, 0), 6, Some(&recreated), None),
            Some(ResetReason::Epoch)
        );
        let recreated_longer = info(8, id(200, 0), 8, Some(id(150, 0)));
        assert_eq!(
            follow_gap(id(60, 0), 6, Some(&recreated_longer), None),
            Some(ResetReason::Epoch)
        );
        let rewound = info(8, id(50, 0), 8, Some(id(1, 0)));
        assert_eq!(
            follow_gap(id(60, 0), 6, Some(&rewound), None),
            Some(ResetReason::Epoch)
        );
    }

    #[test]
    fn xinfo_replies_parse_in_resp2_form_and_missing_keys_are_none() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![
            bulk("length"),
            Value::Int(2),
            bulk("last-generated-id"),
            bulk("5-1"),
            bulk("max-deleted-entry-id"),
            bulk("0-0"),
            bulk("entries-added"),
            Value::Int(4),
            bulk("first-entry"),
            Value::Array(vec![bulk("5-0"), Value::Array(vec![bulk("f"), bulk("x")])]),
        ]);
        assert_eq!(
            StreamInfo::from_reply(Ok(reply)).ok().flatten(),
            Some(StreamInfo {
                length: 2,
                last_generated: id(5, 1),
                max_deleted: StreamId::ZERO,
                entries_added: 4,
                first_entry: Some(id(5, 0)),
            })
        );
    }
}
