//! Who opens a stream ([`Opener`]) and what authorization granted it ([`Grant`]): what the
//! per-client and per-principal caps, revocation and a stream's expiry go by.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

/// Who opens a stream: what the per-client caps, the rate limit and revocation go by.
///
/// [`SseEndpoint`](crate::SseEndpoint) fills it from the request (the peer address, or the
/// forwarded address when the peer is a trusted proxy) and from the authorization's [`Grant`].
#[derive(Debug, Clone, Default)]
pub struct Opener {
    /// The client's address.
    pub client: Option<IpAddr>,
    /// What authorization granted, if any.
    pub grant: Option<Grant>,
}

/// What authorization granted a stream: who it is for, and until when.
///
/// At `expires_at` the stream sends [`REAUTH_EVENT`](crate::wire::REAUTH_EVENT) and ends with a
/// `retry:` hint; the client reconnects, is authorized afresh and resumes exactly.
/// [`Hub::revoke`](crate::Hub::revoke) ends every open stream of a principal the same way.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use poem_sse_ext::hub::Grant;
///
/// let grant = Grant::new("alice").expires_at(SystemTime::now() + Duration::from_secs(900));
/// assert_eq!(grant.principal(), Some("alice"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub(super) principal: Option<Arc<str>>,
    expires_at: Option<SystemTime>,
}

impl Grant {
    /// A grant for `principal` (a user id, say), without expiry.
    pub fn new(principal: impl Into<Arc<str>>) -> Self {
        Self {
            principal: Some(principal.into()),
            expires_at: None,
        }
    }

    /// A grant for nobody in particular (a public channel).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Ends the stream at `at` (the expiry of the session or token it was granted on).
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Who it was granted to.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// When it expires.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The grant of a stream of several channels, each granted on its own: the first principal,
    /// and the earliest expiry.
    pub(crate) fn narrowest(held: Option<Self>, next: Self) -> Option<Self> {
        let Some(held) = held else {
            return Some(next);
        };
        let expires_at = match (held.expires_at, next.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Self {
            principal: held.principal.or(next.principal),
            expires_at,
        })
    }

    /// The expiry as a tokio deadline (`None`: never; a past expiry: now).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let left = self
            .expires_at?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Some(Instant::now() + left)
    }
}
