//! Publishing through the hub while keeping what the pages render.
//!
//! A page is rendered with its channels' recent items *and* the id of the newest of them; its
//! client resumes the stream after that id. For that pair to be exact, recording an item and
//! publishing it happen under one lock, and a snapshot takes the same lock: no event can be
//! published between reading the items and reading the id.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use poem_sse_ext::{Event, EventId, Hub, PublishError};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::widgets;

/// One published event as a page renders it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its id in the store.
    pub id: EventId,
    /// The event name (`message` when none was given), as `EventSource` dispatches it.
    pub event: String,
    /// The data: JSON when it parses as JSON, else the text.
    pub data: Value,
}

/// The state of one channel: its recent items and the id they correspond to.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelState {
    /// The channel's head when the state was taken: resume the stream after it.
    pub id: EventId,
    /// The recent items, oldest first.
    pub items: Vec<Item>,
}

/// The hub and the recent items of the channels the pages render. Cheap to clone.
#[derive(Clone)]
pub struct Live {
    hub: Hub,
    recent: Arc<Mutex<HashMap<String, VecDeque<Item>>>>,
}

impl Live {
    /// Wraps `hub`.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            recent: Arc::default(),
        }
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Publishes `data` on `channel` as event `event` (or `message`): a JSON string is sent as
    /// its text, any other value serialized. Channels that a page renders also keep the item.
    ///
    /// # Errors
    /// What [`Hub::publish`] returns, and [`PublishError::Event`] for an invalid event name.
    pub async fn publish(
        &self,
        channel: &str,
        event: Option<&str>,
        data: &Value,
    ) -> Result<EventId, PublishError> {
        let mut frame = match data {
            Value::String(text) => Event::text(text.clone()),
            other => Event::json(other)?,
        };
        if let Some(name) = event {
            frame = frame.event(name)?;
        }
        let Some(keep) = widgets::kept_items(channel) else {
            return self.hub.publish(channel, frame).await;
        };
        let mut recent = self.recent.lock().await;
        let id = self.hub.publish(channel, frame).await?;
        let items = recent.entry(channel.to_owned()).or_default();
        if items.len() >= keep {
            items.pop_front();
        }
        items.push_back(Item {
            id: id.clone(),
            event: event.unwrap_or("message").to_owned(),
            data: match data {
                Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| data.clone()),
                other => other.clone(),
            },
        });
        Ok(id)
    }

    /// The state of each of `channels`, each with the id it corresponds to.
    ///
    /// # Errors
    /// A store failure, or an invalid channel name.
    pub async fn state(
        &self,
        channels: &[&str],
    ) -> Result<BTreeMap<String, ChannelState>, PublishError> {
        let recent = self.recent.lock().await;
        let mut out = BTreeMap::new();
        for &channel in channels {
            let items: Vec<Item> = recent
                .get(channel)
                .map(|items| items.iter().cloned().collect())
                .unwrap_or_default();
            // Equal to the newest item's id unless the hub was given events elsewhere; the
            // store's head is the authority.
            let id = self.hub.head(channel).await?;
            out.insert(channel.to_owned(), ChannelState { id, items });
        }
        Ok(out)
    }
}
