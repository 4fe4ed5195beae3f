//! One stream: its fixed identity (name, content type), its state under a lock (the log,
//! closure, producers, expiry, fork references) and the waiters woken by every change. An append
//! runs all its checks and its write in one critical section, which serializes producers and
//! makes a close atomic with its final data.
//!
//! Lock order: a stream's state, then the budget.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::{sync::Notify, time::Instant};

use super::{
    budget::{Budget, ClientKey, Refusal},
    error::Failure,
    log::{Log, Payload},
    offset::{Offset, MAX_POSITION},
    producer::{ProducerClaim, Producers, Verdict, MAX_PRODUCERS},
    time,
};

/// What `Content-Type` a stream gets when its creator names none.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The media type of a `Content-Type` value, for comparisons: lower case, parameters dropped.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    Live,
    /// Deleted (or expired) while forks still reference it: `410` to clients, name blocked.
    SoftDeleted,
    /// Gone from the registry; holders of the handle see `404`.
    Removed,
}

/// A stream's expiry: a sliding TTL (renewed by reads and writes, not by `HEAD`) or a fixed time.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expiry {
    pub(crate) ttl: Option<u64>,
    pub(crate) expires_at: Option<i64>,
    deadline: Option<Instant>,
}

impl Expiry {
    pub(super) fn new(ttl: Option<u64>, expires_at: Option<i64>) -> Self {
        Self {
            ttl,
            expires_at,
            deadline: ttl.map(time::after),
        }
    }

    pub(super) fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.expires_at.is_some_and(|at| time::now_millis() >= at)
    }

    /// Restarts the sliding window.
    pub(crate) fn touch(&mut self) {
        if let Some(ttl) = self.ttl {
            self.deadline = Some(time::after(ttl));
        }
    }
}

/// What a `PUT` asked for, compared by a repeated `PUT` (`200` when equal, `409` otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) media_type: String,
    pub(crate) ttl: Option<u64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) closed: bool,
    pub(crate) fork: Option<ForkSpec>,
}

/// The fork headers of a `PUT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ForkSpec {
    pub(crate) source: String,
    pub(crate) offset: Option<Offset>,
    pub(crate) sub: u64,
}

/// A stream's mutable state, under its lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) log: Log,
    pub(crate) closed: bool,
    pub(crate) life: Life,
    pub(crate) expiry: Expiry,
    pub(super) producers: Producers,
    pub(super) stream_seq: Option<String>,
    pub(super) config: Config,
    pub(super) forks: usize,
    pub(super) source: Option<Arc<Stream>>,
    pub(super) owner: ClientKey,
    /// Bytes this stream's own appends cost, per client that wrote them.
    pub(super) charges: Vec<(ClientKey, u64)>,
}

impl State {
    fn own_bytes(&self) -> u64 {
        self.charges.iter().map(|(_, b)| b).sum()
    }

    /// Charges an append to `client`: refused when the stream or a budget would overflow.
    pub(super) fn charge(
        &mut self,
        budget: &Budget,
        client: ClientKey,
        payload: &Payload,
    ) -> Result<(), Refusal> {
        if self.log.tail().saturating_add(payload.len()) > MAX_POSITION {
            return Err(Refusal::StreamBytes(budget.limits.max_stream_bytes));
        }
        // An append also costs its handle in the log (a fork's inherited handles likewise).
        self.charge_bytes(budget, client, payload.size() + Log::HANDLE_BYTES)
    }

    /// Charges `size` bytes of this stream's memory to `client`.
    pub(super) fn charge_bytes(
        &mut self,
        budget: &Budget,
        client: ClientKey,
        size: u64,
    ) -> Result<(), Refusal> {
        if self.own_bytes().saturating_add(size) > budget.limits.max_stream_bytes {
            return Err(Refusal::StreamBytes(budget.limits.max_stream_bytes));
        }
        budget.charge(client, size)?;
        match self.charges.iter_mut().find(|(c, _)| *c == client) {
            Some((_, bytes)) => *bytes += size,
            None => self.charges.push((client, size)),
        }
        Ok(())
    }

    /// `Err` unless the stream is live.
    pub(crate) fn check_live(&self) -> Result<(), Failure> {
        match self.life {
            Life::Live => Ok(()),
            Life::SoftDeleted => Err(Failure::Gone),
            Life::Removed => Err(Failure::NotFound),
        }
    }
}

/// One stream: its fixed identity, its state, and the waiters woken by every change.
#[derive(Debug)]
pub(crate) struct Stream {
    /// Unique over the server's life: an ETag of a deleted stream never matches its successor.
    pub(crate) id: u64,
    pub(crate) name: String,
    /// As its creator sent it (or the default, or the fork source's).
    pub(crate) content_type: String,
    pub(crate) json: bool,
    pub(super) state: Mutex<State>,
    /// Woken on every append, close and removal.
    pub(crate) changed: Notify,
    /// The last SSE frame a follower encoded, for the others at the same position: one append
    /// read by a thousand followers is encoded once, not a thousand times.
    pub(crate) last_frame: Mutex<Option<(FrameKey, bytes::Bytes)>>,
}

impl Stream {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends (and maybe closes), all checks and the write in one critical section, so that
    /// concurrent producers are serialized and a close is atomic with its final data.
    pub(crate) fn append(
        &self,
        budget: &Budget,
        request: AppendRequest,
    ) -> Result<Appended, Failure> {
        let mut state = self.lock();
        state.check_live()?;
        let tail = |state: &State| Offset(state.log.tail());
        if state.closed {
            let duplicate =
                request
                    .producer
                    .as_ref()
                    .and_then(|claim| match state.producers.check(claim) {
                        Verdict::Duplicate { last_seq } => Some((claim.epoch, last_seq)),
                        _ => None,
                    });
            if request.payload.is_none() && request.close || duplicate.is_some() {
                state.expiry.touch();
                return Ok(Appended {
                    tail: tail(&state),
                    closed: true,
                    producer: duplicate,
                    fresh: false,
                });
            }
            return Err(Failure::Closed { tail: tail(&state) });
        }
        if request.payload.is_some() {
            match &request.media_type {
                None => {
                    return Err(Failure::BadRequest(
                        "an append needs a Content-Type header".into(),
                    ))
                }
                Some(media) if *media != media_type(&self.content_type) => {
                    return Err(Failure::Conflict(format!(
                        "Content-Type {media} does not match the stream's {}",
                        self.content_type
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(claim) = &request.producer {
            match state.producers.check(claim) {
                Verdict::Accept
                    if state.producers.is_new(claim) && state.producers.len() >= MAX_PRODUCERS =>
                {
                    return Err(Refusal::Producers(MAX_PRODUCERS).into());
                }
                Verdict::Accept => {}
                Verdict::Duplicate { last_seq } => {
                    state.expiry.touch();
                    return Ok(Appended {
                        tail: tail(&state),
                        closed: state.closed,
                        producer: Some((claim.epoch, last_seq)),
                        fresh: false,
                    });
                }
                Verdict::StaleEpoch { current } => return Err(Failure::StaleEpoch { current }),
                Verdict::EpochNeedsSeqZero => {
                    return Err(Failure::BadRequest(
                        "a new Producer-Epoch must start at Producer-Seq 0".into(),
                    ))
                }
                Verdict::Gap { expected } => {
                    return Err(Failure::SequenceGap {
                        expected,
                        received: claim.seq,
                    })
                }
            }
        }
        if let (Some(seq), Some(last)) = (&request.stream_seq, &state.stream_seq) {
            if seq.as_bytes() <= last.as_bytes() {
                return Err(Failure::Conflict(format!(
                    "Stream-Seq {seq:?} is not greater than the last one, {last:?}"
                )));
            }
        }
        if let Some(payload) = &request.payload {
            state.charge(budget, request.client, payload)?;
        }
        let fresh = request.payload.is_some();
        if let Some(payload) = request.payload {
            state.log.append(payload);
        }
        if let Some(seq) = request.stream_seq {
            state.stream_seq = Some(seq);
        }
        if let Some(claim) = &request.producer {
            state.producers.accept(claim);
        }
        if request.close {
            state.closed = true;
        }
        state.expiry.touch();
        let appended = Appended {
            tail: tail(&state),
            closed: state.closed,
            producer: request.producer.map(|c| (c.epoch, c.seq)),
            fresh,
        };
        drop(state);
        self.changed.notify_waiters();
        Ok(appended)
    }
}

/// A `POST`, parsed.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub(crate) media_type: Option<String>,
    pub(crate) close: bool,
    pub(crate) producer: Option<ProducerClaim>,
    pub(crate) stream_seq: Option<String>,
    /// `None` for an empty body.
    pub(crate) payload: Option<Payload>,
    pub(crate) client: ClientKey,
}

/// The outcome of an append.
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) tail: Offset,
    pub(crate) closed: bool,
    /// The epoch and highest accepted sequence number, for producer requests.
    pub(crate) producer: Option<(u64, u64)>,
    /// Whether this request stored new data (`200` for a producer) or not (`204`).
    pub(crate) fresh: bool,
}

/// What an SSE `data` + `control` frame depends on: the range it carries, whether it reached
/// the tail (and the end of a closed stream), and the cursor it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameKey {
    pub(crate) from: u64,
    pub(crate) next: u64,
    pub(crate) up_to_date: bool,
    pub(crate) closed: bool,
    pub(crate) cursor: Option<u64>,
}

impl Stream {
    /// The frame cached for `key`, if it is the last one encoded.
    pub(crate) fn cached_frame(&self, key: FrameKey) -> Option<bytes::Bytes> {
        let last = self
            .last_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, frame)| frame.clone())
    }

    /// Remembers the frame encoded for `key`.
    pub(crate) fn cache_frame(&self, key: FrameKey, frame: bytes::Bytes) {
        *self
            .last_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((key, frame));
    }
}
