//! The runs' store: any [`ReplayStore`], whose channels can be retired when their run expires.
//!
//! A hub forgets a channel once nothing uses it and its store holds nothing a client could still
//! ask for ([`StoreChannel::is_empty`]). A run's log is never empty (it starts with its start
//! event), but after its time to live no client may ask for it: retiring the channel says so, and
//! the hub forgets it (at once, or when its last stream closes), which drops this process's copy
//! of the log. Memory returns to what it was before the run.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::Duration,
};

use crate::{
    store::{BoxFuture, ReplayStore, StoreChannel, StoreError, StoreHealth, Subscription},
    wire::Event,
    wire::{EventId, Published, Recent},
};

/// Wraps the store of the runs' hub.
pub(crate) struct RetiringStore {
    inner: Arc<dyn ReplayStore>,
    flags: Arc<RetiredFlags>,
}

/// The retired flag of each registered channel, by name. Entries are removed when their channel
/// is dropped, so the map holds no more than the hub's registry.
#[derive(Default)]
pub(crate) struct RetiredFlags {
    map: Mutex<HashMap<Box<str>, Weak<AtomicBool>>>,
}

impl RetiringStore {
    pub(crate) fn new(inner: Arc<dyn ReplayStore>) -> Self {
        Self {
            inner,
            flags: Arc::default(),
        }
    }

    /// The flags through which channels of this store are retired.
    pub(crate) fn flags(&self) -> Arc<RetiredFlags> {
        Arc::clone(&self.flags)
    }
}

impl RetiredFlags {
    /// Marks `channel` as holding nothing a client may ask for; `false` when it is not
    /// registered (nothing to forget).
    pub(crate) fn retire(&self, channel: &str) -> bool {
        let flag = self.lock().get(channel).and_then(Weak::upgrade);
        if let Some(flag) = &flag {
            flag.store(true, Ordering::Release);
        }
        flag.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Weak<AtomicBool>>> {
        crate::sync::lock(&self.map)
    }
}

impl ReplayStore for RetiringStore {
    fn channel(self: Arc<Self>, name: &str) -> Arc<dyn StoreChannel> {
        let retired = Arc::new(AtomicBool::new(false));
        self.flags
            .lock()
            .insert(name.into(), Arc::downgrade(&retired));
        Arc::new(RetiringChannel {
            inner: Arc::clone(&self.inner).channel(name),
            name: name.into(),
            retired,
            flags: Arc::clone(&self.flags),
        })
    }

    fn health(&self) -> StoreHealth {
        self.inner.health()
    }
}

struct RetiringChannel {
    inner: Arc<dyn StoreChannel>,
    name: Box<str>,
    retired: Arc<AtomicBool>,
    flags: Arc<RetiredFlags>,
}

impl Drop for RetiringChannel {
    fn drop(&mut self) {
        let mut map = self.flags.lock();
        // The hub may have registered the name again meanwhile: remove only our own entry.
        let ours = map
            .get(&*self.name)
            .is_some_and(|flag| std::ptr::eq(flag.as_ptr(), Arc::as_ptr(&self.retired)));
        if ours {
            map.remove(&*self.name);
        }
    }
}

impl StoreChannel for RetiringChannel {
    fn append<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<EventId, StoreError>> {
        self.inner.append(event)
    }

    fn append_once<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        self.inner.append_once(key, window, event)
    }

    fn subscribe<'a>(
        &'a self,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>> {
        self.inner.subscribe(last_event_id)
    }

    fn head(&self) -> BoxFuture<'_, Result<EventId, StoreError>> {
        self.inner.head()
    }

    fn recent(&self, max: usize) -> BoxFuture<'_, Result<Recent, StoreError>> {
        self.inner.recent(max)
    }

    fn is_empty(&self) -> bool {
        // Set once the run expired: whatever the log holds, no client may ask for it.
        self.retired.load(Ordering::Acquire) || self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Retention};

    #[tokio::test]
    async fn a_retired_channel_is_empty_and_its_flag_goes_with_it() {
        let store = Arc::new(RetiringStore::new(Arc::new(MemoryStore::new(
            Retention::default(),
        ))));
        let flags = store.flags();
        let channel = Arc::clone(&store).channel("run.a");
        let other = Arc::clone(&store).channel("run.b");
        for ch in [&channel, &other] {
            assert!(ch.append(&Event::text("x")).await.is_ok());
            assert!(!ch.is_empty());
        }
        assert!(flags.retire("run.a"));
        assert!(!flags.retire("run.c"), "not registered");
        assert!(channel.is_empty());
        assert!(!other.is_empty(), "only the named channel");
        drop((channel, other));
        assert!(flags.lock().is_empty());
    }
}
