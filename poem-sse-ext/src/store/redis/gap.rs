//! Gap detection: whether the reader, at some point of a stream, can read on without missing
//! entries, and where it continues when it can not.
//!
//! The reader turns a gap into [`ChannelLog::break_at`](crate::store::ChannelLog::break_at): the
//! log's one gap signal, so the channel's cursors get a reset with the reason, counted as a
//! reset, never an event.

use super::reply::{StreamId, StreamInfo};
use crate::store::ResetReason;

/// Whether a reader at `position` (entry number `added` of its stream) can read on without a
/// gap, given the stream as it is now. `batch` holds the ids read after `position` but not yet
/// applied.
///
/// Trimming removes the oldest entries first, so the entries numbered
/// `1 ..= entries_added - length` are gone: the reader missed events when that number exceeds
/// `added`, unless the missing ones are all in `batch`. A stream that is gone, or whose numbering
/// or ids went back, was recreated: [`ResetReason::Epoch`].
pub(super) fn follow_gap(
    position: StreamId,
    added: u64,
    info: Option<&StreamInfo>,
    batch: Option<&[StreamId]>,
) -> Option<ResetReason> {
    let Some(info) = info else {
        return (position != StreamId::ZERO || added != 0).then_some(ResetReason::Epoch);
    };
    if info.last_generated < position || info.entries_added < added {
        return Some(ResetReason::Epoch);
    }
    if info.max_deleted > position {
        return Some(ResetReason::Evicted);
    }
    let trimmed = info.entries_added - info.length;
    if trimmed <= added {
        // If this is the stream the position came from, the position is still in it exactly
        // when fewer entries were trimmed than it was numbered.
        let still_there = info.first_entry.is_some_and(|first| first <= position);
        let consistent =
            info.length == 0 || position == StreamId::ZERO || still_there == (added > trimmed);
        return (!consistent).then_some(ResetReason::Epoch);
    }
    let lost = usize::try_from(trimmed - added).unwrap_or(usize::MAX);
    let covered = batch.is_some_and(|batch| match batch.get(lost) {
        Some(id) => info.first_entry == Some(*id),
        None => {
            lost == batch.len()
                && batch
                    .last()
                    .is_some_and(|last| info.first_entry.is_none_or(|first| first > *last))
        }
    });
    (!covered).then_some(ResetReason::Evicted)
}

/// Whether the entry at `position`, which the reader read, is missing from the stream although
/// it lies within what the stream retains (at or after its first entry, at or before its last
/// id): `exists` says whether `XRANGE <key> <position> <position>` found it.
///
/// Trimming only removes entries before the first one, so an entry missing inside the range
/// was lost: a failover promoted a replica that had not received it. [`follow_gap`] can not see
/// this once the new master got more entries than were lost (its counts and last id then look
/// like a stream that only grew); the position itself can.
pub(super) fn lost_position(position: StreamId, info: Option<&StreamInfo>, exists: bool) -> bool {
    position != StreamId::ZERO
        && !exists
        && info.is_some_and(|info| {
            info.first_entry.is_some_and(|first| first <= position)
                && position <= info.last_generated
        })
}

/// Where the reader continues after a gap for `reason` (the stream id to read after, and its
/// entry number), given the stream as it is now.
///
/// After `Evicted` the stream continues at its head, as a cursor of the in-memory store would.
/// After `Epoch` (the stream was lost and maybe recreated), it continues before the new stream's
/// first entry when none of them was trimmed, so that every event published since Redis came
/// back still arrives after the reset.
pub(super) fn continue_after(reason: ResetReason, info: Option<&StreamInfo>) -> (StreamId, u64) {
    match info {
        None => (StreamId::ZERO, 0),
        Some(info)
            if reason == ResetReason::Epoch
                && info.entries_added == info.length
                && info.max_deleted == StreamId::ZERO =>
        {
            (StreamId::ZERO, 0)
        }
        Some(info) => (info.last_generated, info.entries_added),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn info(length: u64, last: StreamId, added: u64, first: Option<StreamId>) -> StreamInfo {
        StreamInfo {
            length,
            last_generated: last,
            max_deleted: StreamId::ZERO,
            entries_added: added,
            first_entry: first,
            last_entry_size: None,
        }
    }

    #[test]
    fn a_follower_sees_trimming_and_recreation_but_not_its_own_batch() {
        // Entries 1..=10 added, 1..=4 trimmed: first retained is entry 5 (id 50).
        let stream = info(6, id(100, 0), 10, Some(id(50, 0)));
        // At entry 6 (id 60): fine.
        assert_eq!(follow_gap(id(60, 0), 6, Some(&stream), None), None);
        // At entry 4 (id 40), the last trimmed one: nothing after it is gone.
        assert_eq!(follow_gap(id(40, 0), 4, Some(&stream), None), None);
        // At entry 2: entries 3 and 4 are gone.
        assert_eq!(
            follow_gap(id(20, 0), 2, Some(&stream), None),
            Some(ResetReason::Evicted)
        );
        // ... unless they are in the batch just read.
        let batch = [id(30, 0), id(40, 0), id(50, 0)];
        assert_eq!(follow_gap(id(20, 0), 2, Some(&stream), Some(&batch)), None);
        assert_eq!(
            follow_gap(id(20, 0), 2, Some(&stream), Some(&batch[1..])),
            Some(ResetReason::Evicted)
        );
        // Stream gone, or recreated with fewer entries, or with higher ids only.
        assert_eq!(
            follow_gap(id(60, 0), 6, None, None),
            Some(ResetReason::Epoch)
        );
        assert_eq!(follow_gap(StreamId::ZERO, 0, None, None), None);
        let recreated = info(2, id(200, 0), 2, Some(id(150, 0)));
        assert_eq!(
            follow_gap(id(60, 0), 6, Some(&recreated), None),
            Some(ResetReason::Epoch)
        );
        let recreated_longer = info(8, id(200, 0), 8, Some(id(150, 0)));
        assert_eq!(
            follow_gap(id(60, 0), 6, Some(&recreated_longer), None),
            Some(ResetReason::Epoch)
        );
        let rewound = info(8, id(50, 0), 8, Some(id(1, 0)));
        assert_eq!(
            follow_gap(id(60, 0), 6, Some(&rewound), None),
            Some(ResetReason::Epoch)
        );
    }

    #[test]
    fn a_lost_position_shows_even_when_the_new_master_has_more_entries() {
        // The reader read entries 1..=10 (ids 10..=100); the new master kept 1..=7 and got 5 new
        // ones (ids 110..=150): 12 added, nothing trimmed, the last id after the position.
        let promoted = info(12, id(150, 0), 12, Some(id(10, 0)));
        assert_eq!(follow_gap(id(100, 0), 10, Some(&promoted), None), None);
        assert!(lost_position(id(100, 0), Some(&promoted), false));
        assert!(!lost_position(id(100, 0), Some(&promoted), true));
        // Trimmed past the position, or nothing read yet: not a loss of this kind.
        let trimmed = info(2, id(150, 0), 12, Some(id(140, 0)));
        assert!(!lost_position(id(100, 0), Some(&trimmed), false));
        assert!(!lost_position(StreamId::ZERO, Some(&promoted), false));
        assert!(!lost_position(id(100, 0), None, false));
    }

    #[test]
    fn after_a_gap_the_reader_continues_where_nothing_more_is_lost() {
        let trimmed = info(6, id(100, 0), 10, Some(id(50, 0)));
        assert_eq!(
            continue_after(ResetReason::Evicted, Some(&trimmed)),
            (id(100, 0), 10)
        );
        assert_eq!(
            continue_after(ResetReason::Epoch, Some(&trimmed)),
            (id(100, 0), 10)
        );
        // A new stream that lost nothing yet: all of it.
        let fresh = info(3, id(300, 0), 3, Some(id(100, 0)));
        assert_eq!(
            continue_after(ResetReason::Epoch, Some(&fresh)),
            (StreamId::ZERO, 0)
        );
        assert_eq!(
            continue_after(ResetReason::Epoch, None),
            (StreamId::ZERO, 0)
        );
    }
}
