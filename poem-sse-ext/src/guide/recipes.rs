//! Recipes for what comes up around a hub's streams (this module has no items; every example
//! compiles and runs as a doctest).
//!
//! - [CORS for a cross-origin `EventSource`](#cors-for-a-cross-origin-eventsource)
//! - [Testing a stream with poem's `TestClient`](#testing-a-stream-with-poems-testclient)
//! - [Handling `sse-reset` in the browser](#handling-sse-reset-in-the-browser)
//!
//! Reading streams from Rust over the network is in [`crate::guide::clients`].
//!
//! # CORS for a cross-origin `EventSource`
//!
//! A page served from another origin than the stream (`https://app.example.com` reading
//! `https://events.example.com`) needs poem's [`Cors`](poem::middleware::Cors) on the stream's
//! route. A reconnecting `EventSource` sends `Last-Event-ID`, which is not a CORS-safelisted
//! header: where the browser asks first (a preflight `OPTIONS` with
//! `Access-Control-Request-Headers: last-event-id`), a `Cors` that lists allowed headers must
//! list `last-event-id`, or the reconnect is refused and the resume is lost. Pages that send
//! cookies (`new EventSource(url, { withCredentials: true })`) also need
//! `allow_credentials(true)` and an explicit origin.
//!
//! ```
//! use poem::{
//!     http::{header, Method, StatusCode},
//!     middleware::Cors,
//!     test::TestClient,
//!     EndpointExt, Route,
//! };
//! use poem_sse_ext::Hub;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let hub = Hub::builder().build();
//! let cors = Cors::new()
//!     .allow_origin("https://app.example.com")
//!     .allow_method(Method::GET)
//!     .allow_header("last-event-id") // what a reconnecting EventSource sends
//!     .allow_credentials(true); // for `withCredentials: true`
//! let app = Route::new().at("/events/:channel", hub.endpoint().with(cors));
//!
//! // The browser's preflight for a reconnect is answered, with `last-event-id` allowed.
//! let client = TestClient::new(app);
//! let preflight = client
//!     .options("/events/prices")
//!     .header(header::ORIGIN, "https://app.example.com")
//!     .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
//!     .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "last-event-id")
//!     .send()
//!     .await;
//! preflight.assert_status_is_ok();
//! preflight.assert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "https://app.example.com");
//! preflight.assert_header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
//! let allowed = preflight.0.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
//!     .to_str()
//!     .unwrap_or_default()
//!     .to_ascii_lowercase();
//! assert!(allowed.contains("last-event-id"), "{allowed}");
//!
//! // Another origin's page is refused.
//! let other = client
//!     .options("/events/prices")
//!     .header(header::ORIGIN, "https://elsewhere.example")
//!     .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
//!     .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "last-event-id")
//!     .send()
//!     .await;
//! other.assert_status(StatusCode::FORBIDDEN);
//! # }
//! ```
//!
//! # Testing a stream with poem's `TestClient`
//!
//! poem's [`TestClient`](https://docs.rs/poem/latest/poem/test/struct.TestClient.html) (feature `test` of poem, in
//! `[dev-dependencies]`) calls the endpoint in process, and
//! `TestResponse::sse_stream` parses the body into events. A stream never ends by itself: read
//! the events the test expects, each under a timeout, and drop the rest. The first frame is the
//! hub's `retry:` hint (`Event::Retry`); heartbeats are comments, which the parser skips.
//!
//! ```
//! use std::time::Duration;
//!
//! use futures_util::{Stream, StreamExt};
//! use poem::{test::TestClient, web::sse::Event as Frame, Route};
//! use poem_sse_ext::{Event, Hub};
//!
//! /// The next event's (id, name, data), skipping `retry:` frames; fails after a second.
//! async fn next(stream: &mut (impl Stream<Item = Frame> + Unpin)) -> (String, String, String) {
//!     loop {
//!         let frame = tokio::time::timeout(Duration::from_secs(1), stream.next())
//!             .await
//!             .unwrap_or_else(|_| panic!("no event within a second"));
//!         match frame {
//!             Some(Frame::Message { id, event, data }) => return (id, event, data),
//!             Some(Frame::Retry { .. }) => continue,
//!             None => panic!("the stream ended"),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder().build();
//! let first = hub.publish("news", Event::text("one")).await?;
//! let second = hub.publish("news", Event::text("two").event("headline")?).await?;
//! let client = TestClient::new(Route::new().at("/events/:channel", hub.endpoint()));
//!
//! // A client that has "one" resumes after it: exactly "two" is replayed, then live events.
//! let response = client
//!     .get("/events/news")
//!     .header("last-event-id", first.to_string())
//!     .send()
//!     .await;
//! response.assert_status_is_ok();
//! let mut events = response.sse_stream();
//! assert_eq!(next(&mut events).await, (second.to_string(), "headline".into(), "two".into()));
//! let third = hub.publish("news", Event::text("three")).await?;
//! assert_eq!(next(&mut events).await, (third.to_string(), "message".into(), "three".into()));
//!
//! // An id the hub never issued: the stream starts with `sse-reset`, whose id is the head.
//! let response = client.get("/events/news?lastEventId=garbage").send().await;
//! let (id, name, data) = next(&mut response.sse_stream()).await;
//! assert_eq!((id.as_str(), name.as_str()), (third.to_string().as_str(), "sse-reset"));
//! let reset: serde_json::Value = serde_json::from_str(&data)?;
//! assert_eq!(reset["reason"], "unknown");
//! # Ok(())
//! # }
//! ```
//!
//! # Handling `sse-reset` in the browser
//!
//! An [`sse-reset`](crate::wire::RESET_EVENT) says that the events after the client's id are gone
//! (evicted, or the server's store restarted): what the page shows is stale. Its data is
//! `{"reason": ..., "resume_from": ...}` and its id is the head, where the stream now continues
//! live. A page that renders state (as `hub.recent` reads it, with the id it corresponds to)
//! refetches that state and follows from the state's own id, so that nothing published between
//! the reset and the refetch is lost or shown twice. This is what the demo's `client.js` does,
//! cut to the bone:
//!
//! ```js
//! let source = null;
//!
//! // `state` is { id, items }: the page's state and the id it corresponds to, rendered by the
//! // server into the page at first, fetched again after a reset.
//! function follow(channel, state) {
//!   render(state.items);
//!   if (source) source.close(); // one EventSource per channel, ever
//!   source = new EventSource(`/events/${channel}?lastEventId=${encodeURIComponent(state.id)}`);
//!   source.addEventListener("message", (e) => append(e.lastEventId, e.data));
//!   source.addEventListener("sse-reset", async (e) => {
//!     source.close(); // do not read on from the head: the state must be fetched first
//!     console.info("stale state:", JSON.parse(e.data).reason);
//!     for (;;) {
//!       try {
//!         const res = await fetch(`/api/state/${channel}`, { cache: "no-store" });
//!         if (!res.ok) throw new Error(`state: ${res.status}`);
//!         return follow(channel, await res.json()); // resumes after the fresh state's id
//!       } catch (_) {
//!         await new Promise((r) => setTimeout(r, 1000)); // the server is still coming back
//!       }
//!     }
//!   });
//! }
//!
//! follow("news", JSON.parse(document.getElementById("state").textContent));
//! ```
//!
//! A page that keeps no state (a log that only appends) can instead go on reading: the stream
//! continues live after the reset, and `resume_from` says where. The browser itself
//! reconnects on a dropped connection with `Last-Event-ID`; the page needs to act only on
//! `sse-reset` (and on [`sse-reauth`](crate::wire::REAUTH_EVENT) when it authorizes streams).
