//! Idempotency keys of one channel, in process memory: a publisher that retries with the same
//! key within the window gets the first event's id back, and nothing is stored twice.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use tokio::time::Instant;

use super::EventId;

/// Most keys remembered per channel; the oldest are forgotten first.
pub(crate) const MAX_KEYS_PER_CHANNEL: usize = 10_000;

/// The keys seen within the window and the ids they were given, oldest first.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyKeys {
    ids: HashMap<Box<str>, EventId>,
    order: VecDeque<(Instant, Box<str>)>,
}

impl IdempotencyKeys {
    /// The id first published under `key`, if it is still within `window`.
    pub(crate) fn get(&mut self, key: &str, window: Duration) -> Option<EventId> {
        self.expire(window);
        self.ids.get(key).cloned()
    }

    /// Remembers that `key` was published as `id`.
    pub(crate) fn insert(&mut self, key: &str, id: EventId) {
        if self.order.len() >= MAX_KEYS_PER_CHANNEL {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        self.ids.insert(key.into(), id);
        self.order.push_back((Instant::now(), key.into()));
    }

    /// Whether no key is remembered any more (after dropping those past `window`).
    pub(crate) fn is_empty(&mut self, window: Duration) -> bool {
        self.expire(window);
        self.ids.is_empty()
    }

    fn expire(&mut self, window: Duration) {
        let now = Instant::now();
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= window {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.ids.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keys_are_remembered_within_the_window_and_bounded_in_number() {
        let window = Duration::from_secs(60);
        let mut keys = IdempotencyKeys::default();
        keys.insert("k", EventId::new("e-1"));
        assert_eq!(keys.get("k", window), Some(EventId::new("e-1")));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(keys.get("k", window), None);
        assert!(keys.is_empty(window));
        for n in 0..=MAX_KEYS_PER_CHANNEL {
            keys.insert(&n.to_string(), EventId::new(n.to_string()));
        }
        assert_eq!(keys.get("0", window), None, "the oldest key made room");
        assert!(keys.get("1", window).is_some());
    }
}
