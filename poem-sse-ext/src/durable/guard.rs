//! Who may do what: the [`StreamAuthorizer`] sees every request with its [`Operation`].

use std::fmt;

use poem::{http::StatusCode, Request};

/// What a request asks to do to a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `PUT`: create a stream (or a fork), or confirm that it exists.
    Create,
    /// `POST` with a body: append (and maybe close).
    Append,
    /// `POST` with `Stream-Closed: true` and no body: close.
    Close,
    /// `DELETE`.
    Delete,
    /// `GET` (any mode) and `HEAD`.
    Read,
}

impl Operation {
    /// Whether the operation changes a stream.
    pub fn is_write(self) -> bool {
        !matches!(self, Operation::Read)
    }
}

/// One request as the authorizer sees it.
#[derive(Debug)]
pub struct Access<'a> {
    /// What it asks to do.
    pub operation: Operation,
    /// The stream's name: its path below the mount point, without the leading `/`.
    pub stream: &'a str,
    /// For [`Operation::Create`] of a fork: the source stream's name. A fork exposes the
    /// source's data, so check that the client may read the source too.
    pub forked_from: Option<&'a str>,
    /// The request (headers, remote address, extensions).
    pub request: &'a Request,
}

/// An authorizer's refusal: `401` or `403` with a message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Denied {
    /// `401 Unauthorized`: credentials are missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// `403 Forbidden`: the credentials do not allow this operation on this stream.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

/// Decides whether a request may proceed. It is called before anything else is done, for
/// every operation, reads included; return `Ok(())` to allow.
///
/// Any `Fn(&Access<'_>) -> Result<(), Denied>` is one:
///
/// ```
/// use poem_sse_ext::durable::{Access, Denied, DurableStreams};
///
/// let streams = DurableStreams::builder()
///     .authorizer(|access: &Access<'_>| {
///         let token = access.request.header("authorization");
///         if access.operation.is_write() && token != Some("Bearer s3cret") {
///             return Err(Denied::unauthorized("writes need the bearer token"));
///         }
///         Ok(())
///     })
///     .build();
/// # let _ = streams;
/// ```
pub trait StreamAuthorizer: Send + Sync + 'static {
    /// Allows (`Ok`) or refuses the request.
    ///
    /// # Errors
    ///
    /// The [`Denied`] answer the client gets.
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied>;
}

impl<F> StreamAuthorizer for F
where
    F: Fn(&Access<'_>) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn authorize(&self, access: &Access<'_>) -> Result<(), Denied> {
        self(access)
    }
}
