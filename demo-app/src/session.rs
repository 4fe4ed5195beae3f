//! Sign-in without passwords: a signed session cookie naming a user until an expiry, and the
//! authorizer that lets a user read only their own `user.<name>` channel.
//!
//! The cookie is `sid=<user>:<expiry unix secs>:<HMAC-SHA256 hex>`, `HttpOnly; SameSite=Lax`
//! (and `Secure` over TLS), signed with a key made at start-up: a restart signs everybody out.
//! Nothing is stored on the server.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use poem::{http::StatusCode, Error, Request};
use poem_sse_ext::{http::Authorizer, hub::Grant, store::BoxFuture};
use ring::{hmac, rand::SystemRandom};

/// The cookie's name.
pub const COOKIE: &str = "sid";

/// The prefix of the private channels: `user.<name>` is readable by `<name>` only.
pub const USER_PREFIX: &str = "user.";

/// Why a session cookie is not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No cookie: sign in at `/login`.
    #[error("not signed in: POST /login with a user name first")]
    Missing,
    /// The cookie was not signed by this server (or this run of it).
    #[error("the session cookie is not valid (forged, or from before a restart): sign in again")]
    Forged,
    /// The session ended.
    #[error("the session expired: sign in again or POST /session/renew in time")]
    Expired,
    /// A user name outside `[A-Za-z0-9_-]{1,32}`.
    #[error("a user name is 1 to 32 letters, digits, `_` or `-`")]
    BadName,
}

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who.
    pub user: String,
    /// Until when.
    pub expires: SystemTime,
}

/// Issues and checks session cookies. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    key: Arc<hmac::Key>,
    ttl: Duration,
    secure: bool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions lasting `ttl`, with a fresh random key; `secure` adds `Secure` to the cookie.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn new(ttl: Duration, secure: bool) -> Result<Self, String> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| "the system random source failed".to_owned())?;
        Ok(Self {
            key: Arc::new(key),
            ttl,
            secure,
        })
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A `Set-Cookie` value signing `user` in from `now` for the session length.
    ///
    /// # Errors
    /// [`SessionError::BadName`] for a name outside `[A-Za-z0-9_-]{1,32}`.
    pub fn issue(&self, user: &str, now: SystemTime) -> Result<String, SessionError> {
        if !valid_name(user) {
            return Err(SessionError::BadName);
        }
        let expires = unix_secs(now + self.ttl);
        let payload = format!("{user}:{expires}");
        let tag = hex(hmac::sign(&self.key, payload.as_bytes()).as_ref());
        let secure = if self.secure { "; Secure" } else { "" };
        Ok(format!(
            "{COOKIE}={payload}:{tag}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            // The browser keeps it for two session lengths, so the page can still renew it just
            // after the expiry the server checks (which is inside the signed value).
            self.ttl.as_secs().max(1) * 2
        ))
    }

    /// The `Set-Cookie` value that signs out.
    pub fn clear(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
    }

    /// The session of `req`'s cookie, valid at `now`.
    ///
    /// # Errors
    /// [`SessionError`]: missing, forged or expired.
    pub fn verify(&self, req: &Request, now: SystemTime) -> Result<Session, SessionError> {
        let session = self.signed(req)?;
        if session.expires <= now {
            return Err(SessionError::Expired);
        }
        Ok(session)
    }

    /// The session of `req`'s cookie if its signature holds, expired or not.
    ///
    /// # Errors
    /// [`SessionError::Missing`] or [`SessionError::Forged`].
    pub fn signed(&self, req: &Request) -> Result<Session, SessionError> {
        let value = cookie(req).ok_or(SessionError::Missing)?;
        let (payload, tag) = value.rsplit_once(':').ok_or(SessionError::Forged)?;
        let tag = unhex(tag).ok_or(SessionError::Forged)?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).map_err(|_| SessionError::Forged)?;
        let (user, expires) = payload.split_once(':').ok_or(SessionError::Forged)?;
        let expires: u64 = expires.parse().map_err(|_| SessionError::Forged)?;
        Ok(Session {
            user: user.to_owned(),
            expires: UNIX_EPOCH + Duration::from_secs(expires),
        })
    }
}

impl Sessions {
    /// Who may use `channel` as `req`: anyone for a public channel; for `user.<name>`, `<name>`
    /// while their session lasts. Reading ([`Authorizer`]) and publishing
    /// ([`crate::publish`]) both ask this.
    ///
    /// # Errors
    /// `401` without a valid session, `403` for another user's channel.
    pub fn grant(&self, req: &Request, channel: &str) -> poem::Result<Grant> {
        let Some(owner) = channel.strip_prefix(USER_PREFIX) else {
            return Ok(Grant::anonymous());
        };
        match self.verify(req, SystemTime::now()) {
            Err(err) => Err(Error::from_string(
                format!("`{channel}` is private: {err}"),
                StatusCode::UNAUTHORIZED,
            )),
            Ok(session) if session.user != owner => Err(Error::from_string(
                format!(
                    "`{channel}` belongs to another user; you are signed in as `{}`",
                    session.user
                ),
                StatusCode::FORBIDDEN,
            )),
            Ok(session) => Ok(Grant::new(session.user).expires_at(session.expires)),
        }
    }

    /// Whether `req` may see that `channel` exists (in a list of channels): a public channel,
    /// or the private channel of `req`'s own session. Another user's channel name says who
    /// signed in, so it is listed to nobody else.
    pub fn may_list(&self, req: &Request, channel: &str) -> bool {
        !is_private(channel) || self.grant(req, channel).is_ok()
    }
}

/// Whether `channel` is a private `user.<name>` channel.
pub fn is_private(channel: &str) -> bool {
    channel.starts_with(USER_PREFIX)
}

/// Lets `user.<name>` channels be read only by `<name>`, until their session ends; every other
/// channel stays public.
impl Authorizer for Sessions {
    fn authorize<'a>(
        &'a self,
        req: &'a Request,
        channel: &'a str,
    ) -> BoxFuture<'a, poem::Result<Grant>> {
        Box::pin(std::future::ready(self.grant(req, channel)))
    }
}

fn cookie(req: &Request) -> Option<&str> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// `[A-Za-z0-9_-]{1,32}`.
pub fn valid_name(user: &str) -> bool {
    (1..=32).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(set_cookie: &str) -> Request {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        Request::builder().header("cookie", pair).finish()
    }

    fn sessions() -> Sessions {
        Sessions::new(Duration::from_secs(600), true).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn check(s: &Sessions, req: &Request, channel: &str) -> Result<(), StatusCode> {
        s.authorize(req, channel)
            .await
            .map(|_| ())
            .map_err(|e| e.status())
    }

    #[tokio::test]
    async fn a_user_reads_their_own_channel_only() {
        let s = sessions();
        let now = SystemTime::now();
        let alice = s.issue("alice", now).unwrap_or_else(|e| panic!("{e}"));
        assert!(alice.contains("HttpOnly") && alice.contains("SameSite=Lax"));
        assert!(alice.contains("Secure"));
        let req = request_with(&alice);
        assert_eq!(check(&s, &req, "user.alice").await, Ok(()));
        assert_eq!(
            check(&s, &req, "user.bob").await,
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(check(&s, &req, "notifications").await, Ok(()));
        let nobody = Request::builder().finish();
        assert_eq!(
            check(&s, &nobody, "user.alice").await,
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(check(&s, &nobody, "notifications").await, Ok(()));
        // Switching accounts: bob's cookie reads bob's channel, not alice's.
        let bob = request_with(&s.issue("bob", now).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(check(&s, &bob, "user.bob").await, Ok(()));
        assert_eq!(
            check(&s, &bob, "user.alice").await,
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn forged_other_key_and_expired_cookies_are_refused() {
        let s = sessions();
        let now = SystemTime::now();
        let alice = s.issue("alice", now).unwrap_or_else(|e| panic!("{e}"));
        let value = alice.split(';').next().unwrap_or_default();
        let renamed = value.replacen("alice", "bob", 1);
        assert_eq!(
            s.verify(&request_with(&renamed), now),
            Err(SessionError::Forged)
        );
        let longer = value.replacen(':', ":9", 1);
        assert_eq!(
            s.verify(&request_with(&longer), now),
            Err(SessionError::Forged)
        );
        assert_eq!(
            s.verify(&request_with("sid=garbage"), now),
            Err(SessionError::Forged)
        );
        let other_run = sessions();
        assert_eq!(
            other_run.verify(&request_with(&alice), now),
            Err(SessionError::Forged)
        );
        let later = now + Duration::from_secs(601);
        assert_eq!(
            s.verify(&request_with(&alice), later),
            Err(SessionError::Expired)
        );
        assert_eq!(
            s.signed(&request_with(&alice)).map(|s| s.user),
            Ok("alice".to_owned())
        );
        assert_eq!(s.issue("a.b", now), Err(SessionError::BadName));
        assert_eq!(s.issue("", now), Err(SessionError::BadName));
    }
}
