//! A rate (events per second) over a sliding window of cumulative counts.
//!
//! The demo's sources publish in bursts, once a second each: eleven `sys.*` samples together,
//! on a timer of their own. A rate taken between two consecutive readings one second apart
//! counts a whole burst, none, or two, depending on which timer fired first: a steady 11 events/s
//! read as a sawtooth between 0 and 22. Over a window of several seconds a burst that falls on
//! either side of the window's edge changes the rate by one burst over the window, not by 100 %.
//!
//! ```ignore
//! use std::time::{Duration, Instant};
//! use crate::sources::rate::SlidingRate;
//!
//! let start = Instant::now();
//! let mut rate = SlidingRate::new(Duration::from_secs(10));
//! for s in 0..=20u32 {
//!     // 22 events every other second: 11 per second on average.
//!     let total = u64::from(s / 2) * 22;
//!     rate.record(start + Duration::from_secs(s.into()), total);
//! }
//! assert_eq!(rate.per_second(), 11.0);
//! ```

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Events per second over the last `window`, from readings of a cumulative count.
#[derive(Debug, Clone)]
pub struct SlidingRate {
    window: Duration,
    /// Readings, oldest first. The oldest is the newest reading at least `window` old (once there
    /// is one), so the rate always spans a whole window after the first `window` of readings.
    readings: VecDeque<(Instant, u64)>,
}

impl SlidingRate {
    /// A rate over the last `window` (a zero window is taken as one second).
    #[must_use]
    pub fn new(window: Duration) -> Self {
        Self {
            window: if window.is_zero() {
                Duration::from_secs(1)
            } else {
                window
            },
            readings: VecDeque::new(),
        }
    }

    /// Records that the count was `total` at `at`; readings must come in time order (an older
    /// one is ignored). A count that went down (a restarted counter) starts the window over.
    pub fn record(&mut self, at: Instant, total: u64) {
        if let Some(&(last_at, last_total)) = self.readings.back() {
            if at < last_at {
                return;
            }
            if total < last_total {
                self.readings.clear();
            }
        }
        self.readings.push_back((at, total));
        let edge = at.checked_sub(self.window);
        // Drop the oldest while the next one is still at least a window old.
        while self.readings.len() > 1 && edge.is_some_and(|edge| self.readings[1].0 <= edge) {
            self.readings.pop_front();
        }
    }

    /// Events per second between the oldest and the newest reading; 0 before two readings.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        match (self.readings.front(), self.readings.back()) {
            (Some(&(from, first)), Some(&(to, last))) if to > from => {
                last.saturating_sub(first) as f64 / (to - from).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings one second apart of 11 events published once a second, in a burst that falls
    /// just before or just after the reading: the reading sees 0 or 22 new events in turn.
    fn bursty(seconds: u32) -> Vec<(Duration, u64)> {
        (0..=seconds)
            .map(|s| (Duration::from_secs(s.into()), u64::from(s / 2) * 22))
            .collect()
    }

    #[test]
    fn a_steady_rate_published_in_bursts_reads_steady_not_as_a_sawtooth() {
        let start = Instant::now();
        let mut rate = SlidingRate::new(Duration::from_secs(10));
        let mut shown = Vec::new();
        for (offset, total) in bursty(40) {
            rate.record(start + offset, total);
            shown.push(rate.per_second());
        }
        // Once the window is full, every reading is 11 ± one burst over the window.
        for (s, value) in shown.iter().enumerate().skip(10) {
            assert!(
                (9.9..=12.1).contains(value),
                "second {s}: {value} ({shown:?})"
            );
        }
        assert_eq!(shown[40], 11.0);
    }

    #[test]
    fn a_one_second_window_is_the_old_sawtooth() {
        // What the hub page showed before: the rate between consecutive readings.
        let start = Instant::now();
        let mut rate = SlidingRate::new(Duration::from_secs(1));
        let shown: Vec<f64> = bursty(6)
            .into_iter()
            .map(|(offset, total)| {
                rate.record(start + offset, total);
                rate.per_second()
            })
            .collect();
        assert_eq!(shown, [0.0, 0.0, 22.0, 0.0, 22.0, 0.0, 22.0]);
    }

    #[test]
    fn the_rate_follows_a_change_within_one_window_and_a_reset_counter_starts_over() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut rate = SlidingRate::new(Duration::from_secs(5));
        for s in 0..=5 {
            rate.record(at(s), s * 10);
        }
        assert_eq!(rate.per_second(), 10.0);
        // Silence: a window later the rate is 0.
        for s in 6..=10 {
            rate.record(at(s), 50);
        }
        assert_eq!(rate.per_second(), 0.0);
        // A counter that went down (a restart) is not a huge negative or positive rate.
        rate.record(at(11), 3);
        assert_eq!(rate.per_second(), 0.0);
        rate.record(at(12), 8);
        assert_eq!(rate.per_second(), 5.0);
        // Out of order readings are ignored.
        rate.record(at(1), 1_000);
        assert_eq!(rate.per_second(), 5.0);
    }
}
