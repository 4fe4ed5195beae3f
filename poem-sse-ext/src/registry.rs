//! The hub's channel registry: the one place a channel is registered, capped and counted.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, RwLock,
    },
};

use crate::{
    metrics::ChannelStats,
    store::{ReplayStore, StoreChannel},
};

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 64;

/// An invalid channel name; the message echoes it (escaped, and shortened if long).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid channel name {}: channel names are 1 to {MAX_CHANNEL_LEN} characters from A-Z a-z 0-9 _ . -, and not `.` or `..`", shown(.0))]
pub struct ChannelError(pub String);

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
        Err(ChannelError(name.to_owned()))
    }
}

/// `name` quoted and escaped, at most 80 characters of it.
fn shown(name: &str) -> String {
    let mut shown: String = name.chars().take(80).collect();
    if shown.len() < name.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// A registered channel: the store's side of it and its counters.
pub(crate) struct Channel {
    pub(crate) name: Box<str>,
    pub(crate) store: Arc<dyn StoreChannel>,
    pub(crate) stats: ChannelStats,
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

/// Channel name → [`Channel`], with at most `cap` entries. Reads take the read lock only; a new
/// channel takes the write lock once.
pub(crate) struct Registry {
    map: RwLock<HashMap<Box<str>, Arc<Channel>>>,
    store: Arc<dyn ReplayStore>,
    cap: usize,
    /// Open streams over all channels. Incremented before the per-channel count and decremented
    /// after it, so it is never below the sum of the channels' counts.
    pub(crate) open: AtomicUsize,
}

impl Registry {
    pub(crate) fn new(store: Arc<dyn ReplayStore>, cap: usize) -> Self {
        Self {
            map: RwLock::default(),
            store,
            cap,
            open: AtomicUsize::new(0),
        }
    }

    pub(crate) fn store(&self) -> &dyn ReplayStore {
        &*self.store
    }

    /// The channel `name` (already validated), registered if it is not yet.
    ///
    /// # Errors
    /// [`TooManyChannels`] when registering it would exceed the cap.
    pub(crate) fn get_or_register(&self, name: &str) -> Result<Arc<Channel>, TooManyChannels> {
        // A poisoned lock only means a panic elsewhere while it was held; the map itself is
        // consistent between statements, so keep serving.
        if let Some(channel) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(Arc::clone(channel));
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = map.get(name) {
            return Ok(Arc::clone(channel));
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

    /// `f` applied to every channel, under the read lock.
    pub(crate) fn map_each<R>(&self, mut f: impl FnMut(&Channel) -> R) -> Vec<R> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|channel| f(channel))
            .collect()
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

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
                Err(ChannelError(bad.to_owned())),
                "{bad:?}"
            );
        }
        let long = ChannelError("y".repeat(1_000)).to_string();
        assert!(long.len() < 300 && long.contains("\"yyy"), "{long}");
    }

    #[test]
    fn registers_once_and_enforces_the_cap() {
        let registry = Registry::new(Arc::new(MemoryStore::default()), 1);
        let first = registry.get_or_register("a").map(|c| Arc::as_ptr(&c));
        let again = registry.get_or_register("a").map(|c| Arc::as_ptr(&c));
        assert_eq!(first, again, "registered once");
        assert_eq!(
            registry.get_or_register("b").err(),
            Some(TooManyChannels {
                channel: "b".into(),
                limit: 1
            })
        );
    }
}
