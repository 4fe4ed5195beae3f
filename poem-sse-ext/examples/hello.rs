//! The README's "Add it to an app" as a whole server: a hub, its endpoint at
//! `/events/:channel`, and a task that publishes a JSON `tick` every second on the channel
//! `ticks`.
//!
//! ```text
//! cargo run -p poem-sse-ext --example hello
//! curl -N http://127.0.0.1:3000/events/ticks
//! curl -N -H 'Last-Event-ID: <an id it showed>' http://127.0.0.1:3000/events/ticks   # resumes after it
//! ```
//!
//! Ctrl-C ends every open stream at once, and the server exits.

use std::{
    error::Error,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use poem::{listener::TcpListener, Route, Server};
use poem_sse_ext::{Event, EventId, Hub, PublishError};
use serde_json::json;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let hub = Hub::builder()
        .history(1_000) // events kept per channel for replay
        .heartbeat(Duration::from_secs(15)) // a comment after 15 s without events
        .build();
    let app = Route::new().at("/events/:channel", hub.endpoint());

    // Anywhere in the app (the hub is cheap to clone):
    tokio::spawn(publish_ticks(hub.clone()));

    let signal = {
        let hub = hub.clone();
        async move {
            if let Err(error) = tokio::signal::ctrl_c().await {
                eprintln!("can not listen for ctrl-c ({error}); shutting down");
            }
            hub.shutdown(); // every stream ends itself, so the server exits at once
        }
    };
    println!("listening on http://127.0.0.1:3000; try: curl -N http://127.0.0.1:3000/events/ticks");
    Server::new(TcpListener::bind("127.0.0.1:3000"))
        .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(5)))
        .await?;
    Ok(())
}

/// Publishes a tick every second until publishing fails (when the hub shuts down).
async fn publish_ticks(hub: Hub) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        interval.tick().await;
        if let Err(error) = publish_tick(&hub, n).await {
            eprintln!("publishing stopped: {error}");
            return;
        }
    }
}

/// One tick: `{"n": .., "unix_ms": ..}` as a `tick` event on the channel `ticks`.
async fn publish_tick(hub: &Hub, n: u64) -> Result<EventId, PublishError> {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let event = Event::json(&json!({ "n": n, "unix_ms": unix_ms }))?.event("tick")?;
    hub.publish("ticks", event).await
}
