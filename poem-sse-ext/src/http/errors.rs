//! The crate's errors as poem answers: each implements [`ResponseError`] with the status a
//! handler would choose, so `?` in a `#[handler]` returning `poem::Result` answers for itself.
//!
//! | error | status |
//! | --- | --- |
//! | an invalid event (name, id, JSON), an event that carries an id, an invalid idempotency key or set of channels | `400` with the message |
//! | an invalid or unknown channel name | `404` with the message |
//! | an encoded event larger than the channel's byte bound | `413` |
//! | shutting down, too many channels, a cap, the store unreachable or failing | `503` with `Retry-After` |
//! | the store timed out (the outcome is unknown: retry with [`Hub::publish_once`](crate::Hub::publish_once)) | `504` with `Retry-After` |
//! | a store key of another type (the deployment's mistake) | `500` with the message |

use poem::{
    error::ResponseError,
    http::{header, StatusCode},
    Response,
};

use crate::{
    hub::{
        error::{PublishError, ReadError, SubscribeError},
        registry::{ChannelError, TooManyChannels},
    },
    store::StoreError,
    wire::EventError,
};

/// What `Retry-After` says on a temporary failure: long enough for a store to come back or a
/// restarted instance to be up, short enough that a user does not wait for nothing.
const RETRY_AFTER_SECS: u32 = 2;

impl ResponseError for EventError {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

impl ResponseError for ChannelError {
    fn status(&self) -> StatusCode {
        StatusCode::NOT_FOUND
    }
}

impl ResponseError for TooManyChannels {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn as_response(&self) -> Response {
        answer(self, self.status())
    }
}

impl ResponseError for StoreError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::WrongKeyType { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn as_response(&self) -> Response {
        answer(self, self.status())
    }
}

impl ResponseError for PublishError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Channel(err) => err.status(),
            Self::HasId(_) | Self::Event(_) | Self::InvalidIdempotencyKey => {
                StatusCode::BAD_REQUEST
            }
            Self::ShuttingDown | Self::TooManyChannels(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(err) => err.status(),
        }
    }

    fn as_response(&self) -> Response {
        answer(self, self.status())
    }
}

impl ResponseError for ReadError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Channel(err) => err.status(),
            Self::TooManyChannels(err) => err.status(),
            Self::Store(err) => err.status(),
        }
    }

    fn as_response(&self) -> Response {
        answer(self, self.status())
    }
}

impl ResponseError for SubscribeError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Channel(err) => err.status(),
            Self::InvalidSet(_) => StatusCode::BAD_REQUEST,
            Self::Store(err) => err.status(),
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn as_response(&self) -> Response {
        answer(self, self.status())
    }
}

/// `status` with the error's message as text, and `Retry-After` where trying again can help.
fn answer(error: &dyn std::fmt::Display, status: StatusCode) -> Response {
    let mut response = Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(error.to_string());
    if matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
    }
    response
}
