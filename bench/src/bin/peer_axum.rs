//! Peer server: axum's `Sse` fed by one tokio broadcast channel per SSE channel, with
//! `KeepAlive` every 15 s. Same routes as the demo's events/publish API.
//! Shutdown: axum's graceful shutdown on SIGTERM; the process exits when the connections end
//! or after a 10 s grace period, whichever comes first.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bench::peer::{shutdown_signal, valid_channel, PeerArgs, Registry, SHUTDOWN_GRACE};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

#[derive(Clone)]
struct State {
    registry: Registry,
    args: PeerArgs,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn events(
    Path(channel): Path<String>,
    AxState(state): AxState<State>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, StatusCode> {
    if !valid_channel(&channel) {
        return Err(StatusCode::BAD_REQUEST);
    }
    let stream =
        BroadcastStream::new(state.registry.subscribe(&channel)).filter_map(|m| async move {
            // A lagged receiver loses the events it missed: that is this design's behaviour.
            let m = m.ok()?;
            let ev = Event::default().data(&m.data).id(m.id.to_string());
            Some(Ok(match &m.event {
                Some(t) => ev.event(t),
                None => ev,
            }))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.args.heartbeat)))
}

async fn publish(
    Path(channel): Path<String>,
    AxState(state): AxState<State>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state
        .registry
        .publish(&channel, auth, state.args.token.as_deref(), &body)
    {
        Ok(id) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "id": id.to_string() })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(serde_json::json!({ "error": e.message })),
        )
            .into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = PeerArgs::from_env()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let state = State {
        registry: Registry::default(),
        args,
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/events/{channel}", get(events))
        .route("/api/channels/{channel}/events", post(publish))
        .with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = tx.send(());
    });
    let grace = async move {
        if rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = server => r?,
        _ = grace => {}
    }
    Ok(())
}
