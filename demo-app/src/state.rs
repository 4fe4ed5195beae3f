//! What a page renders: each of its channels' newest events and the id they lead up to, read
//! from the hub's store with [`Hub::recent`].
//!
//! The store is the only buffer: the demo keeps no copy of what it published, so every instance
//! sharing a store renders the same page, and its client resumes after the rendered id without
//! losing or repeating an event, whichever instance it connects to.

use std::collections::BTreeMap;

use poem::{
    error::ResponseError,
    http::{header, StatusCode},
    Response,
};
use poem_sse_ext::{EventId, Hub, ReadError, StoredEvent};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::value::RawValue;

use crate::widgets::Page;

/// A page's state: per channel, its recent events and the id to resume after. Serializes as the
/// pages embed it and `/api/state/{page}` answers it:
/// `{"page": "..", "cursor": "..", "channels": {"<name>": {"id": "..", "items": [..]}}}`.
#[derive(Debug, Serialize)]
pub struct PageState {
    /// The page's name.
    pub page: &'static str,
    /// The set cursor of the page's channels at their `id`s: `GET /events?channels=<all of
    /// them, in order>&lastEventId=<cursor>` resumes every channel exactly after this state.
    pub cursor: String,
    /// Per channel of the page.
    pub channels: BTreeMap<&'static str, ChannelState>,
}

/// One channel of a [`PageState`].
#[derive(Debug, Serialize)]
pub struct ChannelState {
    /// The channel's head when its items were read: the page's stream resumes after it.
    pub id: EventId,
    /// The newest events, oldest first.
    pub items: Vec<Item>,
}

/// One event as a page's state carries it.
#[derive(Debug, Serialize)]
pub struct Item {
    /// Its id in the store.
    pub id: EventId,
    /// The event name, `message` when it has none (as `EventSource` dispatches it).
    pub event: String,
    /// The data: as it is when it is JSON (byte for byte), else as a JSON string of the text.
    pub data: Box<RawValue>,
    /// The data as it was sent.
    #[serde(skip)]
    text: String,
}

impl Item {
    fn new(event: StoredEvent) -> Self {
        let data = RawValue::from_string(event.data.clone()).unwrap_or_else(|_| {
            // A string always serializes; the fallback is never reached.
            serde_json::value::to_raw_value(&event.data)
                .unwrap_or_else(|_| RawValue::NULL.to_owned())
        });
        Self {
            id: event.id,
            event: event.event.unwrap_or_else(|| "message".to_owned()),
            data,
            text: event.data,
        }
    }

    /// The data as it was sent: what `EventSource` hands to the page.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The data read as a `T`, if it is one.
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.data.get()).ok()
    }
}

impl ChannelState {
    /// The newest `keep` events of `channel` and its head, read together.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn read(hub: &Hub, channel: &str, keep: usize) -> Result<Self, ReadError> {
        let recent = hub.recent(channel, keep).await?;
        Ok(Self {
            id: recent.head,
            items: recent.events.into_iter().map(Item::new).collect(),
        })
    }

    /// The newest item whose data reads as a `T` (other data, posted through the API say, is
    /// skipped).
    pub fn newest<T: DeserializeOwned>(&self) -> Option<T> {
        self.items.iter().rev().find_map(Item::parse)
    }
}

impl PageState {
    /// Reads `page`'s channels from `hub`.
    ///
    /// # Errors
    /// [`StateError::Read`] when the store fails (or the hub holds its maximum of channels).
    pub async fn read(hub: &Hub, page: Page) -> Result<Self, StateError> {
        let mut channels = BTreeMap::new();
        let names = page.set();
        for (channel, keep) in page.channels() {
            // One call per channel: each returns its items and its head together, so each
            // channel's state is exact on its own; no lock spans the calls.
            let state = ChannelState::read(hub, channel, keep)
                .await
                .map_err(|source| StateError::Read { channel, source })?;
            channels.insert(channel, state);
        }
        let heads: Vec<Option<&EventId>> = names
            .iter()
            .map(|name| channels.get(name).map(|c: &ChannelState| &c.id))
            .collect();
        let cursor = poem_sse_ext::wire::set_cursor(&names, &heads);
        Ok(Self {
            page: page.name(),
            cursor,
            channels,
        })
    }

    /// The state of `channel`, if the page reads it.
    pub fn channel(&self, channel: &str) -> Option<&ChannelState> {
        self.channels.get(channel)
    }

    /// The state as JSON safe to place inside `<script type="application/json">`: no `<` can
    /// end the element (inside JSON, `<` only occurs in strings, where `\u003c` means the same).
    pub fn embedded(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| "{}".to_owned())
            .replace('<', "\\u003c")
    }
}

/// Why a page's state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No page has this name.
    #[error("no page `{0}`: the pages are `dashboard`, `notifications` and `hub`")]
    UnknownPage(String),
    /// The hub could not read one of the page's channels.
    #[error("reading channel `{channel}` failed: {source}")]
    Read {
        /// The channel.
        channel: &'static str,
        /// Why.
        source: ReadError,
    },
}

/// The page called `name` (as in `/api/state/{page}`).
///
/// # Errors
/// [`StateError::UnknownPage`].
pub fn page_named(name: &str) -> Result<Page, StateError> {
    Page::from_name(name).ok_or_else(|| StateError::UnknownPage(name.to_owned()))
}

/// Seconds a client should wait before asking again after a `503`.
pub const RETRY_AFTER_SECS: u64 = 2;

impl ResponseError for StateError {
    fn status(&self) -> StatusCode {
        match self {
            StateError::UnknownPage(_) => StatusCode::NOT_FOUND,
            StateError::Read { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Plain text, with `Retry-After` on a `503` (the store may come back).
    fn as_response(&self) -> Response {
        let mut response = Response::builder()
            .status(self.status())
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string());
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use poem_sse_ext::Event;

    use super::*;
    use crate::widgets::NOTIFICATIONS;

    #[tokio::test]
    async fn state_is_what_the_store_holds_with_its_head() {
        let hub = Hub::new();
        for n in 0..60 {
            let text = format!("note {n}");
            let event = Event::text(text).event("notification");
            hub.publish(NOTIFICATIONS, event.unwrap_or_else(|e| panic!("{e}")))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let json = r#"{"z": 0.1000000000000000055511151231257827, "a": 18446744073709551616}"#;
        let last = hub
            .publish(NOTIFICATIONS, Event::text(json))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let state = PageState::read(&hub, Page::Notifications)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let feed = state
            .channel(NOTIFICATIONS)
            .unwrap_or_else(|| panic!("feed"));
        assert_eq!(feed.id, last);
        assert_eq!(feed.items.len(), crate::widgets::FEED_ITEMS);
        assert_eq!(feed.items[0].text(), "note 11");
        assert_eq!(feed.items[0].event, "notification");
        let newest = &feed.items[feed.items.len() - 1];
        assert_eq!((&newest.id, newest.event.as_str()), (&last, "message"));
        // JSON data is embedded as it was sent; text as a JSON string.
        let embedded = state.embedded();
        assert!(embedded.contains(json), "{embedded}");
        assert!(embedded.contains(r#""data":"note 59""#), "{embedded}");
    }

    #[test]
    fn embedded_json_can_not_close_the_script() {
        let mut channels = BTreeMap::new();
        let text = "</script><script>alert(1)</script>";
        let item = Item::new(StoredEvent {
            id: EventId::new("1-1"),
            event: None,
            data: text.to_owned(),
        });
        channels.insert(
            NOTIFICATIONS,
            ChannelState {
                id: EventId::new("1-1"),
                items: vec![item],
            },
        );
        let state = PageState {
            page: "notifications",
            cursor: String::new(),
            channels,
        };
        let embedded = state.embedded();
        assert!(!embedded.contains('<'), "{embedded}");
        let back: serde_json::Value =
            serde_json::from_str(&embedded).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back["channels"][NOTIFICATIONS]["items"][0]["data"], text);
    }

    #[tokio::test]
    async fn a_failed_read_is_a_503_with_retry_after_and_the_reason() {
        let hub = Hub::builder().max_channels(0).build();
        let err = PageState::read(&hub, Page::Notifications)
            .await
            .err()
            .unwrap_or_else(|| panic!("a hub without room for channels can not read"));
        let response = err.as_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&header::HeaderValue::from(RETRY_AFTER_SECS))
        );
        assert!(err.to_string().contains("notifications"), "{err}");
        let unknown = page_named("nope").err().map(|e| e.status());
        assert_eq!(unknown, Some(StatusCode::NOT_FOUND));
    }
}
