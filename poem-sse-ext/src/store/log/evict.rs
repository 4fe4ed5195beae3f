//! Eviction: the oldest entries leave a log when it is over its own bounds (count, bytes, age)
//! or when the store-wide history budget takes them; each raises the log's floor, so that a
//! cursor below it gets one `evicted` reset.

use tokio::time::Instant;

use super::{ChannelLog, Floor, LogState, ResetReason};

impl ChannelLog {
    pub(super) fn evict(&self, state: &mut LogState, now: Instant) {
        let max_age = self.retention.max_age;
        while let Some(oldest) = state.entries.front() {
            let over = state.entries.len() > self.retention.max_events
                || state.bytes > self.retention.max_bytes
                || now.saturating_duration_since(oldest.at) > max_age;
            if !over {
                break;
            }
            self.drop_oldest(state);
        }
    }

    /// Evicts the oldest entry, raising the floor to it.
    fn drop_oldest(&self, state: &mut LogState) {
        if let Some(oldest) = state.entries.pop_front() {
            state.bytes -= oldest.frame.len();
            if let Some(budget) = &self.budget {
                budget.removed(1, oldest.frame.len());
            }
            state.floor = Some(Floor {
                key: oldest.key,
                reason: ResetReason::Evicted,
            });
        }
    }

    /// Evicts every entry up to `key` (the store-wide budget's oldest record).
    pub(crate) fn evict_through(&self, key: u128) {
        let mut state = self.write();
        while state
            .entries
            .front()
            .is_some_and(|oldest| oldest.key <= key)
        {
            self.drop_oldest(&mut state);
        }
    }

    /// Whether the entry at `key` is still retained.
    pub(crate) fn holds(&self, key: u128) -> bool {
        let state = self.read();
        state
            .entries
            .binary_search_by_key(&key, |entry| entry.key)
            .is_ok()
    }

    /// Brings the store-wide budget back within its bound after an append.
    pub(super) fn enforce_budget(&self) {
        if let Some(budget) = &self.budget {
            budget.enforce();
        }
    }
}
