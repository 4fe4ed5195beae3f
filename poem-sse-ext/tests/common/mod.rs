//! A real poem server on an ephemeral loopback port, and the stores the shared suite runs on.
#![allow(dead_code)] // each test binary uses a different part

use std::{net::SocketAddr, time::Duration};

use poem::{
    listener::{Acceptor, Listener, TcpListener},
    Endpoint, EndpointExt, Route, Server,
};
use poem_sse_ext::{
    run::{Runs, RunsBuilder},
    Hub, HubBuilder,
};
use tokio::{sync::oneshot, task::JoinHandle};

pub use testkit::sse_client::SseConnection;

/// Bounded waits used throughout.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server: its base URL, and a handle to stop it.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Serves `app` on `127.0.0.1:<free port>`, HTTP/1.1 and h2c (prior knowledge).
    pub async fn start(app: impl Endpoint + 'static) -> Self {
        Self::start_with_hub(app, None).await
    }

    /// Like [`TestServer::start`]; stopping the server first calls `hub.shutdown()`, as an app
    /// should, so that open streams end themselves.
    pub async fn start_with_hub(app: impl Endpoint + 'static, hub: Option<Hub>) -> Self {
        Self::start_on("127.0.0.1:0", app, hub).await
    }

    /// Like [`TestServer::start_with_hub`], on `addr` (the port a stopped server had, to restart
    /// it where its clients reconnect).
    pub async fn start_on(addr: &str, app: impl Endpoint + 'static, hub: Option<Hub>) -> Self {
        let acceptor = TcpListener::bind(addr.to_owned())
            .into_acceptor()
            .await
            .expect("bind a loopback port");
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().copied())
            .expect("a socket address");
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
            if let Some(hub) = hub {
                hub.shutdown();
            }
        };
        let task = tokio::spawn(
            Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                app.map_to_response(),
                signal,
                Some(Duration::from_secs(10)),
            ),
        );
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Begins graceful shutdown and waits for the server to exit; returns how long it took.
    pub async fn stop(mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An HTTP/1.1 client (one connection per stream).
pub fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// An HTTP/2 client over cleartext with prior knowledge (streams share a connection).
pub fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// Gives runs a store under a key prefix.
type ShareRuns = dyn Fn(RunsBuilder, &str) -> RunsBuilder + Send + Sync;

/// The stores the shared replay suite runs on. Each entry names itself and configures a hub
/// builder to use it; `None` means the store's backend is not available (it printed why).
pub struct Backend {
    pub name: &'static str,
    configure: Box<dyn Fn(HubBuilder) -> HubBuilder + Send + Sync>,
    /// Gives runs a store on this backend (the identity for the in-memory store).
    configure_runs: Box<dyn Fn(RunsBuilder) -> RunsBuilder + Send + Sync>,
    /// Gives runs the store under a key prefix, for instances sharing it; `None` for a store
    /// that lives in one process.
    share_runs: Option<Box<ShareRuns>>,
    /// Keeps the backend's server (if any) running while the backend is in use.
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Backend {
    pub fn hub(&self, builder: HubBuilder) -> Hub {
        (self.configure)(builder).build()
    }

    /// Runs whose hub keeps them on this backend.
    pub fn runs(&self, builder: RunsBuilder) -> Runs {
        (self.configure_runs)(builder).build()
    }

    /// `n` instances' runs on one shared store (each built from `builder()`), when this backend
    /// can be shared; `None` for the in-memory store.
    pub fn instances(&self, n: usize, builder: impl Fn() -> RunsBuilder) -> Option<Vec<Runs>> {
        static GROUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let share = self.share_runs.as_ref()?;
        let group = GROUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("shared{group}");
        Some((0..n).map(|_| share(builder(), &prefix).build()).collect())
    }
}

/// Every backend available here. The in-memory store always; others when their server runs.
pub async fn backends() -> Vec<Backend> {
    #[allow(unused_mut)]
    let mut backends = vec![Backend {
        name: "memory",
        configure: Box::new(|builder| builder),
        configure_runs: Box::new(|builder| builder),
        share_runs: None,
        _guard: None,
    }];
    #[cfg(feature = "redis")]
    backends.extend(redis_backend());
    #[cfg(feature = "redis-cluster")]
    backends.extend(redis_cluster_backend());
    backends
}

/// A Redis Streams store on a `redis-server` of its own; each hub gets its own key prefix, so
/// hubs are as independent as in-memory ones.
#[cfg(feature = "redis")]
fn redis_backend() -> Option<Backend> {
    let server = testkit::redis::RedisServer::start().expect("redis-server starts")?;
    let url = server.url();
    redis_backend_on(
        "redis",
        move || poem_sse_ext::store::RedisStore::builder(url.as_str()),
        Box::new(server),
    )
}

/// The same store on a Redis Cluster (3 masters, 3 replicas) shared by the tests of this binary.
#[cfg(feature = "redis-cluster")]
fn redis_cluster_backend() -> Option<Backend> {
    let cluster = testkit::redis_cluster::RedisCluster::shared().expect("redis cluster starts")?;
    let seeds = cluster.seeds();
    redis_backend_on(
        "redis-cluster",
        move || poem_sse_ext::store::RedisStore::cluster_builder(seeds.clone()),
        Box::new(cluster),
    )
}

#[cfg(feature = "redis")]
fn redis_backend_on(
    name: &'static str,
    builder: impl Fn() -> poem_sse_ext::store::RedisStoreBuilder + Send + Sync + Clone + 'static,
    guard: Box<dyn std::any::Any + Send + Sync>,
) -> Option<Backend> {
    // Unique across the binary: a shared cluster serves several tests at once.
    static HUBS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let shared_builder = builder.clone();
    let store = move |prefix: &str, retention| {
        let n = HUBS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        builder()
            .prefix(format!("{prefix}{n}"))
            .retention(retention)
            .connect_lazy()
            .expect("redis store")
    };
    let runs_store = store.clone();
    Some(Backend {
        name,
        configure: Box::new(move |builder| {
            let store = store("hub", builder.history_retention());
            builder.store(store)
        }),
        configure_runs: Box::new(move |builder| {
            let store = runs_store("runs", builder.retention());
            builder.store(store)
        }),
        share_runs: Some(Box::new(move |builder, prefix| {
            let store = shared_builder()
                .prefix(prefix)
                .retention(builder.retention())
                .connect_lazy()
                .expect("redis store");
            builder.store(store)
        })),
        _guard: Some(guard),
    })
}

/// A hub on `backend` served at `/events/:channel`.
pub async fn serve(hub: &Hub) -> TestServer {
    let app = Route::new().at("/events/:channel", hub.endpoint());
    TestServer::start_with_hub(app, Some(hub.clone())).await
}

/// Publishes `data` on `channel` and returns the id.
pub async fn publish(hub: &Hub, channel: &str, data: &str) -> String {
    hub.publish(channel, poem_sse_ext::Event::text(data))
        .await
        .expect("publish")
        .to_string()
}

/// Connects and checks the stream opened.
pub async fn connect(client: &reqwest::Client, url: &str, last_id: Option<&str>) -> SseConnection {
    let conn = SseConnection::connect(client, url, last_id)
        .await
        .expect("connect");
    assert_eq!(conn.status(), 200, "stream refused: {url}");
    conn
}

/// The data of `n` events, read within [`WAIT`].
pub async fn data_of(conn: &mut SseConnection, n: usize) -> Vec<String> {
    conn.next_events(n, WAIT)
        .await
        .expect("events")
        .into_iter()
        .map(|event| event.data)
        .collect()
}
