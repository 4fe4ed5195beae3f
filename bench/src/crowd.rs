//! A lean HTTP/2 (h2c) client for holding a very large crowd of SSE streams: a million on the
//! core the load generator has. A hyper client keeps a task, a request future and a body per
//! stream (a few KiB each); this one keeps one task and one read buffer per connection and a few
//! dozen bytes per stream, and still counts every receipt of every stream (no stream is assumed
//! to have what another one got).
//!
//! It speaks just the part of HTTP/2 that holding GET streams needs: the preface and settings,
//! one `HEADERS` frame per request (HPACK literals without indexing: no dynamic table to keep),
//! the answer's `:status` (`200` is static entry 8, which hyper's h2 sends as the single byte
//! `0x88`; anything else is counted as a refusal), `DATA` (read as `text/event-stream`, the
//! connection window handed back as it is used), `PING`, `SETTINGS`, `RST_STREAM` and `GOAWAY`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::now_us;
use crate::streams::Payload;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// The largest window HTTP/2 allows: streams never wait for a window update.
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The connection's window is handed back once this much of it is used.
const WINDOW_REFILL: u32 = 1 << 22;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// What to open: `connections` × `per_conn` streams of `GET path`.
#[derive(Debug, Clone)]
pub struct CrowdPlan {
    pub addr: SocketAddr,
    /// `host:port` for `:authority`.
    pub authority: String,
    pub path: String,
    pub connections: usize,
    pub per_conn: usize,
    /// Connections being opened at once (each until all its streams are answered).
    pub dial_concurrency: usize,
}

impl CrowdPlan {
    /// Streams in all.
    pub fn streams(&self) -> usize {
        self.connections * self.per_conn
    }
}

/// What the crowd has seen so far, counted per stream and summed here.
#[derive(Debug, Default)]
pub struct CrowdLive {
    /// Streams answered `200`.
    pub connected: AtomicUsize,
    /// Streams answered otherwise, or reset before an answer.
    pub refused: AtomicUsize,
    /// Streams whose connection could not be opened.
    pub failed: AtomicUsize,
    /// Streams the server ended after answering `200` (end of stream, reset, or the connection
    /// closed).
    pub ended: AtomicUsize,
    /// Events dispatched, all streams.
    pub events: AtomicU64,
    /// Comment lines (heartbeats), all streams.
    pub comments: AtomicU64,
    /// The sequence number being watched for (`u64::MAX`: none).
    watch: AtomicU64,
    /// Streams that received the watched event, each counted once.
    pub reached: AtomicUsize,
    /// Receipts of the watched event beyond a stream's first.
    pub duplicates: AtomicUsize,
    latencies: Mutex<Vec<u32>>,
    errors: Mutex<Vec<String>>,
}

impl CrowdLive {
    /// Streams that have an outcome (answered, refused or failed).
    pub fn settled(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
            + self.refused.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }

    /// Starts counting the receipts of event `seq`, from zero.
    pub fn watch(&self, seq: u64) {
        self.reached.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
        if let Ok(mut l) = self.latencies.lock() {
            l.clear();
        }
        self.watch.store(seq, Ordering::Release);
    }

    /// Publish → receipt latency of the watched event, µs, one per stream that got it.
    pub fn latencies(&self) -> Vec<u32> {
        self.latencies.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The first few distinct errors.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn error(&self, e: String) {
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < 8 && !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
}

/// A running crowd.
pub struct Crowd {
    pub live: Arc<CrowdLive>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Crowd {
    /// Opens every connection of `plan` (`dial_concurrency` at a time) and its streams.
    pub fn start(plan: &CrowdPlan) -> Self {
        let live = Arc::new(CrowdLive {
            watch: AtomicU64::new(u64::MAX),
            ..CrowdLive::default()
        });
        let cancel = CancellationToken::new();
        let dial = Arc::new(Semaphore::new(plan.dial_concurrency.max(1)));
        let request = Arc::new(request_block(&plan.path, &plan.authority));
        let tasks = (0..plan.connections)
            .map(|_| {
                let (live, cancel, dial, request) =
                    (live.clone(), cancel.clone(), dial.clone(), request.clone());
                let (addr, per_conn) = (plan.addr, plan.per_conn);
                tokio::spawn(async move {
                    let mut conn = Connection::new(per_conn, live.clone());
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        r = conn.run(addr, &request, &dial) => {
                            if let Err(e) = r {
                                live.error(format!("{e:#}"));
                            }
                        }
                    }
                    conn.finish();
                })
            })
            .collect();
        Self {
            live,
            cancel,
            tasks,
        }
    }

    /// Polls `cond` every 5 ms until it holds or `limit` passes; returns whether it held.
    pub async fn wait_until(&self, limit: Duration, cond: impl Fn(&CrowdLive) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !cond(&self.live) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Closes every connection.
    pub async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The HPACK block of `GET path` with `accept: text/event-stream`.
fn request_block(path: &str, authority: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http (static entries 2 and 6)
    literal(&mut b, &[0x04], path); // :path, name from static entry 4
    literal(&mut b, &[0x01], authority); // :authority, entry 1
    literal(&mut b, &[0x0f, 0x04], "text/event-stream"); // accept, entry 19 (15 + 4)
    b
}

/// A literal header field without indexing (RFC 7541 6.2.2), its name given by `name` (the
/// encoded static-table index) and its value as a plain string.
fn literal(b: &mut Vec<u8>, name: &[u8], value: &str) {
    b.extend_from_slice(name);
    hpack_int(b, value.len(), 7, 0x00);
    b.extend_from_slice(value.as_bytes());
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 5.1).
fn hpack_int(b: &mut Vec<u8>, mut v: usize, n: u32, flags: u8) {
    let max = (1usize << n) - 1;
    if v < max {
        b.push(flags | v as u8);
        return;
    }
    b.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        b.push((v % 128 + 128) as u8);
        v /= 128;
    }
    b.push(v as u8);
}

fn frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream & MAX_WINDOW);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Asked,
    Open,
    Done,
}

/// One stream's state: what the SSE reading needs between frames.
#[derive(Debug, Default)]
struct Stream {
    phase: Phase,
    /// Whether the event being read has a `data` line.
    has_data: bool,
    /// Whether the watched event reached this stream.
    reached: bool,
    /// The payload of the event being read, when it is the publisher's.
    payload: Option<(u64, u64)>,
    /// A line split across `DATA` frames (rare: servers write whole events).
    partial: Vec<u8>,
}

struct Connection {
    streams: Vec<Stream>,
    live: Arc<CrowdLive>,
    /// Latencies and counts gathered during one read, handed to `live` after it.
    latencies: Vec<u32>,
    events: u64,
    comments: u64,
    unacked: u32,
    /// Streams not answered yet.
    unanswered: usize,
    out: BytesMut,
}

impl Connection {
    fn new(per_conn: usize, live: Arc<CrowdLive>) -> Self {
        Self {
            streams: (0..per_conn).map(|_| Stream::default()).collect(),
            live,
            latencies: Vec::new(),
            events: 0,
            comments: 0,
            unacked: 0,
            unanswered: per_conn,
            out: BytesMut::new(),
        }
    }

    async fn run(&mut self, addr: SocketAddr, request: &[u8], dial: &Semaphore) -> Result<()> {
        let permit = dial.acquire().await?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_nodelay(true)?;
        let connect = tokio::time::timeout(Duration::from_secs(30), socket.connect(addr)).await;
        let mut tcp = match connect {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                self.fail_all();
                return Err(e).with_context(|| format!("connect {addr}"));
            }
            Err(_) => {
                self.fail_all();
                bail!("connect {addr} timed out");
            }
        };
        // The dial slot is held until every stream of the connection has its answer: the crowd
        // ramps up at the pace the server answers, as clients arriving over a minute would,
        // instead of queueing a million requests in its sockets at once.
        let mut permit = Some(permit);

        self.out.extend_from_slice(PREFACE);
        // Settings: no push (2 = 0), the largest stream window (4).
        frame_header(&mut self.out, 12, SETTINGS, 0, 0);
        self.out.put_u16(0x2);
        self.out.put_u32(0);
        self.out.put_u16(0x4);
        self.out.put_u32(MAX_WINDOW);
        frame_header(&mut self.out, 4, WINDOW_UPDATE, 0, 0);
        self.out.put_u32(MAX_WINDOW - 65_535);
        for i in 0..self.streams.len() {
            frame_header(
                &mut self.out,
                request.len(),
                HEADERS,
                END_STREAM | END_HEADERS,
                2 * i as u32 + 1,
            );
            self.out.extend_from_slice(request);
        }
        tcp.write_all(&self.out).await?;
        self.out.clear();

        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            if tcp.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
            let now = now_us();
            while buf.len() >= FRAME_HEADER {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < FRAME_HEADER + len {
                    buf.reserve(FRAME_HEADER + len - buf.len());
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & MAX_WINDOW;
                buf.advance(FRAME_HEADER);
                let payload = buf.split_to(len);
                self.frame(kind, flags, id, &payload, now)?;
            }
            self.publish_counts();
            if self.unanswered == 0 {
                permit.take();
            }
            if !self.out.is_empty() {
                tcp.write_all(&self.out).await?;
                self.out.clear();
            }
        }
    }

    fn frame(&mut self, kind: u8, flags: u8, id: u32, payload: &[u8], now: u64) -> Result<()> {
        match kind {
            DATA => {
                self.unacked += payload.len() as u32;
                if self.unacked >= WINDOW_REFILL {
                    frame_header(&mut self.out, 4, WINDOW_UPDATE, 0, 0);
                    self.out.put_u32(self.unacked);
                    self.unacked = 0;
                }
                let body = unpad(flags, payload, 0)?;
                if let Some(index) = self.index(id) {
                    self.data(index, body, now);
                    if flags & END_STREAM != 0 {
                        self.end(index);
                    }
                }
            }
            HEADERS => {
                let block = unpad(flags, payload, if flags & PRIORITY != 0 { 5 } else { 0 })?;
                if let Some(index) = self.index(id) {
                    if self.streams[index].phase == Phase::Asked {
                        if status_is_200(block) {
                            self.streams[index].phase = Phase::Open;
                            self.unanswered -= 1;
                            self.live.connected.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.refuse(index, "answered other than 200");
                        }
                    }
                    if flags & END_STREAM != 0 {
                        self.end(index);
                    }
                }
            }
            RST_STREAM => {
                if let Some(index) = self.index(id) {
                    if self.streams[index].phase == Phase::Asked {
                        self.refuse(index, "reset before an answer");
                    } else {
                        self.end(index);
                    }
                }
            }
            SETTINGS if flags & ACK == 0 => {
                frame_header(&mut self.out, 0, SETTINGS, ACK, 0);
            }
            PING if flags & ACK == 0 => {
                frame_header(&mut self.out, payload.len(), PING, ACK, 0);
                self.out.extend_from_slice(payload);
            }
            GOAWAY => {
                let last = payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & MAX_WINDOW
                });
                for index in 0..self.streams.len() {
                    if 2 * index as u32 + 1 > last && self.streams[index].phase == Phase::Asked {
                        self.refuse(index, "not taken before GOAWAY");
                    }
                }
            }
            _ => {} // CONTINUATION (the status is in the first block), WINDOW_UPDATE, PRIORITY
        }
        Ok(())
    }

    fn index(&self, id: u32) -> Option<usize> {
        let index = (id.checked_sub(1)? / 2) as usize;
        (id % 2 == 1 && index < self.streams.len()).then_some(index)
    }

    /// Reads `body` as the next bytes of stream `index`'s event stream.
    fn data(&mut self, index: usize, mut body: &[u8], now: u64) {
        while !body.is_empty() {
            let Some(nl) = body.iter().position(|&b| b == b'\n') else {
                self.streams[index].partial.extend_from_slice(body);
                return;
            };
            if self.streams[index].partial.is_empty() {
                self.line(index, &body[..nl], now);
            } else {
                let mut line = std::mem::take(&mut self.streams[index].partial);
                line.extend_from_slice(&body[..nl]);
                self.line(index, &line, now);
            }
            body = &body[nl + 1..];
        }
    }

    fn line(&mut self, index: usize, line: &[u8], now: u64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let stream = &mut self.streams[index];
        if line.is_empty() {
            if std::mem::take(&mut stream.has_data) {
                self.events += 1;
                let watch = self.live.watch.load(Ordering::Acquire);
                if let Some((seq, ts)) = stream.payload.take() {
                    if seq == watch {
                        if std::mem::replace(&mut stream.reached, true) {
                            self.live.duplicates.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.latencies
                                .push(now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32);
                        }
                    }
                }
            }
        } else if line[0] == b':' {
            self.comments += 1;
        } else if let Some(value) = line.strip_prefix(b"data:") {
            stream.has_data = true;
            let value = value.strip_prefix(b" ").unwrap_or(value);
            stream.payload = std::str::from_utf8(value)
                .ok()
                .and_then(Payload::parse)
                .map(|p| (p.seq, p.ts));
        }
    }

    fn refuse(&mut self, index: usize, why: &str) {
        self.streams[index].phase = Phase::Done;
        self.unanswered -= 1;
        self.live.refused.fetch_add(1, Ordering::Relaxed);
        self.live.error(format!("a stream was {why}"));
    }

    fn end(&mut self, index: usize) {
        if self.streams[index].phase == Phase::Open {
            self.live.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.streams[index].phase = Phase::Done;
    }

    fn fail_all(&mut self) {
        for s in &mut self.streams {
            s.phase = Phase::Done;
        }
        self.unanswered = 0;
        self.live
            .failed
            .fetch_add(self.streams.len(), Ordering::Relaxed);
    }

    fn publish_counts(&mut self) {
        let reached = self.latencies.len();
        if reached > 0 {
            self.live.reached.fetch_add(reached, Ordering::Relaxed);
            if let Ok(mut l) = self.live.latencies.lock() {
                l.append(&mut self.latencies);
            }
            self.latencies.clear();
        }
        self.live
            .events
            .fetch_add(std::mem::take(&mut self.events), Ordering::Relaxed);
        self.live
            .comments
            .fetch_add(std::mem::take(&mut self.comments), Ordering::Relaxed);
    }

    /// Counts what the last read gathered, every stream still open as ended and every one
    /// still unanswered as failed: the connection is gone (closed by the server, lost, or
    /// closed by [`Crowd::stop`]).
    fn finish(&mut self) {
        self.publish_counts();
        let mut unanswered = 0;
        for index in 0..self.streams.len() {
            if self.streams[index].phase == Phase::Asked {
                unanswered += 1;
            }
            self.end(index);
        }
        self.live.failed.fetch_add(unanswered, Ordering::Relaxed);
    }
}

/// The payload of a padded frame without its padding (and `skip` leading bytes).
fn unpad(flags: u8, payload: &[u8], skip: usize) -> Result<&[u8]> {
    let (pad, rest) = if flags & PADDED != 0 {
        match payload.split_first() {
            Some((&pad, rest)) => (usize::from(pad), rest),
            None => bail!("padded frame without a pad length"),
        }
    } else {
        (0, payload)
    };
    if rest.len() < pad + skip {
        bail!("frame shorter than its padding");
    }
    Ok(&rest[skip..rest.len() - pad])
}

/// Whether an answer's header block starts with `:status: 200` (after any dynamic table size
/// updates, `001xxxxx`).
fn status_is_200(block: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = block.get(i) {
        if b & 0xe0 != 0x20 {
            return b == 0x88;
        }
        i += 1;
        if b & 0x1f == 0x1f {
            while block.get(i).is_some_and(|b| b & 0x80 != 0) {
                i += 1;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers_follow_the_rfc_examples() {
        // RFC 7541 C.1.1 and C.1.2: 10 and 1337 with a 5-bit prefix.
        let mut b = Vec::new();
        hpack_int(&mut b, 10, 5, 0);
        assert_eq!(b, [0x0a]);
        b.clear();
        hpack_int(&mut b, 1337, 5, 0);
        assert_eq!(b, [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn the_status_is_read_past_table_size_updates() {
        assert!(status_is_200(&[0x88, 0x5f]));
        assert!(status_is_200(&[0x3f, 0xe1, 0x1f, 0x88]));
        assert!(!status_is_200(&[0x89])); // 204
        assert!(!status_is_200(&[0x48, 0x03, b'5', b'0', b'3'])); // 503, literal
        assert!(!status_is_200(&[]));
    }
}
