//! The reader tasks that follow every channel streams read here: one per reader group (on one
//! node, one for the store; on a cluster, one per bucket), each with one `XREAD BLOCK` over the
//! group's channels on a connection of its own, each entry appended to its channel's log.
//!
//! On a cluster a reader connects to the master that owns its bucket's slot (`topology.rs`).
//! Whatever the cluster answers about topology (`MOVED` after a reshard, `UNBLOCKED` from a
//! demoted master, `CLUSTERDOWN`, `TRYAGAIN`, a lost connection), the reader drops its
//! connection, backs off with jitter, finds the slot's master again and resumes every channel
//! from its own position, after checking that the position still exists there (a promoted
//! replica may lack what the old master had).

use std::{collections::HashMap, sync::Arc, time::Duration};

use ::redis::{
    aio::MultiplexedConnection, AsyncConnectionConfig, Cmd, Pipeline, RedisResult, Value,
};
use tokio::{task::JoinHandle, time::Instant};

use super::{
    error::is_key_error,
    follow::Follow,
    gap::{follow_gap, lost_position},
    reply::{parse_entries, parse_read_reply, StreamId, StreamInfo},
    shared::Shared,
    topology::Source,
};

/// How often the reader checks the followed streams for a gap even when nothing went wrong
/// (catches a `FLUSHALL` or a deleted key while the connection stayed up).
const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// How often the reader checks again the keys it stopped reading because they hold another
/// type than a stream.
const BAD_KEY_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Most entries one `XREAD` returns per stream.
const MAX_READ_COUNT: usize = 10_000;

/// The reader's timing, from the builder.
#[derive(Debug, Clone)]
pub(super) struct ReaderSettings {
    pub(super) command_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) block: Duration,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
    pub(super) idle_grace: Duration,
}

/// The reader tasks, ended when the store and every channel handle of it are dropped (a handle
/// the hub still holds keeps its streams fed, whatever became of the store).
pub(super) struct ReaderTask(Vec<JoinHandle<()>>);

impl ReaderTask {
    /// Starts one reader per group of `shared` on `runtime`.
    pub(super) fn spawn(
        runtime: &tokio::runtime::Handle,
        shared: &Arc<Shared>,
        source: &Source,
        settings: &ReaderSettings,
    ) -> Self {
        let tasks = (0..shared.keys.groups())
            .map(|group| {
                let reader = Reader {
                    shared: Arc::clone(shared),
                    source: source.clone(),
                    group,
                    settings: settings.clone(),
                };
                runtime.spawn(reader.run())
            })
            .collect();
        Self(tasks)
    }
}

impl Drop for ReaderTask {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

struct Reader {
    shared: Arc<Shared>,
    source: Source,
    /// The reader group this reader follows.
    group: usize,
    settings: ReaderSettings,
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
    /// The node it is connected to (`host:port`), on a cluster.
    node: Option<String>,
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
                        self.shared.health.set_reader_down(self.group, None);
                    }
                    Err((node, err)) => {
                        let reason = self.source.unreachable(self.group, node.as_deref(), &err);
                        self.shared.health.set_reader_down(self.group, Some(reason));
                        tokio::time::sleep(jitter(backoff)).await;
                        backoff = (backoff * 2).min(self.settings.backoff_max);
                    }
                }
                continue;
            };
            if let Err(err) = self.step(conn, &mut checked_at).await {
                let reason = self.source.lost(self.group, conn.node.as_deref(), &err);
                self.shared.health.set_reader_down(self.group, Some(reason));
                connection = None;
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(self.settings.backoff_max);
            }
        }
    }

    /// A connection of the reader's own to the node that serves its group; on failure, the
    /// node it tried (if it got that far) and why.
    async fn connect(&self) -> Result<ReaderConnection, (Option<String>, ::redis::RedisError)> {
        let (client, node) = self
            .source
            .client_for(&self.shared.commands, self.group)
            .await
            .map_err(|err| (None, err))?;
        let failed = |err| (node.clone(), err);
        // The XREAD blocks for `block`: the response timeout must outlast it.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.block + self.settings.command_timeout));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(failed)?;
        let client_id: i64 = Cmd::new()
            .arg("CLIENT")
            .arg("ID")
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(ReaderConnection {
            connection,
            client_id,
            node,
        })
    }

    /// One round: check the streams if due, then one XREAD, applied to the logs.
    async fn step(&self, conn: &mut ReaderConnection, checked_at: &mut Checked) -> RedisResult<()> {
        self.shared.commands.recheck().await;
        let all = self.shared.snapshot(self.group, self.settings.idle_grace);
        if checked_at
            .all
            .is_none_or(|at| at.elapsed() >= CHECK_INTERVAL)
        {
            self.check(conn, &all, &HashMap::new()).await?;
            checked_at.all = Some(Instant::now());
            checked_at.bad = checked_at.all;
        }
        let bad: Vec<Arc<Follow>> = all.iter().filter(|c| c.is_bad()).cloned().collect();
        let recheck = self.shared.take_recheck(self.group);
        if !bad.is_empty()
            && (recheck
                || checked_at
                    .bad
                    .is_none_or(|at| at.elapsed() >= BAD_KEY_CHECK_INTERVAL))
        {
            self.check(conn, &bad, &HashMap::new()).await?;
            checked_at.bad = Some(Instant::now());
        }
        let channels: Vec<Arc<Follow>> = all.into_iter().filter(|c| !c.is_bad()).collect();
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
                () = self.shared.woken(self.group) => return Ok(()),
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
        let threshold = (self.shared.retention.max_events / 2).clamp(1, self.read_count());
        let suspicious: HashMap<&str, Vec<StreamId>> = batches
            .iter()
            .filter(|(_, entries)| entries.len() >= threshold)
            .map(|(key, entries)| (key.as_str(), entries.iter().map(|(id, _)| *id).collect()))
            .collect();
        let mut broken = Vec::new();
        if !suspicious.is_empty() {
            let subset: Vec<Arc<Follow>> = channels
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
                channel.apply(entries);
            }
        }
        Ok(())
    }

    fn read_count(&self) -> usize {
        self.shared.retention.max_events.clamp(1, MAX_READ_COUNT)
    }

    /// `XREAD BLOCK` over `channels` from each one's position, interrupted (with
    /// `CLIENT UNBLOCK`) when a channel is added meanwhile.
    async fn read(
        &self,
        conn: &mut ReaderConnection,
        channels: &[Arc<Follow>],
        block: Duration,
    ) -> RedisResult<Value> {
        let mut xread = Cmd::new();
        xread
            .arg("XREAD")
            .arg("COUNT")
            .arg(self.read_count())
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS");
        for channel in channels {
            xread.arg(&channel.key);
        }
        for channel in channels {
            xread.arg(channel.position().0.to_string());
        }
        let client_id = conn.client_id;
        let node = conn.node.clone();
        let read = xread.query_async::<Value>(&mut conn.connection);
        tokio::pin!(read);
        tokio::select! {
            reply = &mut read => return reply,
            () = self.shared.woken(self.group) => {}
        }
        // A channel was added: end the blocked XREAD early (it answers nil, or the entries it
        // already had). UNBLOCK can reach Redis before the XREAD does (they travel on different
        // connections), so retry it, a bounded number of times, until it hits.
        for _ in 0..100 {
            let unblock = self.shared.commands.unblock(node.as_deref(), client_id);
            tokio::select! {
                reply = &mut read => return reply,
                unblocked = unblock => {
                    if matches!(unblocked, Ok(true) | Err(_)) {
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

    /// Compares each channel's position with its stream; breaks the log where events were
    /// lost. `batches` holds, for channels whose just-read entries are not applied yet, their
    /// ids. Sets aside the channels whose key can not be read as a stream (and takes back those
    /// whose key is a stream again, or gone). Returns the keys of the channels that were broken
    /// or set aside, and how many were newly set aside.
    ///
    /// Besides the stream's counters, it checks that each position is still an entry of the
    /// stream: after a failover the counters of a stream that lost entries and then got more can
    /// look like those of a stream that only grew. Such a channel is refilled from what Redis has.
    async fn check(
        &self,
        conn: &mut ReaderConnection,
        channels: &[Arc<Follow>],
        batches: &HashMap<&str, Vec<StreamId>>,
    ) -> RedisResult<(Vec<String>, usize)> {
        if channels.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let positions: Vec<(StreamId, u64)> = channels.iter().map(|c| c.position()).collect();
        let mut pipe = Pipeline::new();
        for (channel, (position, _)) in channels.iter().zip(&positions) {
            let position = position.to_string();
            pipe.cmd("XINFO").arg("STREAM").arg(&channel.key);
            pipe.cmd("XRANGE")
                .arg(&channel.key)
                .arg(&position)
                .arg(&position)
                .arg("COUNT")
                .arg(1);
        }
        let replies: Vec<RedisResult<Value>> = pipe
            .ignore_errors()
            .query_async(&mut conn.connection)
            .await?;
        let mut replies = replies.into_iter();
        let mut broken = Vec::new();
        let mut set_aside = 0;
        for (channel, &(position, added)) in channels.iter().zip(&positions) {
            let (Some(info), Some(found)) = (replies.next(), replies.next()) else {
                return Err(super::reply::protocol_error("a reply per command"));
            };
            let info = match StreamInfo::from_reply(info) {
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
            // Only the ids after the position: a catch-up may have applied the first ones.
            let batch = batches.get(channel.key.as_str()).map(|ids| {
                let applied = ids.partition_point(|id| *id <= position);
                &ids[applied..]
            });
            if let Some(reason) = follow_gap(position, added, info.as_ref(), batch) {
                tracing::warn!(
                    channel = &*channel.name,
                    stream = channel.key,
                    %position,
                    added,
                    stream_now = ?info,
                    reason = reason.as_str(),
                    "redis store: the stream lost entries this instance had not read"
                );
                channel.break_at(reason, info.as_ref());
                broken.push(channel.key.clone());
                continue;
            }
            let exists = matches!(found?, Value::Array(entries) if !entries.is_empty());
            if lost_position(position, info.as_ref(), exists) {
                self.refill(conn, channel, position).await?;
                broken.push(channel.key.clone());
            }
        }
        Ok((broken, set_aside))
    }

    /// Refills `channel`, whose `position` Redis lost, from what the stream holds: read in one
    /// transaction (the stream's counters, the newest entry at or before `position`, and every
    /// entry after that), so that they describe one moment of the stream.
    async fn refill(
        &self,
        conn: &mut ReaderConnection,
        channel: &Follow,
        position: StreamId,
    ) -> RedisResult<()> {
        let position_text = position.to_string();
        let mut pipe = Pipeline::new();
        pipe.atomic();
        pipe.cmd("XINFO").arg("STREAM").arg(&channel.key);
        pipe.cmd("XREVRANGE")
            .arg(&channel.key)
            .arg(&position_text)
            .arg("-")
            .arg("COUNT")
            .arg(1);
        // `position` is gone, so this is every entry after the common one.
        pipe.cmd("XRANGE")
            .arg(&channel.key)
            .arg(&position_text)
            .arg("+");
        let (info, common, after): (Value, Value, Value) =
            pipe.query_async(&mut conn.connection).await?;
        let Some(info) = StreamInfo::from_reply(Ok(info))? else {
            // Gone since the check: the next check sees a lost stream.
            return Ok(());
        };
        let common = parse_entries(common)?
            .first()
            .map_or(StreamId::ZERO, |(id, _)| *id);
        let after = parse_entries(after)?;
        let added = info.entries_added.saturating_sub(after.len() as u64);
        tracing::warn!(
            channel = &*channel.name,
            stream = channel.key,
            %position,
            resume_from = %common,
            "redis store: Redis lost events this instance had delivered (a failover promoted a \
             replica that lacked them); the channel's streams get a reset and continue from what \
             Redis has"
        );
        channel.refill(common, added, after);
        Ok(())
    }
}

/// `delay` plus up to half of it again, so instances cut off together do not come back together.
fn jitter(delay: Duration) -> Duration {
    delay + delay.mul_f64(rand::random::<f64>() / 2.0)
}
