//! Live reads across instances: every write script publishes the stream's name on one channel;
//! one task per process listens on a connection of its own and wakes the readers of that name
//! here, which then read from Redis. A notice only says "look again", so a lost one costs a
//! delay, never data: after the listener (re)subscribes it wakes every reader, and the readers
//! re-read from their own positions.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, Weak,
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::durable::{backend::Seen, stream::FrameKey};
use crate::store::redis::topology::Source;

/// The readers of one stream name in this process.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// Woken on every change of the stream, by any instance.
    pub(crate) changed: Notify,
    /// Bumped before every wake: a read that began at this version and finds it unchanged
    /// is still the latest one this process knows of.
    version: AtomicU64,
    /// One live read of this stream at a time here, so that the followers woken together by
    /// one append share one read of Redis instead of making one each.
    pub(crate) reading: tokio::sync::Mutex<()>,
    last_read: Mutex<Option<LastRead>>,
    /// The last SSE frame encoded here, with the generation of the stream it belongs to: the
    /// followers at one position share one encoding, as on the memory backend.
    last_frame: Mutex<Option<(String, FrameKey, Bytes)>>,
}

/// The last live read of a stream here.
#[derive(Debug)]
struct LastRead {
    generation: String,
    /// The version it began at.
    version: u64,
    from: u64,
    max: u64,
    seen: Seen,
}

impl Watched {
    fn frame(&self) -> MutexGuard<'_, Option<(String, FrameKey, Bytes)>> {
        self.last_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn wake(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// What the last live read saw, if it read `from`/`max` of this `generation` and nothing
    /// changed since it began.
    pub(crate) fn cached_read(&self, generation: &str, from: u64, max: u64) -> Option<Seen> {
        let version = self.version();
        let last = self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|last| {
                last.generation == generation
                    && last.version == version
                    && last.from == from
                    && last.max == max
            })
            .map(|last| last.seen.clone())
    }

    /// Remembers a live read that began at `version`.
    pub(crate) fn cache_read(
        &self,
        generation: &str,
        version: u64,
        from: u64,
        max: u64,
        seen: &Seen,
    ) {
        *self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(LastRead {
            generation: generation.to_owned(),
            version,
            from,
            max,
            seen: seen.clone(),
        });
    }

    pub(crate) fn cached_frame(&self, generation: &str, key: FrameKey) -> Option<Bytes> {
        self.frame()
            .as_ref()
            .filter(|(g, k, _)| g == generation && *k == key)
            .map(|(_, _, frame)| frame.clone())
    }

    pub(crate) fn cache_frame(&self, generation: &str, key: FrameKey, frame: Bytes) {
        *self.frame() = Some((generation.to_owned(), key, frame));
    }
}

/// The names read here, each with its waiters. Weak: a reader's handle owns its entry, so the
/// table holds only the names someone reads now.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    names: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    by_name: HashMap<String, Weak<Watched>>,
    /// Dead entries are dropped when the map reaches this size (then twice the live count).
    prune_at: usize,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The waiters of `name` (made on first use).
    pub(crate) fn watched(&self, name: &str) -> Arc<Watched> {
        let mut names = self.lock();
        if let Some(watched) = names.by_name.get(name).and_then(Weak::upgrade) {
            return watched;
        }
        let watched = Arc::new(Watched::default());
        names
            .by_name
            .insert(name.to_owned(), Arc::downgrade(&watched));
        if names.by_name.len() >= names.prune_at {
            names.by_name.retain(|_, w| w.strong_count() > 0);
            names.prune_at = (names.by_name.len() * 2).max(64);
        }
        watched
    }

    /// Wakes the readers of `name`.
    pub(crate) fn wake(&self, name: &str) {
        let watched = self.lock().by_name.get(name).and_then(Weak::upgrade);
        if let Some(watched) = watched {
            watched.wake();
        }
    }

    /// Wakes every reader (after notices may have been lost).
    fn wake_all(&self) {
        let all: Vec<Arc<Watched>> = self
            .lock()
            .by_name
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for watched in all {
            watched.wake();
        }
    }
}

/// Listens for the notices on `channel` until aborted: on one node, on that node; on a cluster,
/// on the first seed (a `PUBLISH` reaches the subscribers of every node).
pub(crate) async fn listen(watch: Arc<Watch>, source: Source, channel: String) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let client: Result<::redis::Client, ::redis::RedisError> = match &source {
            Source::Single(client) => Ok(client.clone()),
            #[cfg(feature = "redis-cluster")]
            Source::Cluster(seed) => ::redis::Client::open(seed.clone()),
        };
        let subscribed = async {
            let mut pubsub = client?.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                // Whatever was published while no one listened: every reader looks again.
                watch.wake_all();
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(name) = std::str::from_utf8(message.get_payload_bytes()) {
                        watch.wake(name);
                    }
                }
                tracing::warn!("durable streams: the Redis change notices stopped; resubscribing");
                watch.wake_all();
            }
            Ok(Err(err)) => {
                tracing::warn!("durable streams: can not subscribe to Redis change notices: {err}");
            }
            Err(_) => tracing::warn!("durable streams: Redis change notices: no answer in 2 s"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
