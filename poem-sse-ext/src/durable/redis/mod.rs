//! Durable streams on Redis (single node or Redis Cluster), through the connection of a
//! [`RedisStore`](crate::store::RedisStore): the streams survive restarts and are the same on
//! every instance on that Redis.
//!
//! # Layout: one slot per stream
//!
//! Stream `name` has three keys, `ds:{<h>}:<name>:m`, `:d` and `:p`, where `<h>` is a fixed
//! 64-bit hash of the name in hex (a hash tag, so the three share one slot whatever the name
//! holds, braces included):
//!
//! | Key | Type | Holds |
//! |---|---|---|
//! | `:m` | hash | content type, JSON or bytes, TTL and expiry (asked for, and in force), the sliding deadline, closed, tail, size, last `Stream-Seq`, fork source and point, fork reference count, life (`live`, or `soft` when deleted while forks use it), a generation (for ETags) |
//! | `:d` | stream | the appends, entry id `<start position>-1`, fields `d` (the bytes; a JSON append's messages joined) and `n` (for JSON, the messages' lengths) |
//! | `:p` | hash | the producer table: id → `<epoch>:<last seq>` |
//!
//! Entries are never trimmed. Positions are ids, so a read from any offset is one `XREVRANGE`
//! (the entry holding it) and `XRANGE`s from there.
//!
//! # One script per operation
//!
//! Create, append (content type, producer fencing and deduplication, `Stream-Seq`, close, the
//! size cap), read, delete, fork and release are each one Lua script on one stream's slot (see
//! `scripts.rs`), run with the Redis server's clock for expiry. So an append and its checks are
//! atomic on every instance, and a producer's retry after a lost reply (a timeout, Redis paused
//! or cut off after it stored the append) is answered as a duplicate: nothing is stored twice.
//! A failure to reach Redis is a `503` with `Retry-After`.
//!
//! # Forks: copied, with a reference on the source
//!
//! A script touches one slot, and on a cluster a fork and its source live in different slots.
//! A fork therefore **copies** its source's entries up to the fork point: one script on the
//! source checks it, takes a reference (its fork count) and returns the range; a second one
//! creates the fork with that data. Reading a fork is then a read of one slot, as fast as any
//! stream, and a fork never depends on its source's keys; the cost is the copied bytes (the
//! memory backend shares them). The reference keeps the protocol's semantics: a source deleted
//! while forks use it is soft-deleted (`410`, its name blocked) until its last fork goes. The
//! two steps are not atomic together: a fork create that fails after the first step gives the
//! reference back, and a process that dies between the steps leaves a reference no fork
//! holds (the source then stays soft-deleted once deleted).
//!
//! # Live reads
//!
//! Catch-up reads go to Redis, so a read on any instance sees every write acknowledged before
//! it began. Every write script publishes the stream's name on `ds:changed`; one listener task
//! per process (on a connection of its own, never the shared command connection) wakes the
//! long-polls and SSE followers of that name here, which read on from their position. See
//! `watch.rs`.
//!
//! # Not counted here
//!
//! The stream and byte budgets per server and per client are the memory backend's: on Redis,
//! bound the space with Redis's own `maxmemory` (the per-stream size cap, the producer cap and
//! the write rate per client still apply).

mod opened;
mod scripts;
mod watch;
mod wire;

use std::sync::Arc;

use ::redis::{Cmd, Value};
use tokio::task::JoinHandle;

use super::{
    backend::{beyond_tail, AppendInput, Created, Meta, Seen},
    budget::Budget,
    error::Failure,
    log::Payload,
    offset::{Offset, Start, MAX_POSITION},
    producer::MAX_PRODUCERS,
    registry::{self, CreateRequest},
    stream::{media_type, Appended, DEFAULT_CONTENT_TYPE},
};
use crate::store::redis::{commands::Commands, topology::Source};
pub(crate) use opened::Opened;
use watch::Watch;
use wire::{encode, flag, keys, Arg, Reply};

/// The channel every write script announces its stream's name on.
const CHANNEL: &str = "ds:changed";

/// What the backend takes from a [`RedisStore`](crate::store::RedisStore).
pub(crate) struct RedisLink {
    commands: Commands,
    source: Source,
}

impl RedisLink {
    pub(crate) fn of(store: &crate::store::RedisStore) -> Self {
        let (commands, source) = store.link();
        Self { commands, source }
    }
}

/// The Redis backend.
pub(crate) struct RedisStreams {
    inner: Arc<Inner>,
    listener: JoinHandle<()>,
}

struct Inner {
    commands: Commands,
    budget: Budget,
    watch: Arc<Watch>,
    create: String,
    append: String,
    read: String,
    delete: String,
    release: String,
    fork: String,
}

impl Drop for RedisStreams {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl RedisStreams {
    /// The backend; starts the listener task, so it must be called inside a tokio runtime.
    pub(crate) fn new(link: RedisLink, budget: Budget) -> Self {
        let watch = Arc::new(Watch::default());
        let listener = tokio::spawn(watch::listen(
            Arc::clone(&watch),
            link.source,
            CHANNEL.to_owned(),
        ));
        let script = scripts::full;
        Self {
            inner: Arc::new(Inner {
                commands: link.commands,
                budget,
                watch,
                create: script(scripts::CREATE),
                append: script(scripts::APPEND),
                read: script(scripts::READ),
                delete: script(scripts::DELETE),
                release: script(scripts::RELEASE),
                fork: script(scripts::FORK),
            }),
            listener,
        }
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    pub(crate) async fn content_type_of(&self, source: &str) -> Result<Option<String>, Failure> {
        let reply = self.inner.read_meta(source).await;
        match reply {
            Ok(reply) => Ok(Some(reply.text(5))),
            Err(Failure::NotFound | Failure::Gone) => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    pub(crate) async fn create(&self, request: CreateRequest) -> Result<Created, Failure> {
        let inner = &self.inner;
        let mut content_type = request.content_type.clone();
        let (mut ttl, mut expires_at) = (request.ttl, request.expires_at);
        let mut inherited = Vec::new();
        if let Some(fork) = &request.fork {
            let media = request.content_type.as_deref().map(media_type);
            let reply = inner
                .call(
                    &inner.fork,
                    "durable fork",
                    &fork.source,
                    vec![
                        fork.offset
                            .map(|o| o.0.to_string())
                            .unwrap_or_default()
                            .into(),
                        fork.sub.to_string().into(),
                        media.unwrap_or_default().into(),
                        request.content_type.clone().unwrap_or_default().into(),
                    ],
                )
                .await?;
            reply.refusal(None)?;
            content_type.get_or_insert_with(|| reply.text(2));
            if ttl.is_none() && expires_at.is_none() {
                ttl = reply.text(4).parse().ok();
                expires_at = reply.text(5).parse().ok();
            }
            inherited = reply.items[7..].to_vec();
        }
        let created = self.create_taken(&request, content_type, ttl, expires_at, inherited);
        let created = created.await;
        if let (Some(fork), false) = (
            &request.fork,
            matches!(created, Ok(Created { created: true, .. })),
        ) {
            inner.release(fork.source.clone()).await;
        }
        created
    }

    /// The second step of a create: the stream itself (for a fork, with the entries taken).
    async fn create_taken(
        &self,
        request: &CreateRequest,
        content_type: Option<String>,
        ttl: Option<u64>,
        expires_at: Option<i64>,
        inherited: Vec<Value>,
    ) -> Result<Created, Failure> {
        let inner = &self.inner;
        let content_type = content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
        let media = media_type(&content_type);
        if (media == "application/json") != request.json {
            return Err(Failure::Conflict(
                "the source stream changed while the fork was created: retry".into(),
            ));
        }
        let compare_media = match (&request.content_type, &request.fork) {
            (Some(ct), _) => media_type(ct),
            (None, Some(_)) => String::new(),
            (None, None) => DEFAULT_CONTENT_TYPE.to_owned(),
        };
        let text = |v: Option<String>| -> Arg { v.unwrap_or_default().into() };
        let fork = request.fork.as_ref();
        let mut args: Vec<Arg> = vec![
            content_type.clone().into(),
            media.into(),
            compare_media.into(),
            flag(request.json),
            text(ttl.map(|t| t.to_string())),
            text(expires_at.map(|t| t.to_string())),
            text(request.ttl.map(|t| t.to_string())),
            text(request.expires_at.map(|t| t.to_string())),
            flag(request.closed),
            text(fork.map(|f| f.source.clone())),
            text(fork.and_then(|f| f.offset).map(|o| o.0.to_string())),
            text(fork.map(|f| f.sub.to_string())),
            inner.budget.limits.max_stream_bytes.to_string().into(),
            (inherited.len() / 2).to_string().into(),
        ];
        args.extend(inherited.into_iter().map(Arg::Value));
        if let Some(payload) = &request.payload {
            let (data, lengths) = encode(payload);
            args.push(Arg::Bytes(data));
            args.push(lengths.into());
        }
        let reply = inner
            .call(&inner.create, "durable create", &request.name, args)
            .await?;
        reply.refusal(None)?;
        Ok(Created {
            created: reply.status() == "created",
            tail: Offset(reply.num(2)),
            closed: reply.text(3) == "1",
            content_type: reply.text(4),
        })
    }

    pub(crate) async fn append(&self, name: &str, input: AppendInput) -> Result<Appended, Failure> {
        let inner = &self.inner;
        let parse_json = input.media_type.as_deref() == Some("application/json");
        // The script decides what a parse error means (the stream's type, its closure).
        let (payload, bad_json) = match registry::payload(input.body.clone(), parse_json, false) {
            Ok(payload) => (payload, String::new()),
            Err(failure) => (Some(Payload::Bytes(input.body)), failure.to_string()),
        };
        let claim = input.producer.as_ref();
        let mut args: Vec<Arg> = vec![
            input.media_type.clone().unwrap_or_default().into(),
            flag(input.close),
            bad_json.into(),
            claim.map(|c| c.id.clone()).unwrap_or_default().into(),
            claim.map_or(0, |c| c.epoch).to_string().into(),
            claim.map_or(0, |c| c.seq).to_string().into(),
            input.stream_seq.clone().unwrap_or_default().into(),
            inner.budget.limits.max_stream_bytes.to_string().into(),
            MAX_PRODUCERS.to_string().into(),
            MAX_POSITION.to_string().into(),
        ];
        if let Some(payload) = &payload {
            let (data, lengths) = encode(payload);
            args.push(Arg::Bytes(data));
            args.push(lengths.into());
        }
        let reply = inner
            .call(&inner.append, "durable append", name, args)
            .await?;
        reply.refusal(claim.map(|c| c.seq))?;
        inner.watch.wake(name);
        let epoch = reply.text(4);
        Ok(Appended {
            tail: Offset(reply.num(2)),
            closed: reply.num(3) == 1,
            producer: (!epoch.is_empty())
                .then(|| Some((epoch.parse().ok()?, reply.text(5).parse().ok()?)))
                .flatten(),
            fresh: reply.num(6) == 1,
        })
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<(), Failure> {
        let inner = &self.inner;
        let reply = inner
            .call(&inner.delete, "durable delete", name, Vec::new())
            .await?;
        reply.refusal(None)?;
        inner.watch.wake(name);
        Ok(())
    }

    pub(crate) async fn head(&self, name: &str) -> Result<Meta, Failure> {
        let reply = self.inner.read_meta(name).await?;
        Ok(Meta {
            content_type: reply.text(5),
            tail: Offset(reply.num(2)),
            ttl: reply.text(6).parse().ok(),
            expires_at: reply.text(7).parse().ok(),
            closed: reply.text(3) == "1",
        })
    }

    pub(crate) async fn open(
        &self,
        name: &str,
        start: Start,
        max_bytes: u64,
    ) -> Result<(Opened, u64, Seen), Failure> {
        let from = match start {
            Start::Beginning => "0".to_owned(),
            Start::Now => "now".to_owned(),
            Start::At(Offset(at)) => at.to_string(),
        };
        // Registered before the read, so that a change right after it wakes the reader.
        let watched = self.inner.watch.watched(name);
        let reply = self.inner.read(name, from, max_bytes, true).await?;
        let from = reply.num(9);
        if from > reply.num(2) {
            return Err(beyond_tail());
        }
        let opened = Opened {
            inner: Arc::clone(&self.inner),
            name: name.to_owned(),
            content_type: reply.text(5),
            json: reply.text(4) == "1",
            generation: reply.text(8),
            watched,
        };
        let seen = opened.seen(&reply)?;
        Ok((opened, from, seen))
    }
}

impl Inner {
    /// Runs `script` on `name`'s keys with `args` after the name and the channel.
    async fn call(
        &self,
        script: &str,
        operation: &'static str,
        name: &str,
        args: Vec<Arg>,
    ) -> Result<Reply, Failure> {
        let [meta, data, producers] = keys(name);
        // EVAL with the text, as the store's own script does: no script cache to miss after
        // a restart or a failover.
        let mut eval = Cmd::new();
        eval.arg("EVAL")
            .arg(script)
            .arg(3)
            .arg(&meta)
            .arg(&data)
            .arg(&producers)
            .arg(name)
            .arg(CHANNEL);
        for arg in &args {
            match arg {
                Arg::Bytes(bytes) => eval.arg(&bytes[..]),
                Arg::Text(text) => eval.arg(text.as_str()),
                Arg::Value(Value::BulkString(bytes)) => eval.arg(&bytes[..]),
                Arg::Value(other) => eval.arg(Reply::text_of(other)),
            };
        }
        let mut connection = self.commands.connection();
        let reply = self
            .commands
            .run(
                operation,
                Some(&meta),
                eval.query_async::<Value>(&mut connection),
            )
            .await?;
        let Value::Array(items) = reply else {
            return Err(Failure::Unavailable(format!(
                "{operation}: Redis answered something else than the script's reply"
            )));
        };
        let reply = Reply {
            items,
            limit: self.budget.limits.max_stream_bytes,
        };
        // A script that removed a fork names its source: give back the fork's reference (which
        // may remove the source in turn, and so on up the chain).
        let released = reply.text(1);
        if !released.is_empty() {
            Box::pin(self.release(released)).await;
        }
        Ok(reply)
    }

    async fn read(
        &self,
        name: &str,
        from: String,
        max_bytes: u64,
        touch: bool,
    ) -> Result<Reply, Failure> {
        let args = vec![from.into(), max_bytes.to_string().into(), flag(touch)];
        let reply = self.call(&self.read, "durable read", name, args).await?;
        reply.refusal(None)?;
        Ok(reply)
    }

    /// The metadata of `name` (a read of no data that does not renew its TTL).
    async fn read_meta(&self, name: &str) -> Result<Reply, Failure> {
        self.read(name, "now".to_owned(), 0, false).await
    }

    /// Gives back a reference on fork source `source`.
    async fn release(&self, source: String) {
        let reply = self
            .call(&self.release, "durable release", &source, Vec::new())
            .await;
        self.watch.wake(&source);
        if let Err(failure) = reply {
            tracing::warn!("durable streams: could not release fork source {source:?}: {failure}");
        }
    }
}
