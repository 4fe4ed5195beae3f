//! The hub's channel registry: the one place a channel is registered, capped, counted and
//! forgotten.
//!
//! A channel costs memory only while something needs it: a stream reading it, a publish or read
//! in flight, or events retained in this process. When none is left it is forgotten (at once
//! when its last stream closes, or by a sweep when the registry is full), so clients asking for
//! made-up names hold channels only as long as they hold streams.

use std::{
    collections::HashMap,
    fmt,
    sync::{atomic::Ordering, Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use crate::{
    hub::stats::{ChannelStats, StreamStats},
    store::{ReplayStore, StoreChannel},
};

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 64;

/// A channel name that was refused; the message echoes it (escaped, and shortened if long).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct ChannelError {
    name: String,
    unknown: bool,
}

impl ChannelError {
    /// A name that is not `[A-Za-z0-9_.-]{1,64}`, or is `.` or `..`.
    pub fn invalid(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unknown: false,
        }
    }

    /// A valid name that the application's channel filter does not know
    /// ([`HubBuilder::channel_filter`](crate::HubBuilder::channel_filter)).
    pub fn unknown(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unknown: true,
        }
    }

    /// The refused name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn message(&self) -> String {
        let mut shown: String = self.name.chars().take(80).collect();
        if shown.len() < self.name.len() {
            shown.push('…');
        }
        if self.unknown {
            format!("no channel {shown:?} on this server")
        } else {
            format!("invalid channel name {shown:?}: channel names are 1 to {MAX_CHANNEL_LEN} characters from A-Z a-z 0-9 _ . -, and not `.` or `..`")
        }
    }
}

/// Checks that `name` matches `[A-Za-z0-9_.-]{1,64}` and is not `.` or `..` (which would read
/// as path segments in URLs and logs).
///
/// # Errors
/// [`ChannelError`] otherwise.
pub fn validate_channel(name: &str) -> Result<(), ChannelError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ChannelError::invalid(name))
    }
}

/// Too many channels: registering one more would pass [`crate::HubBuilder::max_channels`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel `{channel}` not opened: the hub already holds its maximum of {limit} channels")]
pub struct TooManyChannels {
    /// The channel that was refused.
    pub channel: String,
    /// The hub's `max_channels`.
    pub limit: usize,
}

/// A registered channel: the store's side of it and its counters.
pub(crate) struct Channel {
    pub(crate) name: Box<str>,
    pub(crate) store: Arc<dyn StoreChannel>,
    pub(crate) stats: ChannelStats,
}

/// Which channel names exist, as the application says.
pub(crate) type ChannelFilter = dyn Fn(&str) -> bool + Send + Sync;

/// Channel name → [`Channel`], with at most `cap` entries. Reads take the read lock only; a new
/// channel takes the write lock once.
///
/// Invariant: an entry is removed only under the write lock and only while the map holds the sole
/// `Arc` of it. Every user (a stream, a publish or read in flight) clones the `Arc` under the
/// lock, so an entry in use is never removed, and a user never appends to a channel that a later
/// user can no longer find.
pub(crate) struct Registry {
    map: RwLock<HashMap<Box<str>, Arc<Channel>>>,
    store: Arc<dyn ReplayStore>,
    filter: Option<Arc<ChannelFilter>>,
    cap: usize,
    /// The counters of forgotten channels, so that totals never go down.
    retired: ChannelStats,
    /// Streams opened and closed, and their delivery lag, over all channels.
    pub(crate) streams: StreamStats,
}

impl Registry {
    pub(crate) fn new(
        store: Arc<dyn ReplayStore>,
        cap: usize,
        filter: Option<Arc<ChannelFilter>>,
    ) -> Self {
        Self {
            map: RwLock::default(),
            store,
            filter,
            cap,
            retired: ChannelStats::default(),
            streams: StreamStats::default(),
        }
    }

    pub(crate) fn store(&self) -> &dyn ReplayStore {
        &*self.store
    }

    /// Checks `name` against the syntax and the application's filter, allocating nothing.
    ///
    /// # Errors
    /// [`ChannelError`] for an invalid or unknown name.
    pub(crate) fn validate(&self, name: &str) -> Result<(), ChannelError> {
        validate_channel(name)?;
        match &self.filter {
            Some(exists) if !exists(name) => Err(ChannelError::unknown(name)),
            _ => Ok(()),
        }
    }

    /// The channel `name` (already validated), registered if it is not yet. When the registry is
    /// full, channels nobody uses are forgotten first.
    ///
    /// # Errors
    /// [`TooManyChannels`] when the registry is full of channels in use.
    pub(crate) fn get_or_register(&self, name: &str) -> Result<Arc<Channel>, TooManyChannels> {
        if let Some(channel) = self.read().get(name) {
            return Ok(Arc::clone(channel));
        }
        let mut map = self.write();
        if let Some(channel) = map.get(name) {
            return Ok(Arc::clone(channel));
        }
        if map.len() >= self.cap {
            map.retain(|_, channel| !self.retire_if_idle(channel));
        }
        if map.len() >= self.cap {
            return Err(TooManyChannels {
                channel: name.to_owned(),
                limit: self.cap,
            });
        }
        let channel = Arc::new(Channel {
            name: name.into(),
            store: Arc::clone(&self.store).channel(name),
            stats: ChannelStats::default(),
        });
        map.insert(name.into(), Arc::clone(&channel));
        Ok(channel)
    }

    /// Forgets `name` if nothing uses it any more. Call it after dropping your `Arc` of it.
    pub(crate) fn forget_if_idle(&self, name: &str) {
        let idle = |map: &HashMap<Box<str>, Arc<Channel>>| map.get(name).is_some_and(is_idle);
        // Checked under the read lock first: most channels keep events and are never forgotten.
        if !idle(&self.read()) {
            return;
        }
        let mut map = self.write();
        if let Some(channel) = map.get(name) {
            if self.retire_if_idle(channel) {
                map.remove(name);
            }
        }
    }

    /// Whether `channel` is unused; if so, its counters are kept in the retired totals.
    /// Must be called under the write lock, and the entry removed when it returns `true`.
    fn retire_if_idle(&self, channel: &Arc<Channel>) -> bool {
        let idle = is_idle(channel);
        if idle {
            self.retired.absorb(&channel.stats);
        }
        idle
    }

    /// Calls `each` with every registered channel's name and counters, under the read lock.
    pub(crate) fn for_each_channel(&self, mut each: impl FnMut(&str, &ChannelStats)) {
        for channel in self.read().values() {
            each(&channel.name, &channel.stats);
        }
    }

    /// The counters of forgotten channels.
    pub(crate) fn retired(&self) -> &ChannelStats {
        &self.retired
    }

    /// Registered channels.
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Box<str>, Arc<Channel>>> {
        crate::sync::read(&self.map)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Box<str>, Arc<Channel>>> {
        crate::sync::write(&self.map)
    }
}

/// Nobody holds the channel but the map, no stream reads it, and this process keeps nothing of
/// it that a client could still ask for.
fn is_idle(channel: &Arc<Channel>) -> bool {
    Arc::strong_count(channel) == 1
        && channel.stats.open.load(Ordering::Acquire) == 0
        && channel.store.is_empty()
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.len())
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{store::MemoryStore, wire::Event};

    fn registry(cap: usize) -> Registry {
        Registry::new(Arc::new(MemoryStore::default()), cap, None)
    }

    #[test]
    fn channel_names() {
        for ok in ["a", "prices", "A-b_c.9", "...", &"x".repeat(64)] {
            assert_eq!(validate_channel(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "ä",
            "a\n",
            &"x".repeat(65),
            "..%2f",
        ] {
            assert_eq!(
                validate_channel(bad),
                Err(ChannelError::invalid(bad)),
                "{bad:?}"
            );
        }
        let long = ChannelError::invalid("y".repeat(1_000)).to_string();
        assert!(long.len() < 300 && long.contains("\"yyy"), "{long}");
    }

    #[test]
    fn the_filter_refuses_unknown_names_without_allocating() {
        let filter: Arc<ChannelFilter> = Arc::new(|name: &str| name.starts_with("news."));
        let registry = Registry::new(Arc::new(MemoryStore::default()), 10, Some(filter));
        assert_eq!(registry.validate("news.eu"), Ok(()));
        assert_eq!(
            registry.validate("made-up"),
            Err(ChannelError::unknown("made-up"))
        );
        assert_eq!(registry.len(), 0);
    }

    #[tokio::test]
    async fn channels_in_use_or_holding_events_are_kept_and_idle_ones_forgotten() {
        let registry = registry(2);
        let with_event = registry.get_or_register("kept").map_err(|e| e.to_string());
        let with_event = with_event.unwrap_or_else(|e| panic!("{e}"));
        let _ = with_event.store.append(&Event::text("x")).await;
        drop(with_event);
        registry.forget_if_idle("kept");

        let held = registry.get_or_register("held");
        assert!(held.is_ok());
        registry.forget_if_idle("held");
        assert_eq!(registry.len(), 2, "a channel in use is never forgotten");
        drop(held);

        // Full: the unused, empty channel makes room; the one with an event stays.
        assert!(registry.get_or_register("new").is_ok());
        let mut names = Vec::new();
        registry.for_each_channel(|name, _| names.push(name.to_owned()));
        names.sort();
        assert_eq!(names, ["kept", "new"]);
        registry.forget_if_idle("new");
        assert_eq!(registry.len(), 1);
        assert_eq!(
            registry.get_or_register("x").map(|_| ()).err(),
            None,
            "room again"
        );
    }
}
