//! The poem-sse-ext demo: server-rendered live dashboards over HTTP/2 + TLS.
//!
//! ```text
//! demo-app [--listen 127.0.0.1:8443] [--plain] [--cert certs/cert.pem --key certs/key.pem]
//!          [--store memory | --store redis://127.0.0.1:6379] [--heartbeat 15s] [--retry 3s]
//!          [--history 1000] [--publish-token TOKEN]
//! ```
//!
//! Pages: `/` (this machine's figures), `/notifications`, `/hub`, `/generate` (a run, see
//! [`generate`]). API: see [`api`].

mod api;
mod babble;
mod generate;
mod live;
mod pages;
mod sources;
mod tls;
mod widgets;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, str::FromStr, time::Duration};

use clap::Parser;
use poem::{get, post, EndpointExt, Route};
use poem_sse_ext::{
    server::{ReloadingTls, SseServer},
    Hub,
};

use crate::{api::PublishToken, live::Live};

/// Server-rendered live dashboards over Server-Sent Events (HTTP/2 + TLS by default).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Serve cleartext HTTP/1.1 (and HTTP/2 with prior knowledge) instead of TLS, for use behind
    /// a proxy.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    plain: bool,
    /// Certificate chain (PEM). Without --cert/--key, certs/cert.pem and certs/key.pem are used,
    /// and generated (self-signed, for localhost) when missing. Reloaded when the file changes.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Replay store: `memory`, or a Redis URL (`redis://127.0.0.1:6379`).
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
    /// Require `Authorization: Bearer TOKEN` to publish through the API.
    #[arg(long, env = "DEMO_PUBLISH_TOKEN")]
    publish_token: Option<String>,
    /// Most concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = 256)]
    http2_max_streams: u32,
}

/// The `--store` option.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoreOption {
    Memory,
    Redis(String),
}

impl FromStr for StoreOption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Self::Redis(s.to_owned()))
        } else {
            Err(format!("expected `memory` or a redis:// URL, got `{s}`"))
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
    let hub = build_hub(&cli)?;
    let live = Live::new(hub.clone());
    let redis = match &cli.store {
        StoreOption::Redis(url) => Some(url.as_str()),
        StoreOption::Memory => None,
    };
    let runs = generate::runs(&hub, redis, cli.heartbeat, cli.retry)?;
    sources::spawn(&live);

    let tls = if cli.plain {
        None
    } else {
        let explicit = cli.cert.clone().zip(cli.key.clone());
        let (cert, key) = tls::cert_files(explicit).map_err(|err| err.to_string())?;
        Some(ReloadingTls::from_pem_files(cert, key).map_err(|err| err.to_string())?)
    };
    let mut server = SseServer::bind(cli.listen)
        .await
        .map_err(|err| format!("can not listen on {}: {err}", cli.listen))?
        .hub(hub.clone())
        .http2_max_concurrent_streams(cli.http2_max_streams);
    let addr = server.local_addr().unwrap_or(cli.listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
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
            app(live, PublishToken(cli.publish_token), &runs),
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
    let builder = Hub::builder()
        .history(cli.history)
        .heartbeat(cli.heartbeat)
        .retry(cli.retry)
        .retry_jitter(cli.retry);
    match &cli.store {
        StoreOption::Memory => Ok(builder.build()),
        // Lazy: the demo starts while Redis is down and reports it on /healthz until it is up.
        StoreOption::Redis(url) => {
            let store = poem_sse_ext::store::RedisStore::builder(url.as_str())
                .retention(builder.history_retention())
                .connect_lazy()
                .map_err(|err| err.to_string())?;
            Ok(builder.store(store).build())
        }
    }
}

/// The routes of the demo.
fn app(live: Live, token: PublishToken, runs: &poem_sse_ext::run::Runs) -> impl poem::Endpoint {
    let hub = live.hub().clone();
    generate::mount(Route::new(), runs)
        .at("/", get(pages::dashboard))
        .at("/notifications", get(pages::notifications))
        .at("/hub", get(pages::hub))
        .at("/assets/client.js", get(pages::client_js))
        .at("/assets/style.css", get(pages::style_css))
        .at("/events/:channel", get(hub.endpoint()))
        .at("/healthz", get(api::healthz))
        .at("/api/channels/:channel/events", post(api::publish))
        .at("/api/hub/metrics", get(api::hub_metrics))
        .at("/api/state/:page", get(api::page_state))
        .data(live)
        .data(token)
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
