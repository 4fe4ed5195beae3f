//! The default replay store: per-channel logs in this process's memory.

use std::sync::Arc;

use super::{
    BoxFuture, ChannelLog, EventId, ReplayStore, ResetReason, Retention, StoreError, Subscription,
};
use crate::{channels::ChannelMap, event::frame_with_id, Event};

/// Longest `Last-Event-ID` the store parses; a longer one is treated as unknown.
const MAX_RESUME_ID_LEN: usize = 64;

/// Keeps each channel's history in memory, bounded by a [`Retention`].
///
/// Ids are `<epoch>-<seq>`: `epoch` is chosen at random when the store is created, so ids from
/// before a restart are recognised (and answered with [`ResetReason::Epoch`]); `seq` counts the
/// channel's events from 1, and `<epoch>-0` means "before the first event".
///
/// Channels are created on first use and kept for the life of the store, up to
/// `max_channels` (default 10,000); their history is bounded by the retention.
pub struct MemoryStore {
    epoch: String,
    retention: Retention,
    channels: ChannelMap<ChannelLog>,
}

impl MemoryStore {
    /// A store with a fresh random epoch.
    pub fn new(retention: Retention) -> Self {
        Self::with_epoch(retention, format!("{:08x}", rand::random::<u32>()))
    }

    /// A store with the given epoch (tests, or an epoch persisted by the application).
    /// The epoch must not contain `-`, CR, LF or NUL; other characters are dropped.
    pub fn with_epoch(retention: Retention, epoch: impl Into<String>) -> Self {
        let mut epoch: String = epoch
            .into()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if epoch.is_empty() {
            epoch.push('0');
        }
        Self {
            epoch,
            retention,
            channels: ChannelMap::new(10_000),
        }
    }

    /// Sets the most channels the store will hold (default 10,000).
    pub fn max_channels(mut self, n: usize) -> Self {
        self.channels.set_cap(n);
        self
    }

    /// The epoch written in front of every id.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The log of `channel`, created if needed.
    ///
    /// # Errors
    /// [`StoreError::TooManyChannels`] when creating it would exceed the cap.
    pub fn channel(&self, channel: &str) -> Result<Arc<ChannelLog>, StoreError> {
        self.channels
            .get_or_create(channel, || ChannelLog::new(self.retention, 0, self.id(0)))
    }

    fn id(&self, seq: u128) -> EventId {
        EventId::new(format!("{}-{seq}", self.epoch))
    }

    /// The sequence number in `id`, or why it can not be resumed from.
    fn parse(&self, id: &str) -> Result<u128, ResetReason> {
        if id.len() > MAX_RESUME_ID_LEN {
            return Err(ResetReason::Unknown);
        }
        let (epoch, seq) = id.split_once('-').ok_or(ResetReason::Unknown)?;
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ResetReason::Unknown)?;
        if epoch == self.epoch {
            Ok(u128::from(seq))
        } else if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Err(ResetReason::Epoch)
        } else {
            Err(ResetReason::Unknown)
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Retention::default())
    }
}

impl ReplayStore for MemoryStore {
    fn append<'a>(
        &'a self,
        channel: &'a str,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<EventId, StoreError>> {
        Box::pin(async move {
            let log = self.channel(channel)?;
            // Encode once, outside the lock; only the id line is added under it.
            let body = event.encode_with_id(None);
            log.append_next(|seq| {
                let id = self.id(seq);
                let frame = frame_with_id(id.as_str(), &body);
                (id, frame)
            })
        })
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>> {
        Box::pin(async move {
            let log = self.channel(channel)?;
            log.evict_expired();
            // The log holds history and live frames alike, so subscribing and reading history are
            // one step: the cursor reads everything after its position, whenever it was appended.
            let (cursor, reset) = match last_event_id.map(|id| self.parse(id)) {
                None => log.cursor_after(None),
                Some(Ok(seq)) => log.cursor_after(Some(seq)),
                Some(Err(reason)) => {
                    let (cursor, _) = log.cursor_after(None);
                    let reset = super::Reset {
                        reason,
                        resume_from: log.head().1,
                    };
                    (cursor, Some(reset))
                }
            };
            Ok(Subscription {
                reset,
                replay: Vec::new(),
                cursor,
            })
        })
    }

    fn head<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<EventId, StoreError>> {
        Box::pin(async move { Ok(self.channel(channel)?.head().1) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> MemoryStore {
        MemoryStore::with_epoch(Retention::default(), "abc")
    }

    #[test]
    fn parses_only_its_own_ids() {
        let store = store();
        assert_eq!(store.parse("abc-0"), Ok(0));
        assert_eq!(store.parse("abc-42"), Ok(42));
        assert_eq!(store.parse("def-42"), Err(ResetReason::Epoch));
        for garbage in [
            "",
            "42",
            "-1",
            "abc--1",
            "abc-+1",
            "abc-1.5",
            "abc-99999999999999999999999",
            "abc-",
            "-",
            "ab c-1",
            "ä-1",
        ] {
            assert_eq!(
                store.parse(garbage),
                Err(ResetReason::Unknown),
                "{garbage:?}"
            );
        }
        assert_eq!(store.parse(&"a".repeat(4096)), Err(ResetReason::Unknown));
    }

    #[tokio::test]
    async fn channel_cap_is_enforced() {
        let store = store().max_channels(1);
        assert!(store.append("a", &Event::text("x")).await.is_ok());
        assert_eq!(
            store.append("b", &Event::text("x")).await,
            Err(StoreError::TooManyChannels(1))
        );
        assert!(store.append("a", &Event::text("y")).await.is_ok());
    }

    #[tokio::test]
    async fn ids_count_per_channel_and_head_follows() {
        let store = store();
        assert_eq!(store.head("a").await, Ok(EventId::new("abc-0")));
        assert_eq!(
            store.append("a", &Event::text("x")).await,
            Ok(EventId::new("abc-1"))
        );
        assert_eq!(
            store.append("b", &Event::text("x")).await,
            Ok(EventId::new("abc-1"))
        );
        assert_eq!(
            store.append("a", &Event::text("y")).await,
            Ok(EventId::new("abc-2"))
        );
        assert_eq!(store.head("a").await, Ok(EventId::new("abc-2")));
    }
}
