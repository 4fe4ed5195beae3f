//! The log and its cursors under appends, bounds, breaks and backends.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{FutureExt, StreamExt};

use super::*;

fn log(retention: Retention) -> Arc<ChannelLog> {
    ChannelLog::new(retention, 0, EventId::new("e-0"))
}

fn append(log: &ChannelLog, text: &str) -> EventId {
    let frame = Bytes::from(format!("data: {text}\n\n"));
    log.append_next(|key| (EventId::new(format!("e-{key}")), frame))
        .unwrap_or_else(|err| panic!("append failed: {err}"))
}

fn next_now(cursor: &mut LogCursor) -> Option<CursorItem> {
    cursor.next().now_or_never().flatten()
}

#[test]
fn cursor_reads_after_its_position_in_order_in_one_chunk() {
    let log = log(Retention::default());
    for n in 1..=3 {
        append(&log, &n.to_string());
    }
    let mut cursor = log.cursor(1, 3);
    assert_eq!(
        next_now(&mut cursor),
        Some(CursorItem::Frames {
            chunk: Bytes::from_static(b"data: 2\n\ndata: 3\n\n"),
            count: 2,
            replayed: 2,
            lag: None,
        })
    );
    assert_eq!(next_now(&mut cursor), None, "nothing more is ready");
}

#[test]
fn chunk_cap_splits_but_never_starves_a_large_frame() {
    let log = log(Retention::default());
    append(&log, "aaaa");
    append(&log, "bbbb");
    let mut cursor = log.cursor(0, 0);
    let Poll::Ready(Some(CursorItem::Frames { count, .. })) = cursor.poll_next_chunk(
        &mut Context::from_waker(futures_util::task::noop_waker_ref()),
        5,
    ) else {
        panic!("a frame larger than the cap is still delivered");
    };
    assert_eq!(count, 1);
}

#[tokio::test]
async fn append_wakes_a_waiting_cursor() {
    let log = log(Retention::default());
    let mut cursor = log.cursor(0, 0);
    let waiter = tokio::spawn(async move { cursor.next().await });
    tokio::task::yield_now().await;
    append(&log, "x");
    let item = tokio::time::timeout(Duration::from_secs(1), waiter).await;
    assert!(matches!(
        item,
        Ok(Ok(Some(CursorItem::Frames { count: 1, .. })))
    ));
}

#[tokio::test]
async fn appends_coalesce_in_the_fan_out_task_which_ends_with_the_log() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let log = log(Retention::default());
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 1,
        "one fan-out task per log"
    );
    let mut cursor = log.cursor(0, 0);
    for n in 0..100 {
        append(&log, &n.to_string());
    }
    let Some(CursorItem::Frames { count, .. }) = cursor.next().await else {
        panic!("the cursor was woken");
    };
    assert_eq!(
        count, 100,
        "one wake-up delivers everything appended meanwhile"
    );
    drop((cursor, log));
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the fan-out task outlived its log");
}

#[test]
fn a_waiting_cursor_holds_one_registration_which_it_gives_back_when_dropped() {
    let log = log(Retention::default());
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waker = futures_util::task::waker(Arc::new(CountWakes(Arc::clone(&woken))));
    let mut cx = Context::from_waker(&waker);
    let mut cursors: Vec<_> = (0..3).map(|_| log.cursor(0, 0)).collect();
    for _ in 0..2 {
        for cursor in &mut cursors {
            assert!(cursor.poll_next_chunk(&mut cx, 1 << 10).is_pending());
        }
    }
    assert_eq!(
        log.waiters.len(),
        3,
        "one registration per cursor, however often it waits"
    );
    append(&log, "x");
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 3);
    // Still registered after the wake-up: the next append wakes them again, no poll needed.
    append(&log, "y");
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 6);
    cursors.pop();
    assert_eq!(log.waiters.len(), 2, "a dropped cursor leaves");
    drop(cursors);
    assert_eq!(log.waiters.len(), 0);
}

struct CountWakes(Arc<std::sync::atomic::AtomicUsize>);

impl futures_util::task::ArcWake for CountWakes {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An append races a new cursor's first read on two threads, again and again: a wake-up lost
/// between the read and the wait would leave that cursor waiting for an event it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wake_up_is_lost_between_a_read_and_a_wait() {
    let log = log(Retention::default());
    for n in 0..500 {
        let mut cursor = log.cursor(log.head().0, 0);
        let reader = tokio::spawn(async move { cursor.next().await });
        let writer = {
            let log = Arc::clone(&log);
            tokio::spawn(async move { append(&log, &n.to_string()) })
        };
        let _ = writer.await;
        let read = tokio::time::timeout(Duration::from_secs(2), reader).await;
        assert!(
            matches!(read, Ok(Ok(Some(CursorItem::Frames { .. })))),
            "round {n}: the cursor missed the append"
        );
    }
}

#[test]
fn count_and_byte_bounds_evict_and_a_behind_cursor_gets_a_reset() {
    let log = log(Retention::default().max_events(2).max_bytes(1 << 20));
    let mut behind = log.cursor(0, 0);
    for n in 1..=3 {
        append(&log, &n.to_string());
    }
    assert_eq!(log.len_and_bytes().0, 2);
    assert_eq!(log.check_resume(0), Some(ResetReason::Evicted));
    assert_eq!(log.check_resume(1), None);
    assert_eq!(log.check_resume(4), Some(ResetReason::Unknown));
    assert_eq!(
        next_now(&mut behind),
        Some(CursorItem::Reset(Reset {
            reason: ResetReason::Evicted,
            resume_from: EventId::new("e-3"),
        }))
    );
    assert_eq!(next_now(&mut behind), None, "continues live from the head");

    let small = self::log(Retention::default().max_bytes(20));
    append(&small, "12345678");
    append(&small, "12345678");
    assert_eq!(small.len_and_bytes(), (1, 16));
}

#[test]
fn oversized_frame_is_refused_and_nothing_is_lost() {
    let log = log(Retention::default().max_bytes(16));
    append(&log, "ok");
    let refused = log.append_next(|key| {
        (
            EventId::new(format!("e-{key}")),
            Bytes::from(vec![b'x'; 17]),
        )
    });
    assert!(matches!(
        refused,
        Err(StoreError::TooLarge {
            size: 17,
            limit: 16
        })
    ));
    assert_eq!(log.len_and_bytes().0, 1);
    assert_eq!(log.head().1, EventId::new("e-1"));
}

#[tokio::test(start_paused = true)]
async fn age_bound_is_enforced_without_appends() {
    let log = log(Retention::default().max_age(Duration::from_secs(10)));
    append(&log, "old");
    tokio::time::advance(Duration::from_secs(11)).await;
    log.evict_expired();
    assert_eq!(log.len_and_bytes(), (0, 0));
    assert_eq!(log.check_resume(0), Some(ResetReason::Evicted));
}

fn frame(text: &str) -> Bytes {
    Bytes::from(format!("data: {text}\n\n"))
}

/// A cursor that reads a break only after the backend's new entries were appended (its task ran
/// late) still gets every one of them after its reset: the break says where it continues.
#[test]
fn a_cursor_that_reads_a_break_late_still_gets_what_followed_it() {
    let log = log(Retention::default());
    for n in 1..=3 {
        append(&log, &n.to_string());
    }
    let mut late = log.cursor(3, 3);
    log.break_at(ResetReason::Epoch, 0, EventId::new("e-0"));
    for key in 1..=2 {
        let id = EventId::new(format!("n-{key}"));
        assert_eq!(
            log.append_entry(key, id, frame(&format!("new-{key}"))),
            Ok(true)
        );
    }
    assert_eq!(
        next_now(&mut late),
        Some(CursorItem::Reset(Reset {
            reason: ResetReason::Epoch,
            resume_from: EventId::new("e-0"),
        }))
    );
    assert_eq!(late.last_id(), Some(EventId::new("e-0")));
    match next_now(&mut late) {
        Some(CursorItem::Frames { chunk, count, .. }) => {
            assert_eq!(count, 2);
            assert_eq!(&chunk[..], b"data: new-1\n\ndata: new-2\n\n");
        }
        other => panic!("expected the two new frames, got {other:?}"),
    }

    // Unless what followed the break was evicted too: then on at the head, one reset.
    let small = ChannelLog::new(Retention::default().max_events(2), 0, EventId::new("e-0"));
    append(&small, "1");
    let mut later = small.cursor(1, 1);
    small.break_at(ResetReason::Evicted, 5, EventId::new("e-5"));
    for key in 6..=9 {
        let id = EventId::new(format!("e-{key}"));
        assert_eq!(small.append_entry(key, id, frame("x")), Ok(true));
    }
    assert_eq!(
        next_now(&mut later),
        Some(CursorItem::Reset(Reset {
            reason: ResetReason::Evicted,
            resume_from: EventId::new("e-9"),
        }))
    );
    assert_eq!(next_now(&mut later), None);
}

#[test]
fn a_break_resets_every_cursor_once_with_its_reason_then_continues_after_it() {
    let log = log(Retention::default());
    for n in 1..=3 {
        append(&log, &n.to_string());
    }
    let mut caught_up = log.cursor(3, 3);
    let mut behind = log.cursor(1, 3);
    // A resume point the backend issued but this log has not received yet.
    let mut ahead = log.cursor(3, 3);
    ahead.skip_to(9, EventId::new("e-9"));
    assert_eq!(ahead.last_id(), Some(EventId::new("e-9")));
    // The backend's history was lost; it continues at key 7 (below `ahead`'s position).
    log.break_at(ResetReason::Epoch, 7, EventId::new("e-7"));
    let reset = Some(CursorItem::Reset(Reset {
        reason: ResetReason::Epoch,
        resume_from: EventId::new("e-7"),
    }));
    for cursor in [&mut caught_up, &mut behind, &mut ahead] {
        assert_eq!(next_now(cursor), reset);
        assert_eq!(
            next_now(cursor),
            None,
            "one reset, nothing from before the break"
        );
    }
    assert_eq!(
        log.append_entry(
            8,
            EventId::new("e-8"),
            Bytes::from("id: e-8\ndata: new\n\n")
        ),
        Ok(true)
    );
    for cursor in [&mut caught_up, &mut behind, &mut ahead] {
        assert!(
            matches!(next_now(cursor), Some(CursorItem::Frames { count: 1, .. })),
            "continues after the break"
        );
    }
    // Resume points: before the break, its reason; at it or after, exact.
    assert_eq!(log.check_resume(3), Some(ResetReason::Epoch));
    assert_eq!(log.check_resume(7), None);
    let (mut resumed, reset) = log.cursor_after(Some(7));
    assert_eq!(reset, None);
    assert!(matches!(
        next_now(&mut resumed),
        Some(CursorItem::Frames { count: 1, .. })
    ));
    let (_, reset) = log.cursor_after(Some(2));
    assert_eq!(reset.map(|reset| reset.reason), Some(ResetReason::Epoch));
    // A cursor made after the break is not reset by it.
    let mut fresh = log.cursor(8, 8);
    assert_eq!(next_now(&mut fresh), None);
    let recent = log.recent(10);
    let kept: Vec<(&str, &str)> = recent
        .events
        .iter()
        .map(|event| (event.id.as_str(), event.data.as_str()))
        .collect();
    assert_eq!(kept, [("e-8", "new")], "only what came after the break");
}

#[tokio::test(start_paused = true)]
async fn history_keeps_its_age_from_the_backend() {
    let log = log(Retention::default().max_age(Duration::from_secs(10)));
    let old = log.append_entry_aged(1, EventId::new("e-1"), frame("a"), Duration::from_secs(8));
    assert_eq!(old, Ok(true));
    assert_eq!(
        log.append_entry_aged(2, EventId::new("e-2"), frame("b"), Duration::ZERO),
        Ok(true)
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    log.evict_expired();
    assert_eq!(log.len_and_bytes().0, 1, "8 s + 3 s is past the bound");
    assert_eq!(log.check_resume(0), Some(ResetReason::Evicted));
    assert_eq!(log.check_resume(1), None);

    let fresh = self::log(Retention::default().max_age(Duration::from_secs(10)));
    let expired =
        fresh.append_entry_aged(1, EventId::new("e-1"), frame("c"), Duration::from_secs(11));
    assert_eq!(expired, Ok(true));
    assert_eq!(fresh.len_and_bytes().0, 0, "evicted at once");
    assert_eq!(fresh.check_resume(0), Some(ResetReason::Evicted));
    assert_eq!(fresh.head().1, EventId::new("e-1"));
}

#[test]
fn duplicate_keys_from_a_shared_backend_are_ignored() {
    let log = log(Retention::default());
    assert_eq!(
        log.append_entry(5, EventId::new("5"), Bytes::from_static(b"data: a\n\n")),
        Ok(true)
    );
    assert_eq!(
        log.append_entry(5, EventId::new("5"), Bytes::from_static(b"data: a\n\n")),
        Ok(false)
    );
    assert_eq!(
        log.append_entry(4, EventId::new("4"), Bytes::from_static(b"data: b\n\n")),
        Ok(false)
    );
    assert_eq!(log.len_and_bytes().0, 1);
}
