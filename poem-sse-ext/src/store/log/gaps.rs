//! Gaps: where a log's history has a hole behind it. An eviction raises the log's floor; a break
//! (the backend lost history) clears the log and restarts it at a key. A cursor or resume point
//! below the floor, or a cursor that has not seen the newest break, gets one reset.

use super::{ChannelLog, EventId, LogState, Reset, ResetReason};

/// Where the log restarted after a break, and why.
pub(super) struct Break {
    pub(super) key: u128,
    pub(super) id: EventId,
    pub(super) reason: ResetReason,
}

/// The key below which a cursor or resume point has missed events, and why.
#[derive(Clone, Copy)]
pub(super) struct Floor {
    pub(super) key: u128,
    pub(super) reason: ResetReason,
}

impl LogState {
    /// Why a cursor at `position` has missed events, if it has.
    pub(super) fn gap_below(&self, position: u128) -> Option<ResetReason> {
        self.floor
            .filter(|floor| floor.key > position)
            .map(|floor| floor.reason)
    }

    /// The reset of a cursor that has not seen the newest break, and the key it continues
    /// after: the break's own, so that what was appended since still arrives, however late the
    /// cursor reads; the head if entries after the break were evicted since (lost as well).
    pub(super) fn break_reset(&self) -> (Reset, u128) {
        match &self.last_break {
            Some(last) if self.floor.is_some_and(|floor| floor.key == last.key) => {
                let reset = Reset {
                    reason: last.reason,
                    resume_from: last.id.clone(),
                };
                (reset, last.key)
            }
            last => {
                let reset = Reset {
                    reason: last
                        .as_ref()
                        .map_or(ResetReason::Evicted, |last| last.reason),
                    resume_from: self.head_id.clone(),
                };
                (reset, self.head_key)
            }
        }
    }
}

impl ChannelLog {
    /// Records that the backend lost history this log can not replace (a shared stream was
    /// trimmed past the point this process had read, or was deleted and recreated): the one gap
    /// signal, as for an eviction, never a frame in the log.
    ///
    /// Every cursor made before the break yields one [`CursorItem::Reset`](super::CursorItem::Reset) with `reason` and
    /// `resume_from: id`, whatever its position, then continues after `key`. A resume point below
    /// `key` gets `reason` from [`check_resume`](Self::check_resume) and
    /// [`cursor_after`](Self::cursor_after). The retained entries are dropped (none of them can be
    /// replayed without the gap behind it), and the head becomes `(key, id)`, which may be below
    /// the old head: keys start again from the break.
    pub fn break_at(&self, reason: ResetReason, key: u128, id: EventId) {
        {
            let mut state = self.write();
            if let Some(budget) = &self.budget {
                budget.removed(state.entries.len(), state.bytes);
            }
            state.entries.clear();
            state.bytes = 0;
            state.head_key = key;
            state.head_id = id.clone();
            state.floor = Some(Floor { key, reason });
            state.breaks = state.breaks.wrapping_add(1);
            state.last_break = Some(Break { key, id, reason });
        }
        // Cursors waiting for an append must wake to see the break.
        self.announce();
    }

    /// `None` if `key` is a position this log knows (an entry's key, its head, its floor, or
    /// the beginning of a log with no floor); otherwise the newest known position below it.
    ///
    /// For a backend whose keys are sparse (Redis stream ids), a resume point within the log's
    /// range that is none of these was never an entry of the history the log holds: the client
    /// holds an event the backend no longer has (a failover lost it), and must be told.
    #[cfg(feature = "redis")]
    pub(crate) fn known_position_below(&self, key: u128) -> Option<u128> {
        let state = self.read();
        let floor = state.floor.map(|floor| floor.key);
        if key == state.head_key || Some(key) == floor || (key == 0 && floor.is_none()) {
            return None;
        }
        match state.entries.binary_search_by_key(&key, |entry| entry.key) {
            Ok(_) => None,
            Err(0) => Some(floor.unwrap_or(0)),
            Err(at) => Some(state.entries[at - 1].key),
        }
    }

    /// Whether a cursor at `key` can read on without a gap: `None` if so, otherwise the reason.
    /// A key above the head was never issued; a key below the newest eviction missed events.
    pub fn check_resume(&self, key: u128) -> Option<ResetReason> {
        Self::check(&self.read(), key)
    }

    pub(super) fn check(state: &LogState, key: u128) -> Option<ResetReason> {
        if key > state.head_key {
            Some(ResetReason::Unknown)
        } else {
            state.gap_below(key)
        }
    }
}
