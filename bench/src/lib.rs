//! Benchmark tooling that measures poem-sse-ext against its peers: a load generator that holds
//! SSE streams over HTTP/1.1, h2c and HTTP/2 over TLS and verifies every event, peer servers to
//! compare against, the scenarios, and the report writer.
//!
//! From the wire up: `sse` (parser) and `net` (connections) ← `streams` (held subscribers) and
//! `publish` (the publisher) ← `integrity` and `delivery` (judging a round) ← `server` (the
//! servers under test) ← `scenarios` ← `suite`, which hands the `metric`s to `report`. Beside
//! them, `crowd` holds a million streams for the `million` binary with a few dozen bytes each.

pub mod catchup;
pub mod clock;
pub mod crowd;
pub mod delivery;
pub mod integrity;
pub mod metric;
pub mod net;
pub mod peer;
pub mod procfs;
pub mod publish;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod sse;
pub mod streams;
pub mod suite;
