//! Every refusal of the endpoint, with its status, its headers and a message a client can act
//! on. `Stream-Closed` and the producer headers ride on the refusals the protocol names.

use poem::{http::StatusCode, Response};

use super::{
    budget::Refusal, guard::Denied, json::JsonError, log::ForkPointError, offset::Offset,
    offset::OffsetError,
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no stream at this path")]
    NotFound,
    #[error("this stream was deleted; its forks still read its data")]
    Gone,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the stream is closed: no more appends")]
    Closed { tail: Offset },
    #[error("stale producer epoch: epoch {current} owns this producer id")]
    StaleEpoch { current: u64 },
    #[error("producer sequence gap: expected {expected}, received {received}")]
    SequenceGap { expected: u64, received: u64 },
    #[error("the body exceeds the largest append this server accepts ({0} bytes)")]
    TooLarge(usize),
    #[error(transparent)]
    Budget(#[from] Refusal),
    #[error("{}", .0.message)]
    Denied(Denied),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The storage backend failed or is out of reach; a write may or may not have been stored,
    /// so a producer retries with the same headers (a stored one is answered as a duplicate).
    #[error("the stream storage is unavailable ({0}); retry (with the same producer headers)")]
    Unavailable(String),
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::Unavailable(e.to_string())
    }
}

impl From<OffsetError> for Failure {
    fn from(e: OffsetError) -> Self {
        Failure::BadRequest(e.to_string())
    }
}

impl From<JsonError> for Failure {
    fn from(e: JsonError) -> Self {
        Failure::BadRequest(e.to_string())
    }
}

impl From<ForkPointError> for Failure {
    fn from(e: ForkPointError) -> Self {
        Failure::BadRequest(e.to_string())
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::Gone => StatusCode::GONE,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Conflict(_) | Failure::Closed { .. } | Failure::SequenceGap { .. } => {
                StatusCode::CONFLICT
            }
            Failure::StaleEpoch { .. } => StatusCode::FORBIDDEN,
            Failure::TooLarge(_) | Failure::Budget(Refusal::StreamBytes(_)) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Failure::Budget(
                Refusal::Streams(_)
                | Refusal::ClientStreams(_)
                | Refusal::Rate(_)
                | Refusal::Producers(_),
            ) => StatusCode::TOO_MANY_REQUESTS,
            Failure::Budget(Refusal::TotalBytes(_) | Refusal::ClientBytes(_)) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            Failure::Denied(denied) => denied.status,
            Failure::ShuttingDown | Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer (the endpoint adds the headers every answer carries).
    pub(crate) fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(self.status())
            .content_type("text/plain; charset=utf-8");
        match &self {
            Failure::Closed { tail } => {
                builder = builder
                    .header("Stream-Closed", "true")
                    .header("Stream-Next-Offset", tail.to_string());
            }
            Failure::StaleEpoch { current } => {
                builder = builder.header("Producer-Epoch", current.to_string())
            }
            Failure::SequenceGap { expected, received } => {
                builder = builder
                    .header("Producer-Expected-Seq", expected.to_string())
                    .header("Producer-Received-Seq", received.to_string());
            }
            Failure::Budget(Refusal::Rate(_)) | Failure::ShuttingDown | Failure::Unavailable(_) => {
                builder = builder.header("Retry-After", "1")
            }
            Failure::Denied(denied) if denied.status == StatusCode::UNAUTHORIZED => {
                builder = builder.header("WWW-Authenticate", "Bearer");
            }
            _ => {}
        }
        builder.body(format!("{self}\n"))
    }
}
