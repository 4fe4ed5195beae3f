//! Peer server: poem's built-in `poem::web::sse::SSE`, fed by one tokio broadcast channel per
//! SSE channel, with a 15 s keep-alive comment. Same routes as the demo's events/publish API.
//! Shutdown: poem's graceful shutdown on SIGTERM with a 10 s grace period.

use bench::peer::{shutdown_signal, valid_channel, PeerArgs, Registry, SHUTDOWN_GRACE};
use futures_util::StreamExt;
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::web::sse::{Event, SSE};
use poem::web::{Data, Path};
use poem::{get, handler, post, Body, EndpointExt, Request, Response, Route, Server};
use tokio_stream::wrappers::BroadcastStream;

#[derive(Clone)]
struct State {
    registry: Registry,
    args: PeerArgs,
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
fn events(Path(channel): Path<String>, Data(state): Data<&State>) -> poem::Result<SSE> {
    if !valid_channel(&channel) {
        return Err(poem::Error::from_status(StatusCode::BAD_REQUEST));
    }
    let stream =
        BroadcastStream::new(state.registry.subscribe(&channel)).filter_map(|m| async move {
            // A lagged receiver loses the events it missed: that is this design's behaviour.
            let m = m.ok()?;
            let ev = Event::message(m.data.clone()).id(m.id.to_string());
            Some(match &m.event {
                Some(t) => ev.event_type(t.clone()),
                None => ev,
            })
        });
    Ok(SSE::new(stream).keep_alive(state.args.heartbeat))
}

#[handler]
async fn publish(
    Path(channel): Path<String>,
    req: &Request,
    body: Body,
    Data(state): Data<&State>,
) -> Response {
    let auth = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let body = match body.into_bytes().await {
        Ok(b) => b,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": e.to_string() }),
            )
        }
    };
    match state
        .registry
        .publish(&channel, auth, state.args.token.as_deref(), &body)
    {
        Ok(id) => json(
            StatusCode::CREATED,
            serde_json::json!({ "id": id.to_string() }),
        ),
        Err(e) => json(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            serde_json::json!({ "error": e.message }),
        ),
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(v.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = PeerArgs::from_env()?;
    let listen = args.listen;
    let state = State {
        registry: Registry::default(),
        args,
    };
    let app = Route::new()
        .at("/healthz", get(healthz))
        .at("/events/:channel", get(events))
        .at("/api/channels/:channel/events", post(publish))
        .data(state);
    Server::new(TcpListener::bind(listen))
        .run_with_graceful_shutdown(app, shutdown_signal(), Some(SHUTDOWN_GRACE))
        .await?;
    Ok(())
}
