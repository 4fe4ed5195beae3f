//! [`RunId`]: the name of a run, random and unguessable, and the channel that holds its events.

use std::{fmt, sync::Arc};

/// Every run's events are the log of the channel `run.<id>` of the runs' hub.
pub const RUN_CHANNEL_PREFIX: &str = "run.";

/// The id of a run: 128 random bits as 32 lowercase hex digits.
///
/// It is drawn from the thread-local cryptographically secure generator, so knowing one run's
/// id tells nothing about another's: an id can serve as a capability where a run needs no
/// further authorization, and an [`Authorizer`](crate::http::Authorizer) can add one where it does.
///
/// ```
/// use poem_sse_ext::run::RunId;
///
/// let id = RunId::parse("0123456789abcdef0123456789abcdef").expect("a run id");
/// assert_eq!(id.channel(), "run.0123456789abcdef0123456789abcdef");
/// assert_eq!(RunId::from_channel(&id.channel()), Some(id));
/// assert_eq!(RunId::parse("../etc/passwd"), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Arc<str>);

impl RunId {
    /// Length of an id, in characters.
    pub const LEN: usize = 32;

    /// A new random id.
    pub(crate) fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()).into())
    }

    /// `text` as a run id, if it is one: exactly 32 characters `0-9 a-f`. Untrusted input
    /// (a URL segment) is checked here and never panics.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Self(text.into()))
    }

    /// The run id of a run's channel name (`run.<id>`), as an
    /// [`Authorizer`](crate::http::Authorizer) is given it.
    pub fn from_channel(channel: &str) -> Option<Self> {
        channel
            .strip_prefix(RUN_CHANNEL_PREFIX)
            .and_then(Self::parse)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel that holds the run's events: `run.<id>`.
    pub fn channel(&self) -> String {
        format!("{RUN_CHANNEL_PREFIX}{}", self.0)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for RunId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back_and_differ() {
        let (a, b) = (RunId::random(), RunId::random());
        assert_ne!(a, b);
        assert_eq!(RunId::parse(a.as_str()), Some(a.clone()));
        assert!(crate::hub::registry::validate_channel(&a.channel()).is_ok());
    }

    #[test]
    fn anything_else_is_not_an_id() {
        let upper = "0123456789ABCDEF0123456789ABCDEF";
        let short = "0123456789abcdef";
        let long = "0".repeat(33);
        for bad in [
            "",
            short,
            upper,
            &long,
            "0123456789abcdef0123456789abcdeg",
            "ä",
        ] {
            assert_eq!(RunId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(RunId::from_channel("news"), None);
        assert_eq!(RunId::from_channel(&format!("x.{}", "0".repeat(32))), None);
    }
}
