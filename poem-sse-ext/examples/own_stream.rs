//! A stream of your own, written with `async_stream::stream!` and served through
//! `SseResponse`: a countdown from the number in the path, one event a second, then a `done`
//! event, and the response ends. No hub, no replay; heartbeats, the jittered `retry:` hint and
//! shutdown work as they do for a hub's streams.
//!
//! ```text
//! cargo run -p poem-sse-ext --example own_stream
//! curl -N http://127.0.0.1:3000/countdown/5
//! ```
//!
//! (A browser's `EventSource` reconnects after the `retry:` hint when a response ends, and so
//! would count down again; curl just stops.) Ctrl-C ends the open countdowns and the server.

use std::{error::Error, time::Duration};

use futures_util::Stream;
use poem::{
    get, handler,
    listener::TcpListener,
    web::{Data, Path},
    EndpointExt, Request, Route, Server,
};
use poem_sse_ext::{http::SseResponse, Event};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let shutdown = CancellationToken::new();
    let app = Route::new()
        .at("/countdown/:from", get(countdown))
        .data(shutdown.clone());

    let signal = async move {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("can not listen for ctrl-c ({error}); shutting down");
        }
        shutdown.cancel(); // every countdown ends itself, so the server exits at once
    };
    println!("listening on http://127.0.0.1:3000; try: curl -N http://127.0.0.1:3000/countdown/5");
    Server::new(TcpListener::bind("127.0.0.1:3000"))
        .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(5)))
        .await?;
    Ok(())
}

/// `GET /countdown/:from`: a path that is not a number gets `400` from poem.
#[handler]
fn countdown(
    req: &Request,
    Path(from): Path<u32>,
    Data(shutdown): Data<&CancellationToken>,
) -> SseResponse<impl Stream<Item = Event> + Send + 'static> {
    SseResponse::new(count_down(from))
        .http_version(req.version()) // `Connection: keep-alive` on HTTP/1.x only
        .retry(Duration::from_secs(3), Duration::from_secs(2))
        .shutdown(shutdown.clone())
}

/// `from`, `from - 1`, ... `0`, one second apart, then `{"counted_from": from}` named `done`.
fn count_down(from: u32) -> impl Stream<Item = Event> + Send + 'static {
    async_stream::stream! {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        for left in (0..=from).rev() {
            interval.tick().await;
            yield Event::text(left.to_string());
        }
        match Event::json(&json!({ "counted_from": from })).and_then(|event| event.event("done")) {
            Ok(done) => yield done,
            Err(error) => eprintln!("the done event could not be built: {error}"),
        }
    }
}
