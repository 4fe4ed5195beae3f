//! What a stream costs the process, counted by a counting allocator: the allocations its set-up
//! makes and the heap it keeps while idle. Counted in one thread, in process (no network), so
//! the figures repeat exactly; a change that adds an allocation to every stream, or a field to
//! what an idle stream keeps, fails here before a benchmark would show it.
//!
//! The counts cover the endpoint (mounted in poem's `Route`, and as an `SseMount`), the hub, the
//! store and the body up to its first frame; not poem's server, hyper or the socket.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed},
};

use futures_util::{FutureExt, StreamExt};
use poem::{Endpoint, EndpointExt, Request, Route};
use poem_sse_ext::Hub;

/// The system allocator, counting while `COUNTING` is on.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to `System` unchanged; the counters are only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations and live heap bytes while `f` runs (the bytes it leaves allocated).
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize, isize) {
    let (allocations, live) = (ALLOCATIONS.load(Relaxed), LIVE_BYTES.load(Relaxed));
    COUNTING.store(true, Relaxed);
    let out = f();
    COUNTING.store(false, Relaxed);
    (
        out,
        ALLOCATIONS.load(Relaxed) - allocations,
        LIVE_BYTES.load(Relaxed) - live,
    )
}

const STREAMS: usize = 1_000;
const CHANNELS: usize = 10;

/// A stream's set-up: at most this many allocations, transient ones included (17 on 2026-12-07,
/// the endpoint mounted in a `Route`; the test prints what it counts).
const MAX_ALLOCATIONS_PER_STREAM: usize = 17;
/// An idle stream's heap: at most this many bytes, as requested from the allocator (which rounds
/// each allocation up to its size class): 384 on 2026-12-07.
const MAX_IDLE_BYTES_PER_STREAM: isize = 384;
/// A stream answered by an `SseMount` in front of the routes, which saves the route's
/// bookkeeping and boxing: 6 allocations on 2026-12-07, the same heap kept.
const MAX_ALLOCATIONS_PER_MOUNTED_STREAM: usize = 6;

#[test]
fn a_streams_set_up_and_its_idle_heap_stay_within_budget() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // One at a time: the allocator's counters are shared.
        let hub = Hub::builder().max_streams(STREAMS * 2).build();
        let routed = Route::new().at("/events/:channel", hub.endpoint());
        within_budget(
            &hub,
            routed,
            "routed",
            MAX_ALLOCATIONS_PER_STREAM,
            MAX_IDLE_BYTES_PER_STREAM,
        )
        .await;

        let hub = Hub::builder().max_streams(STREAMS * 2).build();
        let mounted = Route::new().with(hub.endpoint().mount("/events/"));
        within_budget(
            &hub,
            mounted,
            "mounted",
            MAX_ALLOCATIONS_PER_MOUNTED_STREAM,
            MAX_IDLE_BYTES_PER_STREAM,
        )
        .await;
    });
}

/// Opens `STREAMS` streams of `hub` through `app` and checks what they cost against the budget.
async fn within_budget(
    hub: &Hub,
    app: impl Endpoint,
    what: &str,
    max_allocations: usize,
    max_bytes: isize,
) {
    let request = |i: usize| {
        Request::builder()
            .uri_str(format!("/events/ch{}", i % CHANNELS))
            .finish()
    };
    // Warm: the channels exist, the registry has grown.
    let mut warm = Vec::new();
    for i in 0..CHANNELS * 10 {
        warm.push(open(&app, request(i)).await);
    }
    // The requests themselves, made and dropped, are counted apart and taken off.
    let ((), for_requests, _) = counted(|| (0..STREAMS).for_each(|i| drop(request(i))));
    let mut streams = Vec::with_capacity(STREAMS);
    let ((), allocations, live) = counted(|| {
        for i in 0..STREAMS {
            let stream = open(&app, request(i))
                .now_or_never()
                .expect("set up without waiting");
            streams.push(stream);
        }
    });
    let allocations = allocations - for_requests;
    assert_eq!(hub.metrics().total.open_streams, STREAMS + warm.len());
    let per_stream = allocations as f64 / STREAMS as f64;
    let bytes = live as f64 / STREAMS as f64;
    eprintln!("{what}, per stream: {per_stream:.2} allocations, {bytes:.0} bytes of heap kept");
    assert!(
        allocations <= max_allocations * STREAMS,
        "{what}: a stream's set-up makes {per_stream:.2} allocations (budget \
         {max_allocations}): every stream pays for a new one"
    );
    assert!(
        live <= max_bytes * STREAMS as isize,
        "{what}: an idle stream keeps {bytes:.0} bytes of heap (budget {max_bytes})"
    );
    // Dropped, they give back all they kept (and the vector that held them).
    let ((), _, freed) = counted(|| drop(streams));
    assert!(-freed >= live, "kept {live} bytes, gave back {}", -freed);
    drop(warm);
    assert_eq!(hub.metrics().total.open_streams, 0);
}

/// A stream answered by `app` and polled to its first frame (the retry hint), as a server would.
async fn open(
    app: &impl Endpoint,
    req: Request,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let response = app.get_response(req).await;
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.into_body().into_bytes_stream();
    let first = body.next().now_or_never().flatten();
    assert!(
        matches!(&first, Some(Ok(frame)) if frame.starts_with(b"retry:")),
        "{first:?}"
    );
    body
}
