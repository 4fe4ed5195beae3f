//! [`Authorizer`]: who may read a channel, checked before anything is replayed, and for how long.

use poem::{Request, Result};

use crate::{hub::admission::Grant, store::BoxFuture};

/// Decides whether a request may read a channel, and grants it for a principal until an expiry.
///
/// It runs before anything is replayed, on every connect and reconnect. Its error becomes the
/// response: a `401` or `403` closes a native `EventSource` for good, on purpose (the page must
/// sign in again). A [`Grant`] with an expiry ends the stream at that time with
/// [`REAUTH_EVENT`](crate::wire::REAUTH_EVENT); the reconnect is authorized afresh and resumes exactly.
///
/// Any `Fn(&Request, &str) -> BoxFuture<Result<Grant>>` is an authorizer:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use poem::{http::StatusCode, Error, Request, Route};
/// use poem_sse_ext::{http::StreamOptions, hub::Grant, store::BoxFuture, Hub};
///
/// fn session_user(req: &Request) -> Option<String> {
///     req.header("x-user").map(str::to_owned) // your session lookup here
/// }
///
/// fn may_read<'a>(req: &'a Request, channel: &'a str) -> BoxFuture<'a, poem::Result<Grant>> {
///     Box::pin(async move {
///         let user = session_user(req).ok_or_else(|| Error::from_status(StatusCode::UNAUTHORIZED))?;
///         if channel != format!("user.{user}") {
///             return Err(Error::from_string("not your channel", StatusCode::FORBIDDEN));
///         }
///         Ok(Grant::new(user).expires_at(SystemTime::now() + Duration::from_secs(900)))
///     })
/// }
///
/// let hub = Hub::new();
/// let options = StreamOptions::new().authorize_with(may_read);
/// let app = Route::new().at("/events/:channel", hub.endpoint().options(options));
/// ```
pub trait Authorizer: Send + Sync + 'static {
    /// Grants `req` the stream of `channel`, or refuses with the error to answer.
    fn authorize<'a>(&'a self, req: &'a Request, channel: &'a str) -> BoxFuture<'a, Result<Grant>>;
}

impl<F> Authorizer for F
where
    F: for<'a> Fn(&'a Request, &'a str) -> BoxFuture<'a, Result<Grant>> + Send + Sync + 'static,
{
    fn authorize<'a>(&'a self, req: &'a Request, channel: &'a str) -> BoxFuture<'a, Result<Grant>> {
        self(req, channel)
    }
}

/// A synchronous check that grants nothing but passage (see `SseEndpoint::authorize`).
pub(crate) struct Check<F>(pub(crate) F);

impl<F> Authorizer for Check<F>
where
    F: Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
{
    fn authorize<'a>(&'a self, req: &'a Request, channel: &'a str) -> BoxFuture<'a, Result<Grant>> {
        let granted = (self.0)(req, channel).map(|()| Grant::anonymous());
        Box::pin(std::future::ready(granted))
    }
}
