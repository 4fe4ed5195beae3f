//! Server-Sent Events for [poem], built for production.
//!
//! ```
//! use std::time::Duration;
//! use poem::Route;
//! use poem_sse_ext::{Event, Hub};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder()
//!     .history(1_000)                      // events kept per channel for replay
//!     .heartbeat(Duration::from_secs(15))  // comment after 15 s of silence
//!     .build();
//! let app = Route::new().at("/events/:channel", hub.endpoint());
//!
//! // Anywhere in the app:
//! let id = hub.publish("prices", Event::json(&serde_json::json!({"eur": 1.08}))?.event("tick")?).await?;
//! println!("published {id}");
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! - **Replay and exact resume.** Every event is encoded once and appended to its channel's log in
//!   a [`ReplayStore`](store::ReplayStore) (in memory by default, bounded by count, bytes and
//!   age). A reconnecting `EventSource` sends `Last-Event-ID`; the stream replays exactly the
//!   events after it, then goes live. A page can pass `?lastEventId=<id>` for its first connect.
//! - **No silent gaps.** When the resume point was evicted, comes from before a restart, or was
//!   never issued, the stream starts with an `sse-reset` event (see [`Reset`]).
//! - **Flushed at once.** Each ready frame goes to hyper as soon as it exists (ready frames may
//!   be joined into one chunk, never held back), also through poem's `Compression`.
//! - **Heartbeats** after each idle interval, **jittered retry** hints, **graceful shutdown**
//!   with [`Hub::shutdown`], and [`Hub::metrics`].
//! - **The hub knows no HTTP.** [`Hub::subscribe`] gives a [`Subscriber`], a stream of ready
//!   frames a Rust caller reads directly; [`SseEndpoint`] is the HTTP side.
//! - **Several channels on one stream** ([`Hub::subscribe_set`]), each resumed exactly through
//!   one cursor ([`set_cursor`]).
//! - **Admission a native `EventSource` survives**: refusals are `200` streams with a long retry
//!   hint and [`BUSY_EVENT`] ([`RefusedStream`]); caps per client and principal, a connect rate
//!   limit, stream lifetimes.
//! - **Authorization for a stream's whole life**: an async [`Authorizer`] returns a [`Grant`]
//!   whose expiry (or [`Hub::revoke`]) ends the stream with [`REAUTH_EVENT`].
//! - **Bounded**: channels nobody uses cost nothing, history is bounded per channel and over the
//!   whole store, and [`Hub::publish_once`] stores a retried publish once.
//! - [`SseResponse`] for streams of your own, with the same wire guarantees.
//! - **Fits the ecosystem**: a Prometheus scrape ([`prometheus`], feature `prometheus`), one
//!   [`tracing`] span per stream that says why it closed, an OpenAPI 3.2 description of a
//!   stream's events ([`openapi`], feature `openapi`), a recipe for Rust clients
//!   ([`clients`]), and [`recipes`] for CORS, testing with poem's `TestClient` and handling
//!   `sse-reset` in the browser.
//! - [`run::Runs`]: finite streams (an LLM's answer, a build log) whose producer outlives the
//!   request, that followers resume after a reload, that end for good with an `sse-end` event
//!   (`204` afterwards), and that stop only when cancelled.
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod authorize;
mod body;
mod builder;
pub mod clients;
mod config;
mod cursor;
#[cfg(feature = "durable-streams")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable-streams")))]
pub mod durable;
mod endpoint;
mod error;
mod event;
mod hub;
mod metrics;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub mod prometheus;
pub mod recipes;
mod refusal;
mod registry;
mod response;
pub mod run;
mod set;
mod shutdown;
pub mod store;
mod subscriber;
mod trace;
mod waiters;
pub mod wire;

pub use admission::{ConnectRate, Grant, Opener, RefusalReason};
pub use authorize::Authorizer;
pub use builder::HubBuilder;
pub use config::HubConfig;
pub use cursor::{set_cursor, MAX_SET_CHANNELS, MAX_SET_CURSOR_LEN};
pub use endpoint::SseEndpoint;
pub use error::{PublishError, ReadError, SubscribeError};
pub use event::{validate_event_name, Event, EventError, MAX_EVENT_NAME_LEN, MAX_ID_LEN};
pub use hub::{Hub, RecentEvents};
pub use metrics::{ChannelMetrics, CloseReason, DeliveryLag, HubMetrics, ResetCounts, LAG_BUCKETS};
pub use refusal::RefusedStream;
pub use registry::{validate_channel, ChannelError, TooManyChannels, MAX_CHANNEL_LEN};
pub use response::SseResponse;
pub use store::EventId;
pub use subscriber::Subscriber;
/// The token [`Hub::shutdown_token`] and [`SseResponse::shutdown`] use.
pub use tokio_util::sync::CancellationToken;
pub use wire::{Reset, ResetReason, StoredEvent, BUSY_EVENT, REAUTH_EVENT, RESET_EVENT};
