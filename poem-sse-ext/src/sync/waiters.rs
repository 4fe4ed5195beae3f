//! [`Waiters`]: the wakers of everything that waits for one kind of event (a log's appends, a
//! shutdown), registered once and woken all together.
//!
//! An idle stream is mostly waiting, so what a wait costs is what an idle stream costs. A tokio
//! `watch` receiver polled as a stream keeps a boxed future per waiter (about 160 bytes) and
//! builds it anew after every wake-up. Here a waiter is a slot in a slab (24 bytes) plus the
//! key and a copy of the waker it registered (24 bytes inline); it stays registered across
//! wake-ups, so waiting again takes no lock and allocates nothing, and it leaves the slab when
//! its owner drops it.

use std::{
    sync::{Mutex, MutexGuard},
    task::Waker,
};

use slab::Slab;

/// How many wakers are cloned under the lock before they are woken outside it.
const BATCH: usize = 32;

/// The registered wakers of one kind of event. [`Waiters::wake_all`] wakes every one of them and
/// leaves them registered.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: Mutex<Slab<Waker>>,
}

/// One place in [`Waiters`]: its key and the waker registered there. Give it back with
/// [`Waiters::unregister`] when the owner is dropped.
#[derive(Default)]
pub(crate) struct Waiter {
    slot: Option<(usize, Waker)>,
}

impl Waiters {
    /// Makes sure `waker` is woken by every later [`wake_all`](Self::wake_all). Register first,
    /// then check the condition waited for: an event between the two still wakes the task.
    /// Takes the lock only the first time and when the task's waker changed.
    pub(crate) fn register(&self, waiter: &mut Waiter, waker: &Waker) {
        match &mut waiter.slot {
            Some((_, registered)) if registered.will_wake(waker) => {}
            Some((key, registered)) => {
                registered.clone_from(waker);
                if let Some(slot) = self.lock().get_mut(*key) {
                    slot.clone_from(waker);
                }
            }
            None => {
                let key = self.lock().insert(waker.clone());
                waiter.slot = Some((key, waker.clone()));
            }
        }
    }

    /// Removes the waiter's waker, if it registered one.
    pub(crate) fn unregister(&self, waiter: &mut Waiter) {
        if let Some((key, _)) = waiter.slot.take() {
            self.lock().try_remove(key);
        }
    }

    /// Wakes every registered waker. They are woken outside the lock (a waker may do anything,
    /// even drop another waiter), a batch at a time; one registered meanwhile may be missed, but
    /// it registered after the event and checks for it next.
    pub(crate) fn wake_all(&self) {
        // Allocated on the first waker: an append to a channel nobody reads allocates nothing.
        let mut batch: Vec<Waker> = Vec::new();
        let mut next = 0;
        loop {
            let end = {
                let slots = self.lock();
                let end = slots.capacity();
                while next < end && batch.len() < BATCH {
                    if let Some(waker) = slots.get(next) {
                        if batch.capacity() == 0 {
                            batch.reserve_exact(BATCH);
                        }
                        batch.push(waker.clone());
                    }
                    next += 1;
                }
                end
            };
            batch.drain(..).for_each(Waker::wake);
            if next >= end {
                return;
            }
        }
    }

    /// How many waiters are registered.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Slab<Waker>> {
        super::lock(&self.slots)
    }
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("registered", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        task::Wake,
    };

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    #[test]
    fn every_waiter_is_woken_by_every_event_and_stays_registered() {
        let waiters = Waiters::default();
        // More than one batch.
        let all: Vec<_> = (0..BATCH * 2 + 5)
            .map(|_| {
                let (count, waker) = counter();
                let mut waiter = Waiter::default();
                waiters.register(&mut waiter, &waker);
                (count, waiter)
            })
            .collect();
        waiters.wake_all();
        waiters.wake_all();
        for (count, _) in &all {
            assert_eq!(count.0.load(Ordering::SeqCst), 2);
        }
        assert_eq!(waiters.len(), all.len());
    }

    #[test]
    fn registering_the_same_waker_again_keeps_one_slot() {
        let waiters = Waiters::default();
        let (count, waker) = counter();
        let mut waiter = Waiter::default();
        for _ in 0..3 {
            waiters.register(&mut waiter, &waker);
        }
        assert_eq!(waiters.len(), 1);
        waiters.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_new_waker_replaces_the_old_one() {
        let waiters = Waiters::default();
        let (old, old_waker) = counter();
        let (new, new_waker) = counter();
        let mut waiter = Waiter::default();
        waiters.register(&mut waiter, &old_waker);
        waiters.register(&mut waiter, &new_waker);
        waiters.wake_all();
        assert_eq!(old.0.load(Ordering::SeqCst), 0);
        assert_eq!(new.0.load(Ordering::SeqCst), 1);
        assert_eq!(waiters.len(), 1);
    }

    #[test]
    fn an_unregistered_waiter_is_not_woken_and_frees_its_slot() {
        let waiters = Waiters::default();
        let (count, waker) = counter();
        let mut waiter = Waiter::default();
        waiters.register(&mut waiter, &waker);
        waiters.unregister(&mut waiter);
        waiters.unregister(&mut waiter);
        waiters.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(waiters.len(), 0);
        // The waiter's waker is released: nothing keeps its task alive.
        drop(waker);
        assert_eq!(Arc::strong_count(&count), 1);
    }
}
