//! Benchmark tooling for poem-sse-ext (issue 5): a load generator that holds SSE streams over
//! HTTP/1.1, h2c and HTTP/2 over TLS and verifies every event, peer servers to compare
//! against, the scenarios, and the report writer.

pub mod clock;
pub mod net;
pub mod peer;
pub mod procfs;
pub mod publish;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod sse;
pub mod streams;
