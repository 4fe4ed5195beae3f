//! The HTTP edge: endpoints that answer requests with a hub's streams
//! ([`SseEndpoint`](crate::SseEndpoint), [`SetEndpoint`](crate::SetEndpoint)), the options they
//! share ([`StreamOptions`]), a channel's streams in front of an app's routes ([`SseMount`]),
//! authorization ([`Authorizer`]), refusals as answers a client
//! survives ([`RefusedStream`]), streams of your own ([`SseResponse`]), and the crate's errors as
//! poem answers (each implements [`ResponseError`](poem::error::ResponseError)).

pub(crate) mod authorize;
pub(crate) mod body;
pub(crate) mod endpoint;
mod errors;
mod mount;
pub(crate) mod options;
pub(crate) mod refusal;
pub(crate) mod response;
pub(crate) mod set_endpoint;

pub use authorize::Authorizer;
pub use mount::{SseMount, SseMountEndpoint};
pub use options::StreamOptions;
pub use refusal::RefusedStream;
pub use response::SseResponse;
