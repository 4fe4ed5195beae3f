//! [Durable Streams](https://github.com/durable-streams/durable-streams/blob/main/PROTOCOL.md)
//! for poem: resumable byte streams at URLs, created, appended, closed, forked, read (catch-up,
//! long-poll or SSE) and deleted over plain HTTP, by the protocol's own clients
//! (`@durable-streams/client`, the AI SDK transports, ...). Feature `durable-streams`.
//!
//! ```
//! use std::time::Duration;
//! use poem::Route;
//! use poem_sse_ext::durable::{Access, Denied, DurableStreams, Operation};
//!
//! let streams = DurableStreams::builder()
//!     .long_poll_timeout(Duration::from_secs(20))
//!     .authorizer(|access: &Access<'_>| match access.operation {
//!         Operation::Read => Ok(()),
//!         _ if access.request.header("authorization") == Some("Bearer s3cret") => Ok(()),
//!         _ => Err(Denied::unauthorized("writes need the bearer token")),
//!     })
//!     .build();
//! let app = Route::new().nest("/v1/stream", streams.endpoint());
//! # let _ = app;
//! ```
//!
//! | Request | Answer |
//! |---|---|
//! | `PUT` (optional body, `Content-Type`, `Stream-TTL` or `Stream-Expires-At`, `Stream-Closed`) | `201` + `Location`; `200` when an identical stream exists; `409` when it differs |
//! | `PUT` + `Stream-Forked-From` (+ `Stream-Fork-Offset`, `Stream-Fork-Sub-Offset`) | a fork sharing the source's data up to that point; `404` no source, `400` bad point, `409` type mismatch or deleted source |
//! | `POST` body (+ `Stream-Seq`, producer headers, `Stream-Closed`) | `204`; `200` for new data from an idempotent producer, `204` for its duplicates; `403` stale epoch; `409` closed, type mismatch, `Stream-Seq` regression or sequence gap |
//! | `POST` + `Stream-Closed: true`, no body | `204` + `Stream-Closed: true`, also when already closed |
//! | `GET ?offset=` (`-1`, `now`, or a returned offset) | `200` with the data, `Stream-Next-Offset`, `Stream-Up-To-Date`, `ETag` (`304` on `If-None-Match`), `Stream-Closed` at the end of a closed stream |
//! | `GET ?offset=&live=long-poll` | `200` with data as soon as there is some; `204` after the timeout, or at once at the end of a closed stream |
//! | `GET ?offset=&live=sse` | `text/event-stream`: `event: data` (base64 unless `text/*` or JSON) each followed by `event: control`; ends after `streamClosed` |
//! | `HEAD` | metadata, `Cache-Control: no-store`; does not renew a TTL |
//! | `DELETE` | `204`; a stream that forks still use is soft-deleted (`410` from then on) until its last fork goes |
//! | `OPTIONS` | a CORS preflight answer |
//!
//! Every answer carries `X-Content-Type-Options: nosniff` and
//! `Cross-Origin-Resource-Policy: cross-origin`. `Stream-Seq` is scoped per stream.
//!
//! # Guarded writes
//!
//! A [`StreamAuthorizer`] sees every request (create, append, close, delete, read) before
//! anything else happens. The budget caps streams and bytes, overall and per client (by IP
//! address), and optionally the write rate: a client creating streams or appending in a loop
//! gets `429` (streams, rate) or `507` (bytes) with a message, and nobody else's stream is
//! touched. A full budget refuses the write; nothing acknowledged is ever evicted.
//!
//! # Differences from the SSE [`Hub`](crate::Hub)
//!
//! The hub keeps a bounded history of encoded SSE frames per channel and signals a gap with
//! `sse-reset`. A durable stream is the opposite: raw bytes (0x00–0xFF) that are never evicted,
//! created and deleted explicitly, closed by metadata rather than by an event in the log, and
//! addressed by byte (or JSON message) offsets that forks share. So this module keeps its own
//! log, registry and budget, and nothing here changes the hub's semantics. It stands on the
//! same ground: `Bytes` shared between the log and every reader (a fork shares its source's
//! buffers), waiters woken per append, one SSE body per follower reading from a cursor, a
//! shutdown token that ends live reads, and refusals with a message.
//!
//! # On Redis
//!
//! By default the streams are in memory: they live as long as the process, and a restarted
//! server answers `404` for them (never data from another life). With
//! [`DurableStreamsBuilder::redis`] (feature `redis`) they live on the Redis, single node or
//! Redis Cluster, of a [`RedisStore`](crate::store::RedisStore), through its connection: they
//! survive restarts and are the same streams on every instance on that Redis, and a read on
//! any instance sees every write acknowledged before it began.
//!
//! - **One slot per stream**: its metadata, its entries (never trimmed), its producer table and
//!   its `Stream-Seq` share one hash tag, and every write (create, append with its producer and
//!   sequence checks, close, delete) is one Lua script there: atomic, and a producer's retry
//!   after a lost reply is answered as a duplicate.
//! - **Forks are copied** up to the fork point (a script can touch one slot only, and a fork's
//!   slot is not its source's), with a reference counted on the source for the soft-delete
//!   rules.
//! - **Live reads** (long-poll, SSE) wake on a change notice that every write publishes, heard
//!   by one listener per process on a connection of its own, then read from Redis.
//! - **Redis unreachable or too slow** (the store's command timeout): `503` with `Retry-After`;
//!   retrying with the same producer headers stores the append once.
//! - The server-wide and per-client stream and byte budgets count only the memory backend;
//!   on Redis bound the space with its `maxmemory` (the per-stream size cap, the producer cap
//!   and the write rate per client apply to both).
#![cfg_attr(docsrs, doc(cfg(feature = "durable-streams")))]

mod backend;
mod budget;
mod builder;
mod endpoint;
mod error;
mod guard;
mod json;
mod log;
mod offset;
mod producer;
mod read;
#[cfg(feature = "redis")]
mod redis;
mod registry;
mod request;
mod sse;
mod stream;
mod time;
mod writer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use builder::DurableStreamsBuilder;
pub use endpoint::DurableStreamsEndpoint;
pub use guard::{Access, Denied, Operation, StreamAuthorizer};
pub use writer::WriteError;

/// A Durable Streams server: its streams and options. Clones share the streams.
#[derive(Clone)]
pub struct DurableStreams {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) backend: backend::Backend,
    pub(crate) options: builder::Options,
    pub(crate) authorizer: Option<Box<dyn StreamAuthorizer>>,
    pub(crate) shutdown: CancellationToken,
}

impl std::fmt::Debug for DurableStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (streams, bytes) = self.shared.backend.usage();
        f.debug_struct("DurableStreams")
            .field("streams", &streams)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

impl Default for DurableStreams {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl DurableStreams {
    /// A server with the default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The options.
    pub fn builder() -> DurableStreamsBuilder {
        DurableStreamsBuilder::default()
    }

    /// The poem endpoint; mount it with `nest`, e.g. `Route::new().nest("/v1/stream", ...)`.
    pub fn endpoint(&self) -> DurableStreamsEndpoint {
        DurableStreamsEndpoint {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Ends every live read (SSE responses end, long-polls answer `204`) and refuses new ones
    /// with `503`, so that a graceful shutdown is not held up by followers.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Streams on the server (soft-deleted ones included) and bytes their own appends hold
    /// (on Redis: `(0, 0)`, as the streams are not counted in this process).
    pub fn usage(&self) -> (usize, u64) {
        self.shared.backend.usage()
    }
}
