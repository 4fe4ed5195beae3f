//! Two instances of an app on one Redis (feature `redis`): instance A on port 3001 and instance B
//! on port 3002, each a hub with a `RedisStore` on the same server. A publishes a `tick` every
//! second on the channel `ticks`; a client of B receives it, with the same id, and can resume
//! with that id on either instance.
//!
//! ```text
//! redis-server --port 6379 --save '' &     # Redis >= 7.0
//! cargo run -p poem-sse-ext --features redis --example redis_instances [-- redis://127.0.0.1:6379]
//! curl -N http://127.0.0.1:3002/events/ticks   # instance B: receives what A publishes
//! curl -N http://127.0.0.1:3001/events/ticks   # instance A: the same events with the same ids
//! ```
//!
//! Ctrl-C ends every stream on both instances, and the program exits.

use std::{error::Error, time::Duration};

use poem::{listener::TcpListener, Route, Server};
use poem_sse_ext::{store::RedisStore, Event, EventId, Hub, PublishError};
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
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // In production these are two processes, usually on two machines; here, two hubs in one.
    let a = instance(&url).await?;
    let b = instance(&url).await?;

    tokio::spawn(publish_ticks(a.clone()));

    let stop = CancellationToken::new();
    println!("instance A on http://127.0.0.1:3001, instance B on http://127.0.0.1:3002");
    println!("A publishes; try: curl -N http://127.0.0.1:3002/events/ticks");
    // Ends at the first error (a port in use, say) or when both servers are done.
    tokio::try_join!(
        serve(a, 3001, stop.clone()),
        serve(b, 3002, stop.clone()),
        async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                eprintln!("can not listen for ctrl-c ({error}); shutting down");
            }
            stop.cancel();
            Ok::<_, std::io::Error>(())
        },
    )?;
    Ok(())
}

/// A hub whose replay store is the Redis server at `url`.
async fn instance(url: &str) -> Result<Hub, String> {
    let store = RedisStore::builder(url)
        .connect()
        .await
        .map_err(|error| format!("{error}; is a redis-server (>= 7.0) running at {url}?"))?;
    Ok(Hub::builder().store(store).build())
}

/// Serves `hub` on `127.0.0.1:port` until `stop` is cancelled, then ends its streams and exits.
async fn serve(hub: Hub, port: u16, stop: CancellationToken) -> std::io::Result<()> {
    let app = Route::new().at("/events/:channel", hub.endpoint());
    let signal = async move {
        stop.cancelled().await;
        hub.shutdown();
    };
    Server::new(TcpListener::bind(("127.0.0.1", port)))
        .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(5)))
        .await
}

/// Publishes a tick every second until publishing fails (when the hub shuts down). While Redis
/// is unreachable a publish fails too; this example then stops, an app would retry or report it.
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

/// One tick: `{"n": .., "from": "instance A"}` as a `tick` event on the channel `ticks`; the id
/// is the one Redis gave it.
async fn publish_tick(hub: &Hub, n: u64) -> Result<EventId, PublishError> {
    let event = Event::json(&json!({ "n": n, "from": "instance A" }))?.event("tick")?;
    hub.publish("ticks", event).await
}
