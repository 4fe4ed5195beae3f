//! The storage seam: the protocol's operations (create, append, delete, metadata, reads) over
//! either the in-memory [`Registry`] or Redis. The endpoint, the reads and the SSE bodies speak
//! only to [`Backend`] and [`Handle`]; the producer, `Stream-Seq` and closure rules are the same
//! on both (the memory path runs them under a stream's lock, the Redis path in one script).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{
    budget::{Budget, ClientKey},
    error::Failure,
    log::Chunk,
    offset::{Offset, Start},
    producer::ProducerClaim,
    registry::{self, CreateRequest, Registry},
    stream::{media_type, AppendRequest, Appended, FrameKey, Stream},
};

/// Where the streams are kept.
pub(crate) enum Backend {
    /// In this process: streams live as long as it does.
    Memory(Registry),
    /// On Redis (single node or cluster), shared by every instance and kept across restarts.
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisStreams),
}

/// A created (or confirmed) stream.
#[derive(Debug)]
pub(crate) struct Created {
    pub(crate) created: bool,
    pub(crate) tail: Offset,
    pub(crate) closed: bool,
    pub(crate) content_type: String,
}

/// What `HEAD` answers.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) content_type: String,
    pub(crate) tail: Offset,
    pub(crate) ttl: Option<u64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) closed: bool,
}

/// A `POST`, parsed but with its body as it came (the backend splits JSON).
#[derive(Debug)]
pub(crate) struct AppendInput {
    pub(crate) body: Bytes,
    pub(crate) media_type: Option<String>,
    pub(crate) close: bool,
    pub(crate) producer: Option<ProducerClaim>,
    pub(crate) stream_seq: Option<String>,
    pub(crate) client: ClientKey,
}

/// What one read saw: data from a position, and the tail and closure at that moment.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) chunk: Chunk,
    pub(crate) tail: u64,
    pub(crate) closed: bool,
}

impl Backend {
    /// The caps of this server.
    pub(crate) fn budget(&self) -> &Budget {
        match self {
            Backend::Memory(registry) => &registry.budget,
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.budget(),
        }
    }

    /// The content type a fork of `source` would inherit (`None` when there is no such stream).
    pub(crate) async fn content_type_of(&self, source: &str) -> Result<Option<String>, Failure> {
        match self {
            Backend::Memory(registry) => Ok(registry.content_type_of(source)),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.content_type_of(source).await,
        }
    }

    /// Creates a stream, or confirms an identical one.
    pub(crate) async fn create(&self, request: CreateRequest) -> Result<Created, Failure> {
        match self {
            Backend::Memory(registry) => {
                let (stream, created) = registry.create(request)?;
                let state = stream.lock();
                Ok(Created {
                    created,
                    tail: Offset(state.log.tail()),
                    closed: state.closed,
                    content_type: stream.content_type.clone(),
                })
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.create(request).await,
        }
    }

    /// Appends to (and maybe closes) `name`.
    pub(crate) async fn append(&self, name: &str, input: AppendInput) -> Result<Appended, Failure> {
        match self {
            Backend::Memory(registry) => append_in_memory(registry, name, input),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.append(name, input).await,
        }
    }

    /// Deletes `name` (softly while forks use it).
    pub(crate) async fn delete(&self, name: &str) -> Result<(), Failure> {
        match self {
            Backend::Memory(registry) => registry.delete(name),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.delete(name).await,
        }
    }

    /// The metadata of `name`, without renewing its TTL.
    pub(crate) async fn head(&self, name: &str) -> Result<Meta, Failure> {
        match self {
            Backend::Memory(registry) => {
                let stream = registry.get(name)?;
                let state = stream.lock();
                Ok(Meta {
                    content_type: stream.content_type.clone(),
                    tail: Offset(state.log.tail()),
                    ttl: state.expiry.ttl,
                    expires_at: state.expiry.expires_at,
                    closed: state.closed,
                })
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.head(name).await,
        }
    }

    /// Opens `name` for a read from `start` (renewing its TTL): the handle, the position the
    /// read starts at, and the first `max_bytes` there.
    ///
    /// # Errors
    /// `404`/`410`, or `400` when `start` is beyond the tail.
    pub(crate) async fn open(
        &self,
        name: &str,
        start: Start,
        max_bytes: u64,
    ) -> Result<(Handle, u64, Seen), Failure> {
        match self {
            Backend::Memory(registry) => {
                let stream = registry.get(name)?;
                let (from, seen) = {
                    let mut state = stream.lock();
                    state.check_live()?;
                    state.expiry.touch();
                    let tail = state.log.tail();
                    let from = match start {
                        Start::Beginning => 0,
                        Start::Now => tail,
                        Start::At(Offset(at)) if at > tail => return Err(beyond_tail()),
                        Start::At(Offset(at)) => at,
                    };
                    let seen = Seen {
                        chunk: state.log.read(from, max_bytes),
                        tail,
                        closed: state.closed,
                    };
                    (from, seen)
                };
                Ok((Handle::Memory(stream), from, seen))
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => {
                let (opened, from, seen) = redis.open(name, start, max_bytes).await?;
                Ok((Handle::Redis(opened), from, seen))
            }
        }
    }

    /// Streams on the server and bytes their own appends hold, as far as this process knows
    /// (for Redis: none, the numbers live there).
    pub(crate) fn usage(&self) -> (usize, u64) {
        self.budget().usage()
    }
}

/// The `400` for a read offset past the tail.
pub(crate) fn beyond_tail() -> Failure {
    Failure::BadRequest("the offset is beyond the stream's tail".into())
}

fn append_in_memory(
    registry: &Registry,
    name: &str,
    input: AppendInput,
) -> Result<Appended, Failure> {
    let stream = registry.get(name)?;
    // A body is parsed as JSON only when it claims the stream's own type; a mismatch is the
    // append's 409, and a closed stream's 409 comes before a parse error.
    let parse_json = stream.json && input.media_type.as_deref() == Some("application/json");
    let payload = match registry::payload(input.body, parse_json, false) {
        Ok(payload) => payload,
        Err(failure) => {
            let state = stream.lock();
            state.check_live()?;
            if state.closed {
                return Err(Failure::Closed {
                    tail: Offset(state.log.tail()),
                });
            }
            return Err(failure);
        }
    };
    stream.append(
        &registry.budget,
        AppendRequest {
            media_type: input.media_type,
            close: input.close,
            producer: input.producer,
            stream_seq: input.stream_seq,
            payload,
            client: input.client,
        },
    )
}

/// An open stream, for reads: its identity, its waiters, and reads from a position.
pub(crate) enum Handle {
    Memory(Arc<Stream>),
    #[cfg(feature = "redis")]
    Redis(super::redis::Opened),
}

impl Handle {
    /// Woken on every append, close and removal (on Redis: by any instance).
    pub(crate) fn changed(&self) -> &Notify {
        match self {
            Handle::Memory(stream) => &stream.changed,
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => opened.changed(),
        }
    }

    /// As its creator sent it.
    pub(crate) fn content_type(&self) -> &str {
        match self {
            Handle::Memory(stream) => &stream.content_type,
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => &opened.content_type,
        }
    }

    /// Whether it is a JSON stream.
    pub(crate) fn json(&self) -> bool {
        match self {
            Handle::Memory(stream) => stream.json,
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => opened.json,
        }
    }

    /// Whether data of this stream is sent as text (else base64 in SSE).
    pub(crate) fn is_text(&self) -> bool {
        self.json() || media_type(self.content_type()).starts_with("text/")
    }

    /// Unique over the stream's name's lives: an ETag of a deleted stream never matches its
    /// successor's.
    pub(crate) fn generation(&self) -> String {
        match self {
            Handle::Memory(stream) => stream.id.to_string(),
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => opened.generation.clone(),
        }
    }

    /// Up to `max_bytes` from `from`, with the tail and closure.
    ///
    /// # Errors
    /// `404`/`410` once the stream is gone; on Redis, `503` when it can not be reached.
    pub(crate) async fn look(&self, from: u64, max_bytes: u64) -> Result<Seen, Failure> {
        match self {
            Handle::Memory(stream) => {
                let state = stream.lock();
                state.check_live()?;
                Ok(Seen {
                    chunk: state.log.read(from, max_bytes),
                    tail: state.log.tail(),
                    closed: state.closed,
                })
            }
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => opened.look(from, max_bytes).await,
        }
    }

    /// The SSE frame cached for `key`, if it is the last one encoded in this process.
    pub(crate) fn cached_frame(&self, key: FrameKey) -> Option<Bytes> {
        match self {
            Handle::Memory(stream) => stream.cached_frame(key),
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => opened.cached_frame(key),
        }
    }

    /// Remembers the frame encoded for `key`.
    pub(crate) fn cache_frame(&self, key: FrameKey, frame: Bytes) {
        match self {
            Handle::Memory(stream) => stream.cache_frame(key, frame),
            #[cfg(feature = "redis")]
            Handle::Redis(opened) => opened.cache_frame(key, frame),
        }
    }
}
