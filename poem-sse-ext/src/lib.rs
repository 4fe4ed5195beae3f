//! Server-Sent Events for [poem](https://docs.rs/poem), built for production: a [`Hub`] of
//! channels whose streams replay exactly what a reconnecting `EventSource` missed, say so when
//! they can not (`sse-reset`), flush every event at once, send heartbeats, end themselves on
//! shutdown, and count everything.
//!
//! # Quick start
//!
//! A whole server: a stream at `/events/:channel`, a handler that publishes with `?` (the crate's
//! errors are poem answers: a bad event is a `400`, a bad channel a `404`, a store that is down a
//! `503` with `Retry-After`), and a graceful shutdown that ends every open stream at once.
//!
//! ```no_run
//! use std::time::Duration;
//! use poem::{handler, listener::TcpListener, post, web::{Data, Json}, EndpointExt, Route, Server};
//! use poem_sse_ext::{Event, Hub};
//!
//! #[derive(serde::Serialize)]
//! struct Tick { eur: f64 }
//!
//! #[handler]
//! async fn publish_tick(Data(hub): Data<&Hub>) -> poem::Result<Json<String>> {
//!     let id = hub.publish("prices", Event::json(&Tick { eur: 1.08 })?.event("tick")?).await?;
//!     Ok(Json(id.to_string()))
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let hub = Hub::builder()
//!         .history(1_000)                     // events kept per channel for replay
//!         .heartbeat(Duration::from_secs(15)) // a comment after 15 s of silence
//!         .build();
//!     let app = Route::new()
//!         .at("/events/:channel", hub.endpoint()) // GET only; mount it as it is
//!         .at("/prices", post(publish_tick).data(hub.clone()));
//!     let shutdown = {
//!         let hub = hub.clone();
//!         async move {
//!             let _ = tokio::signal::ctrl_c().await;
//!             hub.shutdown(); // poem does not tell endpoints; the hub ends its streams
//!         }
//!     };
//!     Server::new(TcpListener::bind("127.0.0.1:3000"))
//!         .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(5)))
//!         .await
//! }
//! ```
//!
//! In the browser, `new EventSource("/events/prices")` receives each `tick`; a page rendered
//! from [`Hub::recent`] connects with `?lastEventId=<its head>` and misses nothing. A client
//! with no resume point gets no history: the stream starts at the head. The examples
//! (`cargo run -p poem-sse-ext --example hello`, `dashboard`, `own_stream`, `redis_instances`)
//! are whole programs; the [`guide`] has the recipes (CORS, testing with `TestClient`, the
//! browser's side of a reset, Rust clients).
//!
//! # Where things are
//!
//! The root holds what an app starts with: [`Hub`] and its [`HubBuilder`], [`Event`], the
//! endpoints [`SseEndpoint`] (one channel) and [`SetEndpoint`] (several on one stream), a
//! [`Subscriber`] (a stream without HTTP), the records a hub hands back ([`EventId`],
//! [`Published`], [`Recent`], [`StoredEvent`]) and the errors a caller matches on. Everything
//! else is in its layer, each a module that imports only the ones listed before it:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`wire`] | the wire format: the reserved events (`sse-reset`, `sse-busy`, `sse-reauth`), [`Reset`](wire::Reset), event-name and set-cursor rules |
//! | [`store`] | where history lives: [`ReplayStore`](store::ReplayStore), the in-memory store, Redis Streams (feature `redis`), the shared per-channel log |
//! | [`hub`] | channels, publish and subscribe, admission (caps, connect rate, [`Grant`](hub::Grant), [`Refusal`](hub::Refusal)), [`HubConfig`](hub::HubConfig) |
//! | [`http`] | the HTTP edge: [`StreamOptions`](http::StreamOptions) shared by every endpoint, [`Authorizer`](http::Authorizer), [`RefusedStream`](http::RefusedStream), [`SseResponse`](http::SseResponse) for streams of your own |
//! | [`run`] | finite streams whose producer outlives the request (an LLM's answer, a build log) |
//! | [`metrics`] | [`Hub::metrics`] and, with `prometheus`, a scrape |
//! | `openapi` | an OpenAPI 3.2 description of a stream's events (feature `openapi`) |
//! | `durable` | the Durable Streams protocol, resumable byte streams at URLs (feature `durable-streams`) |
//! | [`guide`] | recipes; documentation only |
//!
//! # What a stream guarantees
//!
//! - **Replay and exact resume.** Every event is encoded once and appended to its channel's log in
//!   a [`ReplayStore`](store::ReplayStore) (in memory by default, bounded by count, bytes and
//!   age). A reconnecting `EventSource` sends `Last-Event-ID`; the stream replays exactly the
//!   events after it, then goes live.
//! - **No silent gaps.** When the resume point was evicted, comes from before a restart, or was
//!   never issued, the stream starts with an `sse-reset` event (see [`wire::Reset`]).
//! - **Flushed at once.** Each ready frame goes to hyper as soon as it exists (ready frames may
//!   be joined into one chunk, never held back), also through poem's `Compression`.
//! - **Admission a native `EventSource` survives**: a refused stream is a `200` with a long
//!   jittered retry hint and [`sse-busy`](wire::BUSY_EVENT), never a status the browser treats
//!   as final.
//! - **Authorization for a stream's whole life**: a [`Grant`](hub::Grant)'s expiry (or
//!   [`Hub::revoke`]) ends the stream with [`sse-reauth`](wire::REAUTH_EVENT); the reconnect is
//!   authorized afresh and resumes exactly.
//! - **Bounded**: channels nobody uses cost nothing, every history bound is enforced, and
//!   [`Hub::publish_once`] stores a retried publish once.
//! - **Observable**: one [`tracing`](https://docs.rs/tracing) span per stream that says why it
//!   closed, and typed counters in [`metrics`].
//!
//! Supported: Rust 1.88 or newer, poem 3.1.
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "durable-streams")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable-streams")))]
pub mod durable;
pub mod guide;
pub mod http;
pub mod hub;
pub mod metrics;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
pub mod run;
pub mod store;
mod sync;
pub mod wire;

pub use http::{endpoint::SseEndpoint, set_endpoint::SetEndpoint};
pub use hub::{
    builder::HubBuilder,
    error::{PublishError, ReadError, SubscribeError},
    handle::Hub,
    subscriber::Subscriber,
};
pub use wire::{
    event::{Event, EventError},
    id::{EventId, Published, Recent, StoredEvent},
};
