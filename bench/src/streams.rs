//! A set of SSE subscribers held open against the server under test.
//!
//! Stream `i` subscribes to `channels[i % channels.len()]`. Every received event is checked
//! against the sequence number the publisher put in its data (`{"c":…,"seq":…,"ts":…}`):
//! duplicates, reorders, foreign channels and malformed payloads are counted, and at the end
//! [`StreamSet::stop`] returns each stream's record so that gaps can be judged against what
//! was really published. Nothing a server sends can make this code panic: every surprise is
//! counted or reported as an error string.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tokio::net::TcpSocket;
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::now_us;
use crate::net::{Conn, HttpVersion, Target};
use crate::sse::{EventRef, Parser};

/// Largest sequence span one stream tracks (bounds the memory a lying server can cost).
const MAX_SEQ_SPAN: u64 = 1 << 24;

/// What to open.
#[derive(Clone)]
pub struct StreamPlan {
    pub count: usize,
    pub channels: Vec<String>,
    pub version: HttpVersion,
    /// HTTP/2 streams per connection (ignored for HTTP/1.1).
    pub per_conn: usize,
    /// Connection handshakes in flight at once.
    pub dial_concurrency: usize,
    /// `Last-Event-ID` per channel index, for resuming.
    pub last_event_id: Vec<Option<String>>,
    /// First sequence number each stream expects, per channel index.
    pub first_seq: Vec<u64>,
    /// A stream counts as caught up once it saw this sequence, per channel index.
    pub catch_up_seq: Vec<Option<u64>>,
    /// HTTP/1.1 sockets made ahead ([`Sockets::make`]), stream `i` taking the `i`-th; a stream
    /// without one makes its own.
    pub sockets: Option<Sockets>,
}

/// Sockets made and bound ahead of their streams (see [`crate::net::socket`]).
#[derive(Clone)]
pub struct Sockets(Arc<[Mutex<Option<TcpSocket>>]>);

impl Sockets {
    /// One socket per stream of `count`, each from the source address its stream would use.
    pub fn make(target: &Target, count: usize) -> Result<Self> {
        let sockets = (0..count)
            .map(|i| {
                Ok(Mutex::new(Some(crate::net::socket(
                    target,
                    target.source(i),
                )?)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(sockets.into()))
    }

    /// The `index`-th socket, once.
    fn take(&self, index: usize) -> Option<TcpSocket> {
        self.0
            .get(index)?
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl StreamPlan {
    pub fn new(count: usize, channels: Vec<String>, version: HttpVersion) -> Self {
        let n = channels.len();
        Self {
            count,
            channels,
            version,
            per_conn: 100,
            dial_concurrency: 256,
            last_event_id: vec![None; n],
            first_seq: vec![0; n],
            catch_up_seq: vec![None; n],
            sockets: None,
        }
    }
}

/// Counters shared by all streams of a set, readable while it runs.
#[derive(Default)]
pub struct Live {
    pub connected: AtomicUsize,
    pub failed: AtomicUsize,
    /// Streams the server ended (EOF) while we still wanted them.
    pub ended: AtomicUsize,
    pub events: AtomicU64,
    pub caught_up: AtomicUsize,
    /// Latency publish→receive in microseconds, of events with a sequence number.
    latency: Mutex<Option<Histogram<u64>>>,
    errors: Mutex<Vec<String>>,
}

impl Live {
    pub fn settled(&self) -> usize {
        self.connected.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < 8 {
            errors.push(e);
        }
    }

    /// The first few errors streams hit.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record_latencies(&self, values: &mut Vec<u64>) {
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = h.get_or_insert_with(new_histogram);
        for v in values.drain(..) {
            h.saturating_record(v.max(1));
        }
    }

    /// Takes the latency histogram recorded so far, leaving an empty one.
    pub fn take_latency(&self) -> Histogram<u64> {
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        h.take().unwrap_or_else(new_histogram)
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant figures; these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

/// The record of one stream after it stopped.
#[derive(Debug, Default, Clone)]
pub struct StreamReport {
    pub channel: usize,
    pub connected: bool,
    pub error: Option<String>,
    pub ended_by_server: bool,
    pub received: u64,
    pub duplicates: u64,
    /// Events that arrived after a later sequence number.
    pub reorders: u64,
    /// Events with a sequence before the first expected one.
    pub stale: u64,
    pub foreign: u64,
    pub malformed: u64,
    /// Events of another type than `message` (for example a reset signal).
    pub other_types: u64,
    pub comments: u64,
    pub last_event_id: Option<String>,
    pub max_seq: Option<u64>,
    seen: SeqSet,
}

impl StreamReport {
    /// Sequence numbers in `expected` that this stream never received.
    pub fn missing(&self, expected: impl Iterator<Item = u64>) -> u64 {
        expected.filter(|s| !self.seen.contains(*s)).count() as u64
    }
}

/// A bitset of received sequence numbers starting at `base`.
#[derive(Debug, Default, Clone)]
struct SeqSet {
    base: u64,
    bits: Vec<u64>,
}

impl SeqSet {
    /// Inserts `seq`; returns false if it was there already.
    fn insert(&mut self, seq: u64) -> bool {
        let i = (seq - self.base) as usize;
        let (w, b) = (i / 64, i % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        let had = self.bits[w] & (1 << b) != 0;
        self.bits[w] |= 1 << b;
        !had
    }

    fn contains(&self, seq: u64) -> bool {
        if seq < self.base {
            return false;
        }
        let i = (seq - self.base) as usize;
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// The payload the publisher puts in each event's data.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Payload {
    pub c: usize,
    pub seq: u64,
    pub ts: u64,
}

impl Payload {
    /// Reads an event's data. The exact text the publisher writes (`{"c":1,"seq":2,"ts":3}`) is
    /// read by hand: the storm alone reads a million of them, on the core that bounds its figure.
    /// Any other text goes to serde_json, so a server that re-encodes the JSON is still read.
    pub fn parse(data: &str) -> Option<Payload> {
        Self::exact(data).or_else(|| serde_json::from_str(data).ok())
    }

    fn exact(data: &str) -> Option<Payload> {
        let (c, rest) = number(data.strip_prefix(r#"{"c":"#)?)?;
        let (seq, rest) = number(rest.strip_prefix(r#","seq":"#)?)?;
        let (ts, rest) = number(rest.strip_prefix(r#","ts":"#)?)?;
        (rest == "}").then_some(Payload {
            c: usize::try_from(c).ok()?,
            seq,
            ts,
        })
    }
}

/// A JSON unsigned integer at the start of `text` (no leading zero, as JSON has none) and what
/// follows it.
fn number(text: &str) -> Option<(u64, &str)> {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    if end == 0 || (end > 1 && text.starts_with('0')) {
        return None;
    }
    Some((text[..end].parse().ok()?, &text[end..]))
}

/// A running set of streams.
pub struct StreamSet {
    pub live: Arc<Live>,
    pub started: Instant,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<StreamReport>>,
}

impl StreamSet {
    /// Starts all streams of `plan`; they connect concurrently (bounded by the plan).
    pub fn start(target: &Arc<Target>, plan: &Arc<StreamPlan>) -> Self {
        let live = Arc::new(Live::default());
        let cancel = CancellationToken::new();
        let dial = Arc::new(Semaphore::new(plan.dial_concurrency.max(1)));
        let per_conn = match plan.version {
            HttpVersion::H1 => 1,
            HttpVersion::H2 => plan.per_conn.max(1),
        };
        let groups: Vec<Arc<OnceCell<Result<Conn, String>>>> = (0..plan.count.div_ceil(per_conn))
            .map(|_| Arc::new(OnceCell::new()))
            .collect();
        let tasks = (0..plan.count)
            .map(|i| {
                let ctx = StreamCtx {
                    index: i,
                    conn_index: i / per_conn,
                    target: target.clone(),
                    plan: plan.clone(),
                    live: live.clone(),
                    dial: dial.clone(),
                    group: groups[i / per_conn].clone(),
                };
                let cancel = cancel.clone();
                tokio::spawn(run_stream(ctx, cancel))
            })
            .collect();
        Self {
            live,
            started: Instant::now(),
            cancel,
            tasks,
        }
    }

    /// Waits until every stream is connected or failed, for at most 30 s plus 1 s per 200
    /// streams. Returns whether all settled in time.
    pub async fn wait_settled(&self) -> bool {
        let limit = Duration::from_secs(30 + self.tasks.len() as u64 / 200);
        self.wait_until(limit, |l| l.settled() >= self.tasks.len())
            .await
    }

    /// Polls `cond` every 5 ms until it holds or `limit` passes.
    pub async fn wait_until(&self, limit: Duration, cond: impl Fn(&Live) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if cond(&self.live) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Closes every stream and returns their records.
    pub async fn stop(self) -> Vec<StreamReport> {
        self.cancel.cancel();
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            match t.await {
                Ok(r) => out.push(r),
                Err(e) => out.push(StreamReport {
                    error: Some(format!("stream task failed: {e}")),
                    ..Default::default()
                }),
            }
        }
        out
    }
}

struct StreamCtx {
    index: usize,
    conn_index: usize,
    target: Arc<Target>,
    plan: Arc<StreamPlan>,
    live: Arc<Live>,
    dial: Arc<Semaphore>,
    group: Arc<OnceCell<Result<Conn, String>>>,
}

async fn run_stream(ctx: StreamCtx, cancel: CancellationToken) -> StreamReport {
    let channel = ctx.index % ctx.plan.channels.len().max(1);
    let mut rep = StreamReport {
        channel,
        seen: SeqSet {
            base: ctx.plan.first_seq.get(channel).copied().unwrap_or(0),
            bits: Vec::new(),
        },
        ..Default::default()
    };
    let mut lat = Vec::with_capacity(64);
    let result = tokio::select! {
        _ = cancel.cancelled() => Ok(()),
        r = stream_body(&ctx, &mut rep, &mut lat) => r,
    };
    ctx.live.record_latencies(&mut lat);
    if let Err(e) = result {
        let e = format!("{e:#}");
        if !rep.connected {
            ctx.live.failed.fetch_add(1, Ordering::Relaxed);
        }
        ctx.live.error(e.clone());
        rep.error = Some(e);
    }
    rep
}

async fn stream_body(ctx: &StreamCtx, rep: &mut StreamReport, lat: &mut Vec<u64>) -> Result<()> {
    let plan = &ctx.plan;
    let channel = rep.channel;
    let mut conn = match plan.version {
        HttpVersion::H1 => {
            let _permit = ctx.dial.acquire().await?;
            match plan.sockets.as_ref().and_then(|s| s.take(ctx.index)) {
                Some(socket) => Conn::open_socket(&ctx.target, socket, HttpVersion::H1).await?,
                None => {
                    Conn::open(&ctx.target, ctx.target.source(ctx.index), HttpVersion::H1).await?
                }
            }
        }
        HttpVersion::H2 => {
            let shared = ctx
                .group
                .get_or_init(|| async {
                    let _permit = ctx.dial.acquire().await.map_err(|e| e.to_string())?;
                    Conn::open(
                        &ctx.target,
                        ctx.target.source(ctx.conn_index),
                        HttpVersion::H2,
                    )
                    .await
                    .map_err(|e| format!("{e:#}"))
                })
                .await;
            match shared {
                Ok(c) => c
                    .share()
                    .ok_or_else(|| anyhow::anyhow!("not an HTTP/2 connection"))?,
                Err(e) => bail!("{e}"),
            }
        }
    };
    let path = format!(
        "/events/{}",
        plan.channels.get(channel).map_or("", String::as_str)
    );
    let mut req = ctx
        .target
        .request("GET", &path, plan.version == HttpVersion::H2)
        .header(http::header::ACCEPT, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache");
    if let Some(Some(id)) = plan.last_event_id.get(channel) {
        req = req.header("last-event-id", id.as_str());
    }
    let req = req.body(Full::new(Bytes::new()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), conn.send(req))
        .await
        .map_err(|_| anyhow::anyhow!("no response head within 30 s"))??;
    if resp.status() != http::StatusCode::OK {
        bail!("GET {path} answered {}", resp.status());
    }
    let ctype = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("text/event-stream") {
        bail!("GET {path} answered content-type {ctype:?}");
    }
    rep.connected = true;
    ctx.live.connected.fetch_add(1, Ordering::Relaxed);

    let mut body = resp.into_body();
    let mut parser = Parser::new();
    let catch_up = plan.catch_up_seq.get(channel).copied().flatten();
    let mut caught_up = false;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        // Every event of a chunk arrived at the same moment: one clock read per chunk.
        let now = now_us();
        parser.feed(data, |ev| {
            on_event(ev, now, rep, lat, &ctx.live);
        });
        rep.comments = parser.comments;
        if lat.len() >= 64 {
            ctx.live.record_latencies(lat);
        }
        if let (Some(target), false) = (catch_up, caught_up) {
            if rep.max_seq.is_some_and(|m| m >= target) {
                caught_up = true;
                ctx.live.caught_up.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    rep.ended_by_server = true;
    ctx.live.ended.fetch_add(1, Ordering::Relaxed);
    drop(conn);
    Ok(())
}

/// Judges one event received at `now` (µs, [`now_us`]).
fn on_event(ev: EventRef<'_>, now: u64, rep: &mut StreamReport, lat: &mut Vec<u64>, live: &Live) {
    rep.received += 1;
    live.events.fetch_add(1, Ordering::Relaxed);
    if !ev.last_event_id.is_empty() {
        // Reuses the string's buffer: no allocation per event.
        let id = rep.last_event_id.get_or_insert_with(String::new);
        id.clear();
        id.push_str(ev.last_event_id);
    }
    if ev.event_type != "message" {
        rep.other_types += 1;
        return;
    }
    let Some(p) = Payload::parse(ev.data) else {
        rep.malformed += 1;
        return;
    };
    if p.c != rep.channel {
        rep.foreign += 1;
        return;
    }
    if p.ts > now + 1_000_000 {
        rep.malformed += 1;
        return;
    }
    if p.seq < rep.seen.base {
        rep.stale += 1;
        return;
    }
    if p.seq - rep.seen.base >= MAX_SEQ_SPAN {
        rep.malformed += 1;
        return;
    }
    if !rep.seen.insert(p.seq) {
        rep.duplicates += 1;
        return;
    }
    match rep.max_seq {
        Some(m) if p.seq < m => rep.reorders += 1,
        _ => rep.max_seq = Some(p.seq),
    }
    lat.push(now.saturating_sub(p.ts));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqset_tracks_membership() {
        let mut s = SeqSet {
            base: 10,
            bits: Vec::new(),
        };
        assert!(s.insert(10));
        assert!(s.insert(200));
        assert!(!s.insert(200));
        assert!(s.contains(10) && s.contains(200));
        assert!(!s.contains(9) && !s.contains(11) && !s.contains(100_000));
    }

    #[test]
    fn payloads_read_by_hand_agree_with_serde_json() {
        let texts = [
            r#"{"c":1,"seq":2,"ts":3}"#,
            r#"{"c":0,"seq":18446744073709551615,"ts":0}"#,
            r#"{ "c": 1, "seq": 2, "ts": 3 }"#,
            r#"{"seq":2,"c":1,"ts":3}"#,
            r#"{"c":01,"seq":2,"ts":3}"#,
            r#"{"c":1,"seq":18446744073709551616,"ts":3}"#,
            r#"{"c":1,"seq":-2,"ts":3}"#,
            r#"{"c":1,"seq":2,"ts":3}x"#,
            r#"{"c":1,"seq":2,"ts":}"#,
            r#"{"c":1,"seq":2}"#,
            "",
            "not json",
        ];
        for text in texts {
            let by_serde = serde_json::from_str::<Payload>(text).ok();
            assert_eq!(Payload::parse(text), by_serde, "{text:?}");
        }
        assert_eq!(
            Payload::exact(r#"{"c":1,"seq":2,"ts":3}"#),
            Some(Payload {
                c: 1,
                seq: 2,
                ts: 3
            })
        );
        // Re-encoded JSON is not the publisher's text: serde_json reads it.
        assert_eq!(Payload::exact(r#"{"seq":2,"c":1,"ts":3}"#), None);
    }

    #[test]
    fn events_are_classified() {
        let live = Live::default();
        let mut rep = StreamReport {
            channel: 1,
            ..Default::default()
        };
        let mut lat = Vec::new();
        let ts = now_us();
        fn mk(data: &str) -> EventRef<'_> {
            EventRef {
                event_type: "message",
                data,
                last_event_id: "x",
            }
        }
        for seq in [0u64, 2, 1, 2] {
            on_event(
                mk(&format!(r#"{{"c":1,"seq":{seq},"ts":{ts}}}"#)),
                now_us(),
                &mut rep,
                &mut lat,
                &live,
            );
        }
        on_event(
            mk(r#"{"c":0,"seq":3,"ts":1}"#),
            now_us(),
            &mut rep,
            &mut lat,
            &live,
        );
        on_event(mk("not json"), now_us(), &mut rep, &mut lat, &live);
        assert_eq!(rep.received, 6);
        assert_eq!(rep.duplicates, 1);
        assert_eq!(rep.reorders, 1);
        assert_eq!(rep.foreign, 1);
        assert_eq!(rep.malformed, 1);
        assert_eq!(rep.missing(0..4), 1);
        assert_eq!(lat.len(), 3);
    }
}
