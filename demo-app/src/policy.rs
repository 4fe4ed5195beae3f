//! Who may publish through the API: the publish token, the origins a browser may post from,
//! and the owners of private channels (see [`crate::publish`] for the answers).

use std::net::SocketAddr;

use poem::{
    http::{header, StatusCode},
    Request,
};

use crate::{
    api::ApiError,
    origin::{AllowedOrigins, Origin},
    session::{is_private, Sessions},
};

/// Who may publish: the bearer token required (if any) and the origins allowed besides the
/// server's own.
#[derive(Clone, Default)]
pub struct PublishPolicy {
    token: Option<String>,
    origins: AllowedOrigins,
}

/// Never shows the token.
impl std::fmt::Debug for PublishPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishPolicy")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("origins", &self.origins)
            .finish()
    }
}

/// A publish policy the server refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `--publish-token ""`.
    #[error(
        "the publish token is empty: give --publish-token (or DEMO_PUBLISH_TOKEN) a secret value"
    )]
    EmptyToken,
    /// No token, and reachable from other machines.
    #[error(
        "refusing to listen on {0} without a publish token: anyone who can reach it could publish \
         to every page. Set one with --publish-token TOKEN (or the DEMO_PUBLISH_TOKEN environment \
         variable), or listen on a loopback address such as 127.0.0.1"
    )]
    OpenToTheNetwork(SocketAddr),
}

impl PublishPolicy {
    /// The policy of a server listening on `listen`: `token` required to publish when given, and
    /// browser posts from `origins` allowed besides the server's own pages.
    ///
    /// # Errors
    /// An empty token, or no token while listening on an address other than loopback.
    pub fn new(
        token: Option<String>,
        origins: Vec<Origin>,
        listen: SocketAddr,
    ) -> Result<Self, PolicyError> {
        match &token {
            Some(token) if token.is_empty() => return Err(PolicyError::EmptyToken),
            None if !listen.ip().to_canonical().is_loopback() => {
                return Err(PolicyError::OpenToTheNetwork(listen))
            }
            _ => {}
        }
        Ok(Self {
            token,
            origins: AllowedOrigins(origins),
        })
    }

    /// Whether `req` may publish to `channel`. A browser's post must come from an allowed
    /// origin. A private `user.<name>` channel is written like it is read: by `<name>`'s
    /// session, or with the publish token when one is set. Any other channel takes the token
    /// when one is set, and anyone otherwise.
    pub fn check(&self, req: &Request, channel: &str, sessions: &Sessions) -> Result<(), ApiError> {
        self.origins
            .check(req)
            .map_err(|err| ApiError::new(StatusCode::FORBIDDEN, err))?;
        let token_given = self.token.as_ref().is_some_and(|expected| {
            req.header(header::AUTHORIZATION)
                .and_then(|value| value.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
        });
        if token_given {
            return Ok(());
        }
        if is_private(channel) {
            return sessions
                .grant(req, channel)
                .map(drop)
                .map_err(|err| ApiError::new(err.status(), err));
        }
        if self.token.is_some() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send `Authorization: Bearer <token>`",
            ));
        }
        Ok(())
    }
}

/// Compares without stopping at the first difference, so timing tells nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_open_publishing_beyond_loopback() {
        let at = |addr: &str| addr.parse().unwrap_or_else(|e| panic!("{e}"));
        let open = PublishPolicy::new(None, vec![], at("0.0.0.0:8443"));
        assert_eq!(
            open.err(),
            Some(PolicyError::OpenToTheNetwork(at("0.0.0.0:8443")))
        );
        assert!(PublishPolicy::new(None, vec![], at("[::]:8443")).is_err());
        for local in [
            "127.0.0.1:1",
            "127.8.9.10:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(
                PublishPolicy::new(None, vec![], at(local)).is_ok(),
                "{local}"
            );
        }
        let token = Some("s3cret".to_owned());
        let guarded = PublishPolicy::new(token, vec![], at("0.0.0.0:8443"));
        let shown = format!("{guarded:?}");
        assert!(guarded.is_ok() && !shown.contains("s3cret"), "{shown}");
        let empty = PublishPolicy::new(Some(String::new()), vec![], at("127.0.0.1:1"));
        assert_eq!(empty.err(), Some(PolicyError::EmptyToken));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
