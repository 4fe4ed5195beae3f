//! The poem-sse-ext demo: server-rendered live dashboards over HTTP/2 + TLS.
//!
//! ```text
//! demo-app [--listen 127.0.0.1:8443] [--plain] [--cert certs/cert.pem --key certs/key.pem]
//!          [--store memory | --store redis://127.0.0.1:6379
//!           | --store redis-cluster://HOST:PORT[,HOST:PORT...]] [--heartbeat 15s] [--retry 3s]
//!          [--history 1000] [--publish-token TOKEN] [--allow-origin ORIGIN]...
//!          [--http2-max-streams 256] [--max-connections-per-ip 256]
//!          [--max-streams N] [--max-streams-per-ip N] [--max-stream-lifetime DUR]
//!          [--refusal-retry DUR]
//!          [--session-ttl 10m]
//! ```
//!
//! Pages: `/` (this machine's figures), `/notifications`, `/hub`, `/generate` (a run, see
//! [`generate`]), `/login`, `/me`. API: see [`api`]; described at `/openapi.json` ([`openapi`]).
//! Prometheus scrapes `/metrics`. Every route is in one table, [`app`]; the scripts and styles
//! are in [`assets`].
//!
//! # The showcase's choices, not the crate's
//!
//! This binary is tuned to show how many idle streams one process holds: it runs on mimalloc
//! (the `mimalloc` feature, on by default) and turns transparent huge pages off for itself
//! (`no_transparent_huge_pages`, Linux). Neither is needed to use poem-sse-ext: the crate
//! works with any global allocator, and an app that adds it keeps its own. Build with
//! `--no-default-features` for the system allocator.

mod api;
mod assets;
mod auth;
mod babble;
mod generate;
mod notification;
mod openapi;
mod origin;
mod pages;
mod policy;
mod publish;
mod run_stream;
mod security;
mod session;
mod sources;
mod state;
mod tls;
mod widgets;

/// See the `mimalloc` feature in Cargo.toml.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, str::FromStr, time::Duration};

use clap::Parser;
use poem::{get, post, EndpointExt, Route};
use poem_serve::{ReloadingTls, StreamServer};
use poem_sse_ext::{
    durable::{Access, Denied, DurableStreams},
    http::StreamOptions,
    Hub,
};

use crate::{origin::Origin, policy::PublishPolicy, session::Sessions};

/// Turns transparent huge pages off for this process (a choice of this showcase, with mimalloc;
/// see the crate doc above). mimalloc advises the kernel to back its
/// arenas with 2 MiB pages (`MADV_HUGEPAGE`), and it returns memory it no longer uses a few
/// milliseconds later: during a burst of stream set-ups the kernel then zeroes a whole 2 MiB page
/// at each fault that follows a purge. Measured with 10,000 HTTP/2 streams connecting: half the
/// server's CPU went to that zeroing (setup 42 µs per stream with huge pages, 22 without), and
/// idle memory per stream was higher (3.5 KiB against 2.6).
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            err = %std::io::Error::last_os_error(),
            "could not turn transparent huge pages off"
        );
    }
}

/// Server-rendered live dashboards over Server-Sent Events (HTTP/2 + TLS by default).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Serve cleartext HTTP/1.1 (and HTTP/2 with prior knowledge) instead of TLS; the dashboard
    /// needs one stream per browser either way.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    plain: bool,
    /// Certificate chain (PEM). Without --cert/--key, certs/cert.pem and certs/key.pem are used,
    /// and generated (self-signed, for localhost) when missing. Reloaded when the file changes.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Replay store: `memory`, a Redis URL (`redis://127.0.0.1:6379`), or the seed nodes of a
    /// Redis Cluster (`redis-cluster://127.0.0.1:7000,127.0.0.1:7001`, any order).
    #[arg(long, default_value = "memory")]
    store: StoreOption,
    /// Heartbeat comment after this much silence on a stream (`500ms`, `15s`, ...).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Base of the reconnection delay hinted to clients; up to as much again is added as jitter.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    retry: Duration,
    /// Events kept per channel for replay.
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// Require `Authorization: Bearer TOKEN` to publish through the API. Required when listening
    /// on an address other than loopback.
    #[arg(long, env = "DEMO_PUBLISH_TOKEN")]
    publish_token: Option<String>,
    /// Also let pages from ORIGIN (`https://dash.example.com`) publish from a browser; repeatable.
    /// A browser's post from any other origin than the server's own gets 403.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<Origin>,
    /// Most concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = 256)]
    http2_max_streams: u32,
    /// Most connections one client address may hold open; more are closed at once. 0: no limit.
    #[arg(long, default_value_t = poem_serve::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Serve HTTP/1.1 event streams through hyper like every other request, instead of the lean
    /// path that keeps no buffers for an idle stream (16–24 KiB more per idle HTTP/1.1 stream).
    #[arg(long)]
    no_lean_streams: bool,
    /// Most open streams in total; above it a stream gets a soft refusal (a `200` stream with a
    /// long retry hint and an `sse-busy` event: a native EventSource comes back later by itself).
    #[arg(long, default_value_t = 10_000)]
    max_streams: usize,
    /// Most open streams of one channel (soft refusal above it).
    #[arg(long, default_value_t = 10_000)]
    max_streams_per_channel: usize,
    /// Most open streams from one client address (soft refusal above it). 0: no limit.
    #[arg(long, default_value_t = 0)]
    max_streams_per_ip: usize,
    /// Base of the retry hint of a refused stream (`sse-busy`); up to as much again is added as
    /// jitter. Absent: the crate's default (10 s plus up to 20 s).
    #[arg(long, value_parser = humantime::parse_duration)]
    refusal_retry: Option<Duration>,
    /// End each stream after this long (±10 %) with a retry hint; the client resumes exactly.
    /// 0: never.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    max_stream_lifetime: Duration,
    /// How long a sign-in lasts; a `/me` page renews it when its stream's grant ends.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    session_ttl: Duration,
}

/// The `--store` option.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoreOption {
    Memory,
    Redis(String),
    /// The `redis://` URLs of the seed nodes.
    RedisCluster(Vec<String>),
}

impl StoreOption {
    /// A builder for the Redis store, if the store is Redis.
    fn redis(&self) -> Option<poem_sse_ext::store::RedisStoreBuilder> {
        match self {
            Self::Memory => None,
            Self::Redis(url) => Some(poem_sse_ext::store::RedisStore::builder(url.as_str())),
            Self::RedisCluster(seeds) => Some(poem_sse_ext::store::RedisStore::cluster_builder(
                seeds.clone(),
            )),
        }
    }
}

impl FromStr for StoreOption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Self::Redis(s.to_owned()))
        } else if let Some(nodes) = s.strip_prefix("redis-cluster://") {
            let seeds: Vec<String> = nodes
                .split(',')
                .map(|node| match node.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                        Ok(format!("redis://{node}"))
                    }
                    _ => Err(format!(
                        "expected redis-cluster://HOST:PORT[,HOST:PORT...], got `{s}` (`{node}` \
                         is not HOST:PORT)"
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok(Self::RedisCluster(seeds))
        } else {
            Err(format!(
                "expected `memory`, a redis:// URL or redis-cluster://HOST:PORT,..., got `{s}`"
            ))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    #[cfg(all(feature = "mimalloc", target_os = "linux"))]
    no_transparent_huge_pages();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("demo-app: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let policy = PublishPolicy::new(
        cli.publish_token.clone(),
        cli.allow_origin.clone(),
        cli.listen,
    )
    .map_err(|err| err.to_string())?;
    if let Some(redis) = cli.store.redis() {
        // A Redis of the other kind is refused here; one that is down is not (the demo starts
        // and reports it on /healthz until it is up).
        if let Err(err) = redis.verify_kind().await {
            return Err(err.to_string());
        }
    }
    let hub = build_hub(&cli)?;
    let runs = generate::runs(&hub, cli.store.redis(), cli.heartbeat, cli.retry)?;
    sources::spawn(&hub);
    // Durable streams live on the same Redis as the hub (a connection of their own), so they
    // survive a restart; on the memory store they die with the process.
    let durable_store = match cli.store.redis() {
        Some(redis) => Some(redis.connect_lazy().map_err(|err| err.to_string())?),
        None => None,
    };

    let tls = if cli.plain {
        None
    } else {
        let explicit = cli.cert.clone().zip(cli.key.clone());
        let (cert, key) = tls::cert_files(explicit).map_err(|err| err.to_string())?;
        Some(ReloadingTls::from_pem_files(cert, key).map_err(|err| err.to_string())?)
    };
    let stopping = hub.clone();
    let mut server = StreamServer::bind(cli.listen)
        .await
        .map_err(|err| format!("can not listen on {}: {err}", cli.listen))?
        .on_shutdown(move || stopping.shutdown())
        .http2_max_concurrent_streams(cli.http2_max_streams)
        .max_connections_per_ip(Some(cli.max_connections_per_ip))
        .lean_event_streams(!cli.no_lean_streams);
    let addr = server.local_addr().unwrap_or(cli.listen);
    let tls_on = tls.is_some();
    let sessions = session::Sessions::new(cli.session_ttl, tls_on)?;
    let scheme = if tls_on { "https" } else { "http" };
    if let Some(tls) = tls {
        server = server.tls(tls);
    }
    tracing::info!(
        url = %format!("{scheme}://{addr}/"),
        protocols = if scheme == "https" { "h2, http/1.1" } else { "http/1.1, h2c" },
        heartbeat = %humantime::format_duration(cli.heartbeat),
        history = cli.history,
        publish_token = cli.publish_token.is_some(),
        "demo-app listening"
    );
    server
        .run_with_graceful_shutdown(
            app(
                hub.clone(),
                policy,
                &runs,
                sessions,
                tls_on,
                durable_store.as_ref(),
            ),
            shutdown_signal(),
        )
        .await
        .map_err(|err| err.to_string())?;
    let metrics = hub.metrics();
    tracing::info!(
        published = metrics.total.published,
        delivered = metrics.total.delivered,
        open_streams = metrics.total.open_streams,
        "demo-app stopped"
    );
    Ok(())
}

fn build_hub(cli: &Cli) -> Result<Hub, String> {
    let mut builder = Hub::builder()
        .history(cli.history)
        .heartbeat(cli.heartbeat)
        .retry(cli.retry)
        .retry_jitter(cli.retry)
        .max_streams(cli.max_streams)
        .max_streams_per_channel(cli.max_streams_per_channel);
    if cli.max_streams_per_ip > 0 {
        builder = builder.max_streams_per_client(cli.max_streams_per_ip);
    }
    if let Some(base) = cli.refusal_retry {
        builder = builder.refusal_retry(base, base);
    }
    if !cli.max_stream_lifetime.is_zero() {
        builder = builder.max_stream_lifetime(cli.max_stream_lifetime);
    }
    match cli.store.redis() {
        None => Ok(builder.build()),
        // Lazy: the demo starts while Redis is down and reports it on /healthz until it is up.
        Some(redis) => {
            let store = redis
                .retention(builder.history_retention())
                .connect_lazy()
                .map_err(|err| err.to_string())?;
            Ok(builder.store(store).build())
        }
    }
}

/// The routes of the demo, all of them: pages, assets, event streams, the API.
/// `tls`: served over TLS (adds `Strict-Transport-Security`); `redis`: where durable streams
/// live (in memory without it).
fn app(
    hub: Hub,
    policy: PublishPolicy,
    runs: &poem_sse_ext::run::Runs,
    sessions: Sessions,
    tls: bool,
    redis: Option<&poem_sse_ext::store::RedisStore>,
) -> impl poem::Endpoint {
    let events = StreamOptions::new().authorize_with(sessions.clone());
    let prompts = generate::Prompts::default();
    let durable = durable_streams(&hub, &policy, &sessions, redis);
    let data = AppData {
        hub: hub.clone(),
        policy,
        sessions: sessions.clone(),
    };
    Route::new()
        // Pages.
        .at("/", data.on(get(pages::dashboard)))
        .at("/notifications", data.on(get(pages::notifications)))
        .at("/hub", data.on(get(pages::hub_page)))
        .at("/generate", get(generate::form_page))
        .at(
            "/generate/:id",
            get(generate::run_page.data(runs.clone()).data(prompts.clone())),
        )
        .at("/login", data.on(get(auth::login_page).post(auth::login)))
        .at("/logout", data.on(post(auth::logout)))
        .at("/session/renew", data.on(post(auth::renew)))
        .at("/me", data.on(get(auth::me)))
        .at("/assets/*path", get(assets::serve))
        // Event streams: without the pages' data (see `AppData`); a channel's stream is served
        // in front of the routes, below.
        .at("/events", hub.set_endpoint().options(events.clone()))
        .at("/runs/:id/events", runs.endpoint())
        // The API.
        .at("/healthz", data.on(get(api::healthz)))
        .at(
            "/api/channels/:channel/events",
            data.on(post(publish::publish)),
        )
        .at("/api/hub/metrics", data.on(get(api::hub_metrics)))
        .at("/api/state/:page", data.on(get(api::page_state)))
        .at(
            "/api/runs",
            post(
                generate::start_run
                    .data(runs.clone())
                    .data(prompts)
                    .data(durable.clone()),
            ),
        )
        .at("/api/runs/:id/cancel", runs.cancel_endpoint())
        .at("/metrics", get(api::Scrape(hub.metrics_endpoint())))
        .at("/openapi.json", data.on(get(openapi::openapi_json)))
        .nest("/v1/stream", durable.endpoint())
        // `/events/{channel}`: the hot path, answered before routing (no route boxing or
        // bookkeeping per stream), inside the security headers like every other answer.
        .with(hub.endpoint().options(events).mount("/events/"))
        .with(security::SecurityHeaders::new(tls))
}

/// Durable Streams at `/v1/stream/`: reads are open, writes are guarded like publishing (the
/// publish token when one is set, without one the demo listens on loopback only; a stream named
/// like a private channel is written by its owner's session), and the hub's shutdown ends their
/// live reads.
fn durable_streams(
    hub: &Hub,
    policy: &PublishPolicy,
    sessions: &Sessions,
    redis: Option<&poem_sse_ext::store::RedisStore>,
) -> DurableStreams {
    let (policy, sessions) = (policy.clone(), sessions.clone());
    let mut builder = DurableStreams::builder();
    if let Some(redis) = redis {
        builder = builder.redis(redis);
    }
    builder
        .shutdown_token(hub.shutdown_token())
        .authorizer(move |access: &Access<'_>| {
            if !access.operation.is_write() {
                return Ok(());
            }
            policy
                .check(access.request, access.stream, &sessions)
                .map_err(|err| {
                    if poem::error::ResponseError::status(&err)
                        == poem::http::StatusCode::UNAUTHORIZED
                    {
                        Denied::unauthorized(err.to_string())
                    } else {
                        Denied::forbidden(err.to_string())
                    }
                })
        })
        .build()
}

/// What the pages and the API extract (`Data<&Hub>`, ...), added to every route but the event
/// streams. A stream's set-up is the hot path and needs none of it: the three layers cost it
/// three extension inserts and a request future that carries every layer's copy of the request,
/// a ninth of the instructions its routes and endpoint take (callgrind, in process).
struct AppData {
    hub: Hub,
    policy: PublishPolicy,
    sessions: Sessions,
}

impl AppData {
    fn on(&self, route: impl poem::IntoEndpoint<Endpoint: 'static>) -> impl poem::Endpoint {
        route
            .into_endpoint()
            .data(self.hub.clone())
            .data(self.policy.clone())
            .data(self.sessions.clone())
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: ending every stream");
}

#[cfg(test)]
mod tests {
    use poem::Endpoint;

    use super::*;

    #[test]
    fn a_cluster_store_takes_its_seed_nodes_in_any_order() {
        assert_eq!(
            "redis-cluster://127.0.0.1:7001,localhost:7000".parse(),
            Ok(StoreOption::RedisCluster(vec![
                "redis://127.0.0.1:7001".to_owned(),
                "redis://localhost:7000".to_owned()
            ]))
        );
        for bad in [
            "redis-cluster://",
            "redis-cluster://host",
            "redis-cluster://h:1,:2",
            "x",
        ] {
            let refused = bad.parse::<StoreOption>();
            assert!(refused.is_err(), "{bad}: {refused:?}");
        }
    }

    /// Every request's future runs through the whole app, and each layer around the routes keeps
    /// its own copy of the request in it; the future is boxed (and so copied) once per request,
    /// and an event stream's set-up is the demo's hot path. The pages' data layers are therefore
    /// added per route (`AppData`): on the whole app they made this future 5,920 bytes in a debug
    /// build (6,408 in release); without them it is 3,040 in both.
    #[tokio::test]
    async fn an_event_streams_request_future_carries_no_page_layers() {
        let cli = Cli::parse_from(["demo-app", "--plain"]);
        let hub = build_hub(&cli).expect("hub");
        let policy = PublishPolicy::new(None, Vec::new(), cli.listen).expect("policy");
        let runs = generate::runs(&hub, None, cli.heartbeat, cli.retry).expect("runs");
        let sessions = session::Sessions::new(cli.session_ttl, false).expect("sessions");
        let app = app(hub, policy, &runs, sessions, false, None);
        let req = poem::Request::builder().uri_str("/events/cpu").finish();
        let size = std::mem::size_of_val(&app.get_response(req));
        assert!(size <= 4_096, "the app's request future is {size} bytes");
    }
}
