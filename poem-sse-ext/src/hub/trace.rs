//! What a stream tells the logs: one [`tracing`] span per stream, and why it reset, closed or was
//! refused, each at the level an operator expects.
//!
//! | event | level | fields |
//! | --- | --- | --- |
//! | span `sse_stream` | DEBUG | `channel` (a set's channels joined by commas), `resume_from`, `reset`, `protocol`, `peer` |
//! | `sse stream opened` | DEBUG | in the span |
//! | `sse reset: the client missed events` | INFO | `reason = "evicted"`, `resume_from`, `channel` |
//! | `sse reset` (a restart or a stale id) | DEBUG | `reason = "epoch"` or `"unknown"`, ... |
//! | `sse stream closed` | DEBUG | `reason` ([`CloseReason`]: `client_gone`, `shutdown`, `lifetime`, `ended`), `seconds` |
//! | `sse stream closed: authorization ended` | INFO | `reason = "reauth"` (expiry or revocation), `seconds`, `channel` |
//! | `sse stream refused` | WARN when the server is full (`max_streams`, `max_streams_per_channel`, `max_channels`) or the store fails; DEBUG otherwise (one client's caps, rate limit, shutdown) | `reason` ([`RefusalReason`]), `error` (which names the channel where one is at fault) |
//!
//! Routine events (a stream opening or closing) stay at DEBUG: a busy server opens thousands a
//! minute. What needs an operator (a full server, a failing store, clients losing events, a
//! revoked grant) is at INFO or WARN, and names its channel itself.
//!
//! The span is at DEBUG too, so that at INFO it costs nothing: an open span lives as long as its
//! stream, and a `tracing-subscriber` registry keeps about 300 bytes per span (and formats its
//! fields at creation), for every idle stream. With DEBUG enabled, every event of a stream is
//! in its span.

use std::time::Duration;

use tracing::{field, Span};

use crate::{
    hub::{admission::RefusalReason, stats::CloseReason},
    wire::{Reset, ResetReason},
};

/// The span of one stream. The endpoint records `protocol` (`HTTP/1.1`, `HTTP/2.0`); `peer` is
/// the client address the caps go by, when known.
pub(crate) fn stream_span(
    channel: &str,
    resume: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Span {
    let span = tracing::debug_span!(
        "sse_stream",
        channel,
        resume_from = resume,
        reset = field::Empty,
        protocol = field::Empty,
        peer = field::Empty,
    );
    if let Some(peer) = peer {
        span.record("peer", field::display(peer));
    }
    span
}

/// Logs a reset of `channel`.
pub(crate) fn log_reset(span: &Span, channel: &str, reset: &Reset) {
    let (reason, resume_from) = (reset.reason.as_str(), reset.resume_from.as_str());
    if reset.reason == ResetReason::Evicted {
        tracing::info!(parent: span, reason, resume_from, channel, "sse reset: the client missed events");
    } else {
        tracing::debug!(parent: span, reason, resume_from, channel, "sse reset");
    }
}

/// Logs the close of a stream that was open for `open_for`; `channel` names its channels, for
/// the events that are logged outside the span.
pub(crate) fn log_closed(
    span: &Span,
    reason: CloseReason,
    open_for: Duration,
    channel: impl FnOnce() -> String,
) {
    let (reason, seconds) = (reason.as_str(), open_for.as_secs_f64());
    if reason == CloseReason::Reauth.as_str() {
        let channel = channel();
        tracing::info!(parent: span, reason, seconds, channel, "sse stream closed: authorization ended");
    } else {
        tracing::debug!(parent: span, reason, seconds, "sse stream closed");
    }
}

/// Logs a refusal; `error` says what refused it (it names the channel where one is at fault).
pub(crate) fn log_refused(reason: RefusalReason, error: &dyn std::fmt::Display) {
    let server_side = matches!(
        reason,
        RefusalReason::MaxStreams
            | RefusalReason::MaxStreamsPerChannel
            | RefusalReason::MaxChannels
            | RefusalReason::Store
    );
    let reason = reason.as_str();
    if server_side {
        tracing::warn!(reason, %error, "sse stream refused");
    } else {
        tracing::debug!(reason, %error, "sse stream refused");
    }
}
