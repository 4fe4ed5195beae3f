//! [`DurableStreamsBuilder`]: the options of a [`DurableStreams`] server.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

#[cfg(feature = "redis")]
use super::redis::{RedisLink, RedisStreams};
use super::{
    backend::Backend,
    budget::{Budget, Limits},
    guard::StreamAuthorizer,
    registry::Registry,
    DurableStreams, Shared,
};

/// The options of a Durable Streams server; [`DurableStreams::builder`] makes one.
#[must_use]
pub struct DurableStreamsBuilder {
    limits: Limits,
    pub(crate) options: Options,
    authorizer: Option<Box<dyn StreamAuthorizer>>,
    shutdown: CancellationToken,
    #[cfg(feature = "redis")]
    store: Option<RedisLink>,
}

/// The options the endpoint reads on every request.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) long_poll_timeout: Duration,
    pub(crate) sse_lifetime: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) read_chunk_bytes: u64,
    pub(crate) allow_origin: Option<String>,
}

impl Default for DurableStreamsBuilder {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            options: Options {
                long_poll_timeout: Duration::from_secs(20),
                sse_lifetime: Duration::from_secs(60),
                heartbeat: Duration::from_secs(15),
                read_chunk_bytes: 1 << 20,
                allow_origin: None,
            },
            authorizer: None,
            shutdown: CancellationToken::new(),
            #[cfg(feature = "redis")]
            store: None,
        }
    }
}

impl std::fmt::Debug for DurableStreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStreamsBuilder")
            .field("limits", &self.limits)
            .field("options", &self.options)
            .field("authorizer", &self.authorizer.is_some())
            .finish_non_exhaustive()
    }
}

impl DurableStreamsBuilder {
    /// How long a `live=long-poll` read waits for data before it answers `204`.
    /// Default is currently 20 seconds.
    pub fn long_poll_timeout(mut self, timeout: Duration) -> Self {
        self.options.long_poll_timeout = timeout;
        self
    }

    /// How long a `live=sse` response stays open before the server ends it (the client resumes
    /// from the last `streamNextOffset`; the protocol asks for about a minute, so that CDNs can
    /// collapse followers). Default is currently 60 seconds.
    pub fn sse_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.sse_lifetime = lifetime;
        self
    }

    /// The idle time after which an SSE response sends a comment line, so that proxies keep the
    /// connection. Default is currently 15 seconds.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.options.heartbeat = interval;
        self
    }

    /// The most data one catch-up or long-poll answer, or one SSE `data` event, carries; the
    /// client reads on from `Stream-Next-Offset`. Default is currently 1 MiB.
    pub fn read_chunk_bytes(mut self, bytes: u64) -> Self {
        self.options.read_chunk_bytes = bytes.max(1);
        self
    }

    /// Sends `Access-Control-Allow-Origin: <origin>` (and exposes the protocol's headers) on
    /// every answer, for browser clients on another origin. Default is currently none: the
    /// endpoint still answers CORS preflights, but grants no origin.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.options.allow_origin = Some(origin.into());
        self
    }

    /// The [`StreamAuthorizer`] every request passes first. Default is currently none: every
    /// request is allowed (guard a public server!).
    pub fn authorizer(mut self, authorizer: impl StreamAuthorizer) -> Self {
        self.authorizer = Some(Box::new(authorizer));
        self
    }

    /// Streams on the server at most (a create past it is a `429`). Default is currently
    /// 100,000.
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.limits.max_streams = streams;
        self
    }

    /// Streams one client (by IP address) may own (`429` past it). Default is currently 10,000.
    pub fn max_streams_per_client(mut self, streams: usize) -> Self {
        self.limits.max_streams_per_client = streams;
        self
    }

    /// Bytes of data one stream may hold (`413` for the append that would pass it). Default is
    /// currently 64 MiB.
    pub fn max_stream_bytes(mut self, bytes: u64) -> Self {
        self.limits.max_stream_bytes = bytes;
        self
    }

    /// Bytes of data on the whole server (`507` past it). Default is currently 1 GiB.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.limits.max_total_bytes = bytes;
        self
    }

    /// Bytes one client (by IP address) may have written and not deleted (`507` past it).
    /// Default is currently 256 MiB.
    pub fn max_bytes_per_client(mut self, bytes: u64) -> Self {
        self.limits.max_bytes_per_client = bytes;
        self
    }

    /// The largest request body (`413` past it). Default is currently 16 MiB.
    pub fn max_append_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_append_bytes = bytes;
        self
    }

    /// Writes (`PUT`, `POST`, `DELETE`) per second one client may send (`429` with
    /// `Retry-After` past it). Default is currently unlimited.
    pub fn writes_per_second_per_client(mut self, writes: u32) -> Self {
        self.limits.writes_per_second_per_client = Some(writes);
        self
    }

    /// Uses `token` as the shutdown signal: cancelling it ends every live read (SSE responses
    /// end, long-polls answer `204`), so that a graceful shutdown is not held up. Default is a
    /// token of its own, cancelled by [`DurableStreams::shutdown`].
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Keeps the streams on the Redis (single node or cluster) of `store`, through its
    /// connection, instead of in this process (feature `redis`): they survive restarts and are
    /// the same streams on every instance on that Redis. See the
    /// [module documentation](super#on-redis) for the keys and what each operation costs.
    /// Default is currently in memory.
    ///
    /// ```no_run
    /// use poem_sse_ext::{durable::DurableStreams, store::RedisStore};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::builder("redis://127.0.0.1:6379").connect().await?;
    /// let streams = DurableStreams::builder().redis(&store).build();
    /// # let _ = streams;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, store: &crate::store::RedisStore) -> Self {
        self.store = Some(RedisLink::of(store));
        self
    }

    /// The server.
    ///
    /// # Panics
    /// With [`redis`](Self::redis), outside a tokio runtime: it starts the task that hears
    /// other instances' appends.
    pub fn build(self) -> DurableStreams {
        let budget = Budget::new(self.limits);
        #[cfg(feature = "redis")]
        let backend = match self.store {
            Some(link) => Backend::Redis(RedisStreams::new(link, budget)),
            None => Backend::Memory(Registry::new(budget)),
        };
        #[cfg(not(feature = "redis"))]
        let backend = Backend::Memory(Registry::new(budget));
        DurableStreams {
            shared: Arc::new(Shared {
                backend,
                options: self.options,
                authorizer: self.authorizer,
                shutdown: self.shutdown,
            }),
        }
    }
}
