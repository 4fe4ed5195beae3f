//! Reads a Server-Sent Events stream over HTTP, with every wait bounded.
//!
//! [`SseConnection`] keeps the response open, parses it with the independent
//! [`Parser`], and records every body chunk as it came off the socket, so
//! tests can check both what was dispatched and how it was delivered (one event per chunk, as
//! soon as it was published; heartbeat comments while idle).
//!
//! ```no_run
//! # async fn demo() -> Result<(), testkit::sse_client::Error> {
//! use std::time::Duration;
//! use testkit::sse_client::SseConnection;
//!
//! let client = reqwest::Client::new();
//! let url = "http://127.0.0.1:8080/events/prices";
//! let mut sse = SseConnection::connect(&client, url, Some("0-41")).await?;
//! assert_eq!(sse.status(), reqwest::StatusCode::OK);
//!
//! let missed = sse.next_events(3, Duration::from_secs(5)).await?;
//! assert_eq!(missed[2].last_event_id, "0-44");
//! sse.expect_no_event(Duration::from_millis(200)).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, ACCEPT, CACHE_CONTROL};
use reqwest::{StatusCode, Version};

use crate::parser::{ParsedEvent, Parser};

/// How long [`SseConnection::connect`] waits for the response headers.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong while reading a stream.
#[derive(Debug)]
pub enum Error {
    /// The request could not be sent or its response headers not received.
    Request {
        /// The URL that was requested.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The body failed while it was being read (for example the connection was reset).
    Body(reqwest::Error),
    /// Nothing arrived in time: the response headers for `connect`, an event for the `next_*`
    /// methods. Events read before the deadline stay queued for the next call.
    Timeout {
        /// What was being waited for.
        waiting_for: &'static str,
        /// The bound that elapsed.
        after: Duration,
        /// How many of the wanted events had arrived (0 for `connect` and `next_event`).
        received: usize,
    },
    /// The server ended the stream before the wanted number of events arrived. The events read
    /// stay queued.
    Ended {
        /// How many events were wanted.
        wanted: usize,
        /// How many arrived before the end.
        received: usize,
    },
    /// [`SseConnection::expect_no_event`] received an event.
    UnexpectedEvent(ParsedEvent),
}

impl Error {
    /// Whether this is a [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Request { url, source } => write!(f, "request to {url} failed: {source}"),
            Error::Body(source) => write!(f, "reading the event stream failed: {source}"),
            Error::Timeout {
                waiting_for,
                after,
                received,
            } => write!(
                f,
                "timed out after {after:?} waiting for {waiting_for} ({received} received)"
            ),
            Error::Ended { wanted, received } => write!(
                f,
                "the stream ended after {received} of the {wanted} wanted events"
            ),
            Error::UnexpectedEvent(event) => write!(f, "expected no event, got {event:?}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Request { source, .. } | Error::Body(source) => Some(source),
            _ => None,
        }
    }
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One body chunk, as it came off the connection.
#[derive(Debug, Clone)]
pub struct RawChunk {
    /// The bytes of the chunk.
    pub bytes: Bytes,
    /// When the chunk was received.
    pub received_at: Instant,
}

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An open SSE response: its status and headers, and its body parsed as it arrives.
///
/// Dropping the connection closes it (for HTTP/2, resets the stream).
pub struct SseConnection {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: BodyStream,
    parser: Parser,
    /// Parsed events not yet handed out.
    ready: VecDeque<ParsedEvent>,
    chunks: Vec<RawChunk>,
    ended: bool,
}

impl fmt::Debug for SseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseConnection")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("queued_events", &self.ready.len())
            .field("chunks", &self.chunks.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl SseConnection {
    /// Sends `GET url` with `Accept: text/event-stream` (and `Last-Event-ID` when given) and
    /// waits up to [`DEFAULT_CONNECT_TIMEOUT`] for the response headers.
    ///
    /// Any status is accepted, so tests can check refusals too; see [`SseConnection::status`].
    ///
    /// # Errors
    ///
    /// [`Error::Request`] if the request fails, [`Error::Timeout`] if the headers do not arrive.
    pub async fn connect(
        client: &reqwest::Client,
        url: &str,
        last_event_id: Option<&str>,
    ) -> Result<Self> {
        Self::connect_with_timeout(client, url, last_event_id, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// [`SseConnection::connect`] with a chosen bound on the wait for the response headers.
    ///
    /// # Errors
    ///
    /// [`Error::Request`] if the request fails, [`Error::Timeout`] if the headers do not arrive.
    pub async fn connect_with_timeout(
        client: &reqwest::Client,
        url: &str,
        last_event_id: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let mut request = client
            .get(url)
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(source)) => {
                return Err(Error::Request {
                    url: url.to_owned(),
                    source,
                })
            }
            Err(_) => {
                return Err(Error::Timeout {
                    waiting_for: "the response headers",
                    after: timeout,
                    received: 0,
                })
            }
        };
        Ok(Self {
            status: response.status(),
            version: response.version(),
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            parser: Parser::new(),
            ready: VecDeque::new(),
            chunks: Vec::new(),
            ended: false,
        })
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version the response came over.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A response header as a string, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// Waits up to `timeout` for the next event.
    ///
    /// Returns `Ok(None)` once the server has ended the stream and every event was handed out.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if no event arrives in time (the connection stays usable),
    /// [`Error::Body`] if reading the body fails.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<ParsedEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            if !self.read_chunk(deadline).await? {
                return Err(Error::Timeout {
                    waiting_for: "an event",
                    after: timeout,
                    received: 0,
                });
            }
        }
    }

    /// Waits until `n` events have arrived, at most `timeout` in all, and returns them.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] or [`Error::Ended`] if fewer arrive; the ones that did stay queued for
    /// the next call. [`Error::Body`] if reading the body fails.
    pub async fn next_events(&mut self, n: usize, timeout: Duration) -> Result<Vec<ParsedEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.ready.len() >= n {
                return Ok(self.ready.drain(..n).collect());
            }
            if self.ended {
                return Err(Error::Ended {
                    wanted: n,
                    received: self.ready.len(),
                });
            }
            if !self.read_chunk(deadline).await? {
                return Err(Error::Timeout {
                    waiting_for: "events",
                    after: timeout,
                    received: self.ready.len(),
                });
            }
        }
    }

    /// Waits for `within` and succeeds if no event arrives meanwhile (comments are fine).
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedEvent`] with the first event that arrived, [`Error::Body`] if reading
    /// the body fails.
    pub async fn expect_no_event(&mut self, within: Duration) -> Result<()> {
        match self.next_event(within).await {
            Ok(Some(event)) => Err(Error::UnexpectedEvent(event)),
            Ok(None) => Ok(()),
            Err(error) if error.is_timeout() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Waits up to `timeout` for the server to end the stream, discarding what arrives.
    ///
    /// Returns how many events arrived meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the stream is still open, [`Error::Body`] if it fails rather than
    /// ending cleanly.
    pub async fn wait_for_end(&mut self, timeout: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.ready.len();
        self.ready.clear();
        while !self.ended {
            if !self.read_chunk(deadline).await? {
                return Err(Error::Timeout {
                    waiting_for: "the end of the stream",
                    after: timeout,
                    received: events,
                });
            }
            events += self.ready.len();
            self.ready.clear();
        }
        Ok(events)
    }

    /// Every body chunk received so far, in order, with its arrival time.
    pub fn raw_chunks(&self) -> &[RawChunk] {
        &self.chunks
    }

    /// Takes the body chunks received so far, so later calls only see newer ones.
    pub fn take_raw_chunks(&mut self) -> Vec<RawChunk> {
        std::mem::take(&mut self.chunks)
    }

    /// How many comment lines (heartbeats) have been received.
    pub fn comments(&self) -> u64 {
        self.parser.comments()
    }

    /// The last `retry:` value received, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.parser.retry()
    }

    /// The last event id the stream set: what an `EventSource` would reconnect with.
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// Whether the server has ended the stream (queued events may remain).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Closes the connection.
    pub fn close(self) {}

    /// Reads one chunk into the parser. Returns `Ok(false)` if `deadline` passed first.
    async fn read_chunk(&mut self, deadline: tokio::time::Instant) -> Result<bool> {
        // Dropping `next()` on timeout loses nothing: it only polls the body stream.
        let Ok(item) = tokio::time::timeout_at(deadline, self.body.next()).await else {
            return Ok(false);
        };
        match item {
            Some(Ok(bytes)) => {
                let received_at = Instant::now();
                self.ready.extend(self.parser.feed(&bytes));
                self.chunks.push(RawChunk { bytes, received_at });
            }
            Some(Err(error)) => {
                self.end();
                return Err(Error::Body(error));
            }
            None => self.end(),
        }
        Ok(true)
    }

    fn end(&mut self) {
        self.ended = true;
        self.parser.finish();
    }
}
