//! [`Clock`]: one timer for the heartbeats of every stream of a worker thread, instead of one
//! tokio timer per stream.
//!
//! A stream that sends a frame records the clock's current tick ([`Heartbeat::sent`], an atomic
//! load: no timer is touched per event). When it runs out of frames it queues itself in the
//! wheel's bucket for the tick at which its idle interval will have passed, and the clock's one
//! timer wakes each bucket's streams when that tick comes. A stream that sent frames meanwhile
//! finds its interval not yet passed and queues itself again for its new deadline, so the timer
//! still restarts on every frame, at the cost of one wake-up per interval of a busy stream.
//!
//! A tick is a twentieth of the interval: a heartbeat comes at least one interval after the last
//! frame and at most a tick (5 %) later, plus however late the clock's task is run.
//!
//! What a waiting stream costs: its place in the clock (its waker, 24 bytes) and its key in one
//! bucket (4 bytes), where a tokio `Sleep` of its own took a 112-byte allocation and an entry in
//! the runtime's timer wheel to update.

use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    task::{Context, Waker},
    time::Duration,
};

use slab::Slab;
use tokio::time::Instant;

/// Ticks per heartbeat interval: a heartbeat is at most 1/`TICKS_PER_INTERVAL` late.
const TICKS_PER_INTERVAL: u32 = 20;
/// The shortest tick: tokio's timers have millisecond resolution.
const MIN_TICK: Duration = Duration::from_millis(1);
/// How many woken streams' wakers are cloned under the lock before they are woken outside it.
const BATCH: usize = 64;
/// A fired bucket whose list held at most this many keys keeps its allocation for its next turn;
/// a larger one is freed, so that streams that move from bucket to bucket together do not leave
/// a crowd-sized list in every bucket.
const KEEP_CAPACITY: usize = 1_024;

thread_local! {
    /// The clocks of this thread, one per interval: a stream takes the clock of the thread it is
    /// set up on, so that each runtime worker drives its own and no lock is shared between them.
    static CLOCKS: RefCell<Vec<Weak<Shared>>> = const { RefCell::new(Vec::new()) };
}

/// A heartbeat clock for one interval. Cheap to clone; it lives while a stream holds it.
#[derive(Clone)]
pub(crate) struct Clock {
    shared: Arc<Shared>,
}

struct Shared {
    interval: Duration,
    tick: Duration,
    /// Ticks in one interval, rounded up.
    interval_ticks: u32,
    epoch: Instant,
    /// The last tick the clock has reached. Written under the wheel's lock by the driver only
    /// (a store after every bucket up to it has been taken out), read without it by every frame
    /// a stream sends: a reader that sees an older tick records its frame as sent earlier, and
    /// its heartbeat can only come that much earlier, never later.
    now: AtomicU32,
    wheel: Mutex<Wheel>,
}

/// The waiting streams. Lock order: this lock is taken alone (wakers are woken outside it).
struct Wheel {
    /// The waker of every stream waiting on the clock, by key; a stream keeps its key for life.
    wakers: Slab<Waker>,
    /// `buckets[t % len]`: the keys of the streams to wake at tick `t`. A stream is in at most one
    /// bucket (it queues itself again only after its bucket was fired); a key may outlive its
    /// stream there and wake the stream that took the key next, once, for nothing.
    buckets: Box<[Vec<u32>]>,
    /// Whether a task drives the clock.
    driving: bool,
}

/// A stream's side of the clock: when it last sent a frame, and its place in the wheel.
pub(crate) struct Heartbeat {
    clock: Clock,
    /// The tick of the last frame sent.
    last_sent: u32,
    wait: Option<Wait>,
}

/// A stream's place in the clock: its key, the tick of the bucket it was queued in, and the
/// waker registered under its key (kept to tell, without the lock, when the task changed).
struct Wait {
    key: u32,
    queued_for: u32,
    waker: Waker,
}

impl Clock {
    /// This thread's clock for `interval`, made on first use.
    pub(crate) fn for_interval(interval: Duration) -> Self {
        CLOCKS.with(|clocks| {
            let mut clocks = clocks.borrow_mut();
            let found = clocks
                .iter()
                .filter_map(Weak::upgrade)
                .find(|shared| shared.interval == interval);
            if let Some(shared) = found {
                return Self { shared };
            }
            clocks.retain(|clock| clock.strong_count() > 0);
            let shared = Arc::new(Shared::new(interval));
            clocks.push(Arc::downgrade(&shared));
            Self { shared }
        })
    }

    /// A stream's heartbeat on this clock; its interval starts now.
    pub(crate) fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            clock: self.clone(),
            last_sent: self.shared.now(),
            wait: None,
        }
    }

    /// How many streams wait on this clock.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.shared.lock().wakers.len()
    }
}

impl Heartbeat {
    /// Records a frame sent: the idle interval starts again.
    pub(crate) fn sent(&mut self) {
        self.last_sent = self.clock.shared.now();
    }

    /// Whether the idle interval has passed since the last frame: then the caller sends a
    /// heartbeat (recorded as sent here). Otherwise the task is woken when it may have.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> bool {
        let shared = &self.clock.shared;
        let due = self.last_sent.wrapping_add(shared.interval_ticks + 1);
        let now = shared.now();
        if reached(now, due) {
            self.last_sent = now;
            return true;
        }
        if let Some(wait) = &self.wait {
            // Still queued, at or before `due` (which only moves forward), for this task.
            if !reached(now, wait.queued_for) && wait.waker.will_wake(cx.waker()) {
                return false;
            }
        }
        match shared.queue(&mut self.wait, due, cx.waker()) {
            Queued::Waiting => false,
            Queued::Due(now) => {
                self.last_sent = now;
                true
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(wait) = self.wait.take() {
            self.clock
                .shared
                .lock()
                .wakers
                .try_remove(wait.key as usize);
        }
    }
}

/// What [`Shared::queue`] did.
enum Queued {
    Waiting,
    /// The deadline had passed meanwhile: the tick now.
    Due(u32),
}

impl Shared {
    fn new(interval: Duration) -> Self {
        let tick = (interval / TICKS_PER_INTERVAL).max(MIN_TICK);
        let interval_ticks =
            u32::try_from(interval.as_nanos().div_ceil(tick.as_nanos())).unwrap_or(u32::MAX / 4);
        // A stream is queued at most `interval_ticks + 1` ahead: every such tick has a bucket of
        // its own, and the bucket of the tick now is not among them.
        let buckets = (0..interval_ticks.saturating_add(2).min(1 << 16))
            .map(|_| Vec::new())
            .collect();
        Self {
            interval,
            tick,
            interval_ticks,
            epoch: Instant::now(),
            now: AtomicU32::new(0),
            wheel: Mutex::new(Wheel {
                wakers: Slab::new(),
                buckets,
                driving: false,
            }),
        }
    }

    fn now(&self) -> u32 {
        self.now.load(Ordering::Acquire)
    }

    /// The tick `at` falls in (ticks count from the epoch and wrap around).
    fn tick_of(&self, at: Instant) -> u32 {
        let ticks = at.saturating_duration_since(self.epoch).as_nanos() / self.tick.as_nanos();
        ticks as u32
    }

    /// Queues the stream of `wait` to be woken at tick `due` with `waker`, taking a key for it
    /// on its first wait, and starts the clock's task if none drives it.
    fn queue(self: &Arc<Self>, wait: &mut Option<Wait>, due: u32, waker: &Waker) -> Queued {
        let mut wheel = self.lock();
        if !wheel.driving {
            // No task has kept the tick up to date: it starts from the time now.
            self.now
                .store(self.tick_of(Instant::now()), Ordering::Release);
        }
        let now = self.now();
        if reached(now, due) {
            return Queued::Due(now);
        }
        let bucket = due as usize % wheel.buckets.len();
        match wait {
            None => {
                let key = wheel.wakers.insert(waker.clone()) as u32;
                wheel.buckets[bucket].push(key);
                *wait = Some(Wait {
                    key,
                    queued_for: due,
                    waker: waker.clone(),
                });
            }
            Some(wait) => {
                if let Some(registered) = wheel.wakers.get_mut(wait.key as usize) {
                    registered.clone_from(waker);
                }
                wait.waker.clone_from(waker);
                if reached(now, wait.queued_for) {
                    wheel.buckets[bucket].push(wait.key);
                    wait.queued_for = due;
                }
            }
        }
        let runtime = if wheel.driving {
            None
        } else {
            tokio::runtime::Handle::try_current().ok()
        };
        if let Some(runtime) = runtime {
            wheel.driving = true;
            // Outside the lock: a runtime that is shutting down drops the task at once, and the
            // task's guard takes the lock to say so.
            drop(wheel);
            runtime.spawn(drive(Arc::downgrade(self)));
        }
        Queued::Waiting
    }

    /// Moves the clock to `target`: takes out the buckets of every tick since the last one
    /// reached (all of them when it is a whole turn or more behind) and wakes their streams.
    fn advance(&self, target: u32) {
        let keys = {
            let mut wheel = self.lock();
            let last = self.now();
            let len = wheel.buckets.len() as u32;
            let behind = target.wrapping_sub(last).min(len);
            let mut keys = Vec::new();
            for step in 1..=behind {
                let bucket = last.wrapping_add(step) as usize % len as usize;
                let mut taken = std::mem::take(&mut wheel.buckets[bucket]);
                if keys.is_empty() {
                    keys = taken;
                } else {
                    keys.append(&mut taken);
                }
            }
            self.now.store(target, Ordering::Release);
            keys
        };
        let mut batch: Vec<Waker> = Vec::with_capacity(BATCH.min(keys.len()));
        for chunk in keys.chunks(BATCH) {
            {
                let wheel = self.lock();
                batch.extend(
                    chunk
                        .iter()
                        .filter_map(|key| wheel.wakers.get(*key as usize).cloned()),
                );
            }
            batch.drain(..).for_each(Waker::wake);
        }
        if keys.capacity() <= KEEP_CAPACITY {
            let mut wheel = self.lock();
            let bucket = target as usize % wheel.buckets.len();
            let slot = &mut wheel.buckets[bucket];
            if slot.is_empty() && slot.capacity() < keys.capacity() {
                let mut keys = keys;
                keys.clear();
                *slot = keys;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Wheel> {
        super::lock(&self.wheel)
    }
}

/// The clock's task: one timer, reset each tick, until the last stream holding the clock is
/// gone. Marks the clock undriven when it ends, also when its runtime drops it unpolled or shuts
/// down, so that the next stream to wait starts another.
fn drive(shared: Weak<Shared>) -> impl std::future::Future<Output = ()> + Send {
    let driving = Driving(shared);
    async move {
        let shared = &driving.0;
        let Some((epoch, tick, first)) = shared.upgrade().map(|s| (s.epoch, s.tick, s.now()))
        else {
            return;
        };
        let tick_ns = tick.as_nanos() as u64;
        let at = |n: u64| epoch + Duration::from_nanos(tick_ns.saturating_mul(n));
        let sleep = tokio::time::sleep_until(at(u64::from(first) + 1));
        tokio::pin!(sleep);
        loop {
            sleep.as_mut().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = Instant::now();
            shared.advance(shared.tick_of(now));
            drop(shared);
            let passed = now.saturating_duration_since(epoch).as_nanos() as u64 / tick_ns;
            sleep.as_mut().reset(at(passed + 1));
        }
    }
}

/// Held by the clock's task: marks the clock undriven when the task ends.
struct Driving(Weak<Shared>);

impl Drop for Driving {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.lock().driving = false;
        }
    }
}

/// Whether tick `now` is at or past `tick` (ticks wrap around: compared as a distance).
fn reached(now: u32, tick: u32) -> bool {
    (now.wrapping_sub(tick) as i32) >= 0
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use futures_util::task::noop_waker_ref;

    use super::*;

    #[test]
    fn ticks_compare_across_the_wrap() {
        assert!(reached(5, 5) && reached(6, 5) && !reached(4, 5));
        assert!(reached(2, u32::MAX - 1) && !reached(u32::MAX - 1, 2));
    }

    #[test]
    fn streams_of_one_thread_and_interval_share_one_clock() {
        let a = Clock::for_interval(Duration::from_secs(7));
        let b = Clock::for_interval(Duration::from_secs(7));
        let other = Clock::for_interval(Duration::from_secs(8));
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert!(!Arc::ptr_eq(&a.shared, &other.shared));
        let elsewhere = std::thread::spawn(|| Clock::for_interval(Duration::from_secs(7)).shared)
            .join()
            .map(|shared| Arc::ptr_eq(&a.shared, &shared));
        assert_eq!(elsewhere.ok(), Some(false), "each thread has its own");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_stream_takes_one_place_and_gives_it_back() {
        let clock = Clock::for_interval(Duration::from_secs(9));
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut beats: Vec<_> = (0..3).map(|_| clock.heartbeat()).collect();
        for _ in 0..2 {
            for beat in &mut beats {
                assert!(!beat.poll_due(&mut cx));
            }
        }
        assert_eq!(clock.waiting(), 3);
        beats.pop();
        assert_eq!(clock.waiting(), 2);
        drop(beats);
        assert_eq!(clock.waiting(), 0);
    }

    /// A thousand idle streams, one timer: each is woken once, a tick at most after its interval.
    #[tokio::test(start_paused = true)]
    async fn one_clock_wakes_every_idle_stream_once_per_interval() {
        let interval = Duration::from_secs(10);
        let clock = Clock::for_interval(interval);
        let start = Instant::now();
        let mut beats: Vec<_> = (0..1_000).map(|_| clock.heartbeat()).collect();
        let due = std::future::poll_fn(|cx| {
            let due = beats
                .iter_mut()
                .map(|beat| beat.poll_due(cx))
                .filter(|due| *due)
                .count();
            if due == 0 {
                Poll::Pending
            } else {
                Poll::Ready(due)
            }
        })
        .await;
        assert_eq!(due, 1_000, "all of them at once");
        let waited = start.elapsed();
        assert!(
            waited >= interval && waited <= interval + interval / 20,
            "{waited:?}"
        );
        assert_eq!(clock.waiting(), 1_000);
    }
}
