//! What a store's channel handles, backfills and reader task share.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicBool, atomic::Ordering, Arc, Mutex, Weak},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    commands::Commands,
    follow::{ChannelInner, Follow},
    health::Health,
    keys::KeyScheme,
    lock,
};
use crate::store::Retention;

pub(super) struct Shared {
    pub(super) keys: KeyScheme,
    pub(super) retention: Retention,
    pub(super) commands: Commands,
    pub(super) health: Arc<Health>,
    /// Every channel some handle holds, by name, so that a channel has one state in this process
    /// however many handles the hub made of it. Weak: the hub's registry owns the channels (and
    /// caps them); this only finds them.
    channels: Mutex<Handles>,
    /// The channels each reader group follows (one group on one node, one per bucket on a
    /// cluster). A backfill inserts (then wakes the group's reader); the reader removes a
    /// channel once nothing used it for the idle grace. Strong, so that a channel the hub forgot
    /// and registers again within the grace finds its log still fed.
    followed: Vec<Mutex<HashMap<Box<str>, Arc<ChannelInner>>>>,
    /// Wakes a group's reader when a channel is added (a permit is stored if it is not waiting,
    /// so a registration between its snapshot and its XREAD still interrupts that XREAD).
    wake: Vec<Notify>,
    /// Set (with a wake) when someone subscribes to a channel whose key the group's reader
    /// stopped reading: check those keys again now.
    recheck: Vec<AtomicBool>,
}

#[derive(Default)]
struct Handles {
    by_name: HashMap<Box<str>, Weak<ChannelInner>>,
    /// Dead entries are dropped when the map reaches this size (then set to twice the live
    /// count), so that the map stays proportional to the live channels at O(1) amortized cost.
    prune_at: usize,
}

impl Shared {
    pub(super) fn new(
        keys: KeyScheme,
        retention: Retention,
        commands: Commands,
        health: Arc<Health>,
    ) -> Self {
        let groups = keys.groups();
        Self {
            keys,
            retention,
            commands,
            health,
            channels: Mutex::default(),
            followed: (0..groups).map(|_| Mutex::default()).collect(),
            wake: (0..groups).map(|_| Notify::new()).collect(),
            recheck: (0..groups).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub(super) fn stream_key(&self, channel: &str) -> String {
        self.keys.stream_key(channel)
    }

    /// Resolves when a channel was added to `group` (or a recheck asked) since the last time.
    pub(super) async fn woken(&self, group: usize) {
        self.wake[group].notified().await;
    }

    /// Whether a recheck of `group`'s set-aside keys was asked since the last call.
    pub(super) fn take_recheck(&self, group: usize) -> bool {
        self.recheck[group].swap(false, Ordering::AcqRel)
    }

    /// The state of channel `name`: the one in use, or a new (unfollowed) one.
    pub(super) fn channel(&self, name: &str) -> Arc<ChannelInner> {
        let mut channels = lock(&self.channels);
        if let Some(inner) = channels.by_name.get(name).and_then(Weak::upgrade) {
            return inner;
        }
        let inner = Arc::new(ChannelInner::new(
            name,
            self.stream_key(name),
            self.keys.group(name),
        ));
        channels.by_name.insert(name.into(), Arc::downgrade(&inner));
        if channels.by_name.len() >= channels.prune_at {
            channels.by_name.retain(|_, inner| inner.strong_count() > 0);
            channels.prune_at = (channels.by_name.len() * 2).max(64);
        }
        inner
    }

    /// Hands a filled channel to the reader.
    pub(super) fn start_following(&self, inner: &Arc<ChannelInner>, follow: Arc<Follow>) {
        {
            // The same lock order as the reader's snapshot (table, then phase): the reader sees
            // the channel live and listed, or neither.
            let mut followed = lock(&self.followed[inner.group]);
            inner.set_live(follow);
            followed.insert(inner.name.clone(), Arc::clone(inner));
        }
        // The reader picks the channel up with its next XREAD; this interrupts the current one.
        self.wake[inner.group].notify_one();
    }

    /// The channels `group` follows, after unfollowing those that nothing used for `grace`.
    pub(super) fn snapshot(&self, group: usize, grace: Duration) -> Vec<Arc<Follow>> {
        let now = Instant::now();
        let mut live = Vec::new();
        lock(&self.followed[group]).retain(|_, inner| match inner.keep_following(now, grace) {
            Some(follow) => {
                live.push(follow);
                true
            }
            None => false,
        });
        live
    }

    /// Asks the reader to check the keys it set aside now, rather than at its next periodic
    /// check.
    pub(super) fn ask_recheck(&self, group: usize) {
        self.recheck[group].store(true, Ordering::Release);
        self.wake[group].notify_one();
    }
}
