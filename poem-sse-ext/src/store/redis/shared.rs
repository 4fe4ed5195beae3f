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
    lock,
};
use crate::store::Retention;

pub(super) struct Shared {
    pub(super) prefix: String,
    pub(super) retention: Retention,
    pub(super) commands: Commands,
    pub(super) health: Arc<Health>,
    /// Every channel some handle holds, by name, so that a channel has one state in this process
    /// however many handles the hub made of it. Weak: the hub's registry owns the channels (and
    /// caps them); this only finds them.
    channels: Mutex<Handles>,
    /// The channels the reader follows. A backfill inserts (then wakes the reader); the reader
    /// removes a channel once nothing used it for the idle grace. Strong, so that a channel the
    /// hub forgot and registers again within the grace finds its log still fed.
    followed: Mutex<HashMap<Box<str>, Arc<ChannelInner>>>,
    /// Wakes the reader when a channel is added (a permit is stored if it is not waiting, so a
    /// registration between its snapshot and its XREAD still interrupts that XREAD).
    pub(super) wake: Notify,
    /// Set (with a wake) when someone subscribes to a channel whose key the reader stopped
    /// reading: check those keys again now.
    pub(super) recheck: AtomicBool,
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
        prefix: String,
        retention: Retention,
        commands: Commands,
        health: Arc<Health>,
    ) -> Self {
        Self {
            prefix,
            retention,
            commands,
            health,
            channels: Mutex::default(),
            followed: Mutex::default(),
            wake: Notify::new(),
            recheck: AtomicBool::new(false),
        }
    }

    pub(super) fn stream_key(&self, channel: &str) -> String {
        format!("{}:{channel}", self.prefix)
    }

    /// The state of channel `name`: the one in use, or a new (unfollowed) one.
    pub(super) fn channel(&self, name: &str) -> Arc<ChannelInner> {
        let mut channels = lock(&self.channels);
        if let Some(inner) = channels.by_name.get(name).and_then(Weak::upgrade) {
            return inner;
        }
        let inner = Arc::new(ChannelInner::new(name, self.stream_key(name)));
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
            let mut followed = lock(&self.followed);
            inner.set_live(follow);
            followed.insert(inner.name.clone(), Arc::clone(inner));
        }
        // The reader picks the channel up with its next XREAD; this interrupts the current one.
        self.wake.notify_one();
    }

    /// The followed channels, after unfollowing those that nothing used for `grace`.
    pub(super) fn snapshot(&self, grace: Duration) -> Vec<Arc<Follow>> {
        let now = Instant::now();
        let mut live = Vec::new();
        lock(&self.followed).retain(|_, inner| match inner.keep_following(now, grace) {
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
    pub(super) fn ask_recheck(&self) {
        self.recheck.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}
