//! The HTTP edge: endpoints that answer requests with a hub's streams, the response and body
//! every stream is written with, authorization, and refusals as answers a client survives.

pub(crate) mod authorize;
pub(crate) mod body;
pub(crate) mod endpoint;
pub(crate) mod refusal;
pub(crate) mod response;
