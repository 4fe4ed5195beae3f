//! The concurrency primitives under every layer: wakers of many waiting tasks, and the one-shot
//! trigger that ends streams on shutdown or revocation.

pub(crate) mod shutdown;
pub(crate) mod waiters;
