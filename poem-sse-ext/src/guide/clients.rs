//! Reading a hub's streams from Rust, with [`reqwest-eventsource`] (a recipe; this module has
//! no items).
//!
//! In the same process, read a channel without HTTP: [`Hub::subscribe`](crate::Hub::subscribe)
//! gives a [`Subscriber`](crate::Subscriber). Across the network, `reqwest-eventsource` is what
//! Rust users reach for; it reconnects with `Last-Event-ID` as a browser does, and the hub
//! resumes exactly. Four things to get right with it (each is checked by `tests/rust_client.rs`):
//!
//! - **Start from a known id with the `lastEventId` query parameter**, not a `Last-Event-ID`
//!   header on the request: the source adds its own header on every reconnect, and one set on the
//!   request would be sent as well, first, and win, so every reconnect would replay from the
//!   start again.
//! - **Set the retry policy yourself.** It learns the reconnection time only from a `retry:`
//!   field in a block that carries data, and the hub sends its (jittered) hint alone, so the
//!   default policy (300 ms, doubling) applies. Use a delay like the hub's `retry` with jitter of
//!   your own, so that a thousand clients do not come back together after a deploy.
//! - **Handle the hub's own events**: [`sse-reset`](crate::wire::RESET_EVENT) (events were missed:
//!   refresh the state and go on; its id is where the stream continues),
//!   [`sse-busy`](crate::wire::BUSY_EVENT) (refused for now: the source reconnects by itself),
//!   [`sse-reauth`](crate::wire::REAUTH_EVENT) (renew the credentials and connect again from
//!   `resume_from`).
//! - **Stop on a status other than `200`**: the source does, with
//!   `Error::InvalidStatusCode` (`404` for an unknown channel; `204` when there is nothing more
//!   to read).
//!
//! ```no_run
//! # use reqwest012 as reqwest;
//! use std::time::Duration;
//!
//! use futures_util::StreamExt;
//! use reqwest_eventsource::{retry::ExponentialBackoff, Error, Event, EventSource};
//!
//! /// Follows a channel whose state was read at `known` (`None`: from now on).
//! async fn follow(url: &str, known: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
//!     // reqwest 0.12: the version reqwest-eventsource builds on.
//!     let mut request = reqwest::Client::new().get(url);
//!     if let Some(id) = known {
//!         request = request.query(&[("lastEventId", id)]);
//!     }
//!     let mut source = EventSource::new(request)?;
//!     let jitter = Duration::from_millis(u64::from(std::process::id() % 3_000));
//!     source.set_retry_policy(Box::new(ExponentialBackoff::new(
//!         Duration::from_secs(3) + jitter,
//!         2.0,
//!         Some(Duration::from_secs(60)),
//!         None,
//!     )));
//!     while let Some(item) = source.next().await {
//!         match item {
//!             Ok(Event::Open) | Err(Error::StreamEnded) => {} // it reconnects by itself
//!             Ok(Event::Message(event)) => match event.event.as_str() {
//!                 "sse-reset" => {
//!                     // `{"reason": "evicted" | "epoch" | "unknown", "resume_from": id}`
//!                     println!("missed events ({}): reload the state", event.data);
//!                 }
//!                 "sse-busy" => println!("server busy ({}): waiting", event.data),
//!                 "sse-reauth" => {
//!                     source.close(); // renew the credentials, then follow from `resume_from`
//!                     return Ok(());
//!                 }
//!                 name => println!("{name} {}: {}", event.id, event.data),
//!             },
//!             Err(Error::InvalidStatusCode(status, _)) => {
//!                 println!("stopped: {status}"); // the source is closed now
//!             }
//!             Err(error) => println!("reconnecting after: {error}"),
//!         }
//!     }
//!     Ok(())
//! }
//! # let _ = follow;
//! ```
//!
//! [`reqwest-eventsource`]: https://docs.rs/reqwest-eventsource
