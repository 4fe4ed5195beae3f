//! A notification: its text and the time it was published, shown as `14:30:05 - text`.
//!
//! The publish API stamps a `notification` event whose data is a JSON object without an `at`
//! field with the time it was published ([`stamp`]): `{"at": "2026-12-02T14:30:05.123Z", ...}`,
//! every other byte as it was sent. The feed reads it back ([`Notification::of`]) and shows the
//! time in the reader's clock: the server renders it with `chrono` in its local time zone,
//! `client.js` in the browser's.
//!
//! ```ignore
//! let data = stamp(r#"{"text": "deployed"}"#, at);
//! assert_eq!(data, r#"{"at":"2026-12-02T14:30:05.123Z","text": "deployed"}"#);
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use serde::{de::IgnoredAny, Deserialize};

use crate::state::Item;

/// The event name the notifications page shows (and the API stamps).
pub const EVENT: &str = "notification";

/// `data` (the JSON text of a `notification` event) with `"at": <at>` as its first field, when it
/// is an object without an `at` field; otherwise `data` as it is.
pub fn stamp(data: &str, at: DateTime<Utc>) -> String {
    let Some(rest) = data.strip_prefix('{') else {
        return data.to_owned();
    };
    match serde_json::from_str::<BTreeMap<String, IgnoredAny>>(data) {
        Ok(fields) if !fields.contains_key("at") => {}
        _ => return data.to_owned(),
    }
    let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let comma = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{{\"at\":\"{at}\"{comma}{rest}")
}

/// A notification as the feed shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// When it was published, if its data says so.
    pub at: Option<DateTime<Utc>>,
    /// A JSON string's text, an object's `text` field, or the data as it was sent.
    pub text: String,
}

impl Notification {
    /// The notification an event of the feed carries (as `client.js` reads it).
    pub fn of(item: &Item) -> Self {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shown {
            Text(String),
            Object {
                text: String,
                at: Option<serde_json::Value>,
            },
        }
        match item.parse::<Shown>() {
            Some(Shown::Text(text)) => Self { at: None, text },
            Some(Shown::Object { text, at }) => Self {
                at: at
                    .as_ref()
                    .and_then(serde_json::Value::as_str)
                    .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                    .map(|at| at.with_timezone(&Utc)),
                text,
            },
            None => Self {
                at: None,
                text: item.text().to_owned(),
            },
        }
    }

    /// `14:30:05 - text` (the time in the server's time zone), or the text alone without a time.
    pub fn line(&self) -> String {
        match self.at {
            Some(at) => format!(
                "{} - {}",
                at.with_timezone(&Local).format("%H:%M:%S"),
                self.text
            ),
            None => self.text.clone(),
        }
    }

    /// The time as RFC 3339 for the element's `data-at`, empty without one.
    pub fn at_attr(&self) -> String {
        self.at
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T14:30:05.123Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn an_object_without_a_time_gets_one_and_keeps_every_other_byte() {
        let stamped = stamp(r#"{"text": "deployed", "n": 0.10000000000000000001}"#, at());
        assert_eq!(
            stamped,
            r#"{"at":"2026-12-02T14:30:05.123Z","text": "deployed", "n": 0.10000000000000000001}"#
        );
        assert_eq!(stamp("{}", at()), r#"{"at":"2026-12-02T14:30:05.123Z"}"#);
        assert_eq!(stamp("{ }", at()), r#"{"at":"2026-12-02T14:30:05.123Z" }"#);
        for kept in [
            r#"{"text": "mine", "at": "yesterday"}"#,
            r#"{"at": null}"#,
            "[1, 2]",
            "42",
            "plain text",
        ] {
            assert_eq!(stamp(kept, at()), kept);
        }
    }

    #[test]
    fn the_line_is_the_time_then_the_text() {
        let shown = Notification {
            at: Some(at()),
            text: "deployed".to_owned(),
        };
        let local = at().with_timezone(&Local).format("%H:%M:%S").to_string();
        assert_eq!(shown.line(), format!("{local} - deployed"));
        assert_eq!(shown.at_attr(), "2026-12-02T14:30:05.123Z");
        let untimed = Notification {
            at: None,
            text: "old".to_owned(),
        };
        assert_eq!(
            (untimed.line(), untimed.at_attr()),
            ("old".into(), "".into())
        );
    }
}
