//! A live page to copy: an askama page rendered with a channel's newest notes *and the id they
//! lead up to*, one `EventSource` resumed from that id, the reset handled in a few lines of
//! script, a handler that publishes with `?`, and a graceful shutdown.
//!
//! ```text
//! cargo run -p poem-sse-ext --example dashboard      # then open http://127.0.0.1:3000
//! curl -X POST http://127.0.0.1:3000/api/notes -H 'content-type: application/json' -d '{"text": "hi"}'
//! ```
//!
//! `DASHBOARD_LISTEN=127.0.0.1:0` picks a free port (the line it prints names it).

use std::time::Duration;

use askama::Template;
use poem::{
    get, handler,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Html, Json},
    EndpointExt, Route, Server,
};
use poem_sse_ext::{Event, Hub};
use serde::Deserialize;
use serde_json::{json, Value};

/// The one channel of this page.
const NOTES: &str = "notes";

/// The page: its notes, and the id they lead up to. The stream resumes after exactly that id,
/// so a note published between the render and the connect is neither lost nor shown twice.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Notes</title>
<h1>Notes <small id="status">connecting</small></h1>
<ol id="notes">{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ol>
<script>
  const list = document.getElementById("notes");
  const status = document.getElementById("status");
  // Where the rendered state ends: the stream starts right after it.
  const source = new EventSource("/events/notes?lastEventId=" + encodeURIComponent("{{ head }}"));
  source.onopen = () => (status.textContent = "live");
  source.onerror = () => (status.textContent = "reconnecting"); // EventSource retries by itself
  source.addEventListener("note", (event) => {
    const item = document.createElement("li");
    item.textContent = event.data; // text, never HTML
    list.append(item);
  });
  // The notes after our id are gone (evicted, or the server restarted): render afresh.
  source.addEventListener("sse-reset", () => {
    source.close();
    location.reload();
  });
</script>
</html>
"#
)]
struct NotesPage {
    head: String,
    notes: Vec<String>,
}

#[handler]
async fn page(Data(hub): Data<&Hub>) -> poem::Result<Html<String>> {
    // From the store, not from a copy of our own: every instance renders the same page.
    let recent = hub.recent(NOTES, 50).await?;
    let page = NotesPage {
        head: recent.head.to_string(),
        notes: recent.events.into_iter().map(|event| event.data).collect(),
    };
    let html = page.render().map_err(poem::error::InternalServerError)?;
    Ok(Html(html))
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

/// Publishes a note: `?` turns a bad event into a `400`, a hub that is shutting down into a `503`
/// with `Retry-After`.
#[handler]
async fn publish(Data(hub): Data<&Hub>, Json(note): Json<Note>) -> poem::Result<Json<Value>> {
    let id = hub
        .publish(NOTES, Event::text(note.text).event("note")?)
        .await?;
    Ok(Json(json!({ "id": id })))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let hub = Hub::builder()
        .history(1_000) // notes kept for replay and for the page
        .heartbeat(Duration::from_secs(15))
        .build();
    let app = Route::new()
        .at("/", get(page).data(hub.clone()))
        .at("/api/notes", post(publish).data(hub.clone()))
        // The stream: mounted as it is (it answers GET only), without the pages' data.
        .at("/events/:channel", hub.endpoint());

    let listen = std::env::var("DASHBOARD_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let acceptor = TcpListener::bind(listen).into_acceptor().await?;
    for addr in acceptor.local_addr() {
        if let Some(addr) = addr.as_socket_addr() {
            println!("listening on http://{addr}");
        }
    }
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        // poem does not tell endpoints that shutdown began: the hub ends its streams itself,
        // each with a retry hint, so the server stops at once.
        hub.shutdown();
    };
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(5)))
        .await
}
