//! Reads: catch-up (`GET ?offset=`) and long-poll (`&live=long-poll`); SSE is in
//! [`sse`](super::sse).
//!
//! | State at the offset | catch-up | long-poll |
//! |---|---|---|
//! | data after it | `200` + data | `200` + data |
//! | at the tail, open | `200`, empty, `Stream-Up-To-Date` | waits; `200` + data, or `204` after the timeout |
//! | at the tail, closed | `200`, empty, `Stream-Closed` | `204` + `Stream-Closed`, at once |

use std::pin::pin;

use bytes::Bytes;
use poem::{
    http::{header, StatusCode},
    Request, Response,
};

use super::{
    backend::{Handle, Seen},
    error::Failure,
    offset::{Offset, Start},
    request::{self, Live},
    sse, time, Shared,
};

/// A `GET`.
pub(crate) async fn get(shared: &Shared, req: &Request, name: &str) -> Result<Response, Failure> {
    let query = request::read_query(req)?;
    if shared.shutdown.is_cancelled() && query.live != Live::CatchUp {
        return Err(Failure::ShuttingDown);
    }
    let start = query.offset.unwrap_or(Start::Beginning);
    let chunk_bytes = shared.options.read_chunk_bytes;
    let (stream, from, seen) = shared.backend.open(name, start, chunk_bytes).await?;
    match query.live {
        Live::Sse => Ok(sse::response(shared, stream, from, query.cursor, seen)),
        Live::CatchUp => Ok(catch_up(req, &stream, from, &seen, start == Start::Now)),
        Live::LongPoll => long_poll(shared, &stream, from, query.cursor.as_deref(), seen).await,
    }
}

fn catch_up(req: &Request, stream: &Handle, from: u64, seen: &Seen, now: bool) -> Response {
    let next = seen.chunk.next;
    let at_end = seen.closed && next == seen.tail;
    let etag = format!(
        "\"{}:{}:{}{}\"",
        stream.generation(),
        from,
        next,
        if at_end { ":c" } else { "" }
    );
    if !now && if_none_match(req, &etag) {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag)
            .finish();
    }
    let mut response = data_response(stream, seen, None);
    if now {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    } else if let Ok(etag) = header::HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

async fn long_poll(
    shared: &Shared,
    stream: &Handle,
    from: u64,
    cursor: Option<&str>,
    first: Seen,
) -> Result<Response, Failure> {
    if !first.chunk.is_empty() {
        return Ok(data_response(stream, &first, Some(cursor)));
    }
    if first.closed {
        return Ok(empty_live(first.tail, true, cursor));
    }
    let deadline = tokio::time::Instant::now() + shared.options.long_poll_timeout;
    loop {
        // Registered before looking, so that an append between the look and the wait wakes us.
        let mut changed = pin!(stream.changed().notified());
        changed.as_mut().enable();
        let seen = stream.look(from, shared.options.read_chunk_bytes).await?;
        if !seen.chunk.is_empty() {
            return Ok(data_response(stream, &seen, Some(cursor)));
        }
        if seen.closed {
            return Ok(empty_live(seen.tail, true, cursor));
        }
        tokio::select! {
            () = &mut changed => {}
            () = tokio::time::sleep_until(deadline) => return Ok(empty_live(seen.tail, false, cursor)),
            () = shared.shutdown.cancelled() => return Ok(empty_live(seen.tail, false, cursor)),
        }
    }
}

/// A `200` with data (or none, at the tail); `cursor` is set for live reads.
fn data_response(stream: &Handle, seen: &Seen, cursor: Option<Option<&str>>) -> Response {
    let next = seen.chunk.next;
    let up_to_date = next == seen.tail;
    let body: Bytes = if stream.json() {
        seen.chunk.json_array()
    } else {
        seen.chunk.bytes()
    };
    let cache = if up_to_date {
        "no-cache"
    } else {
        "private, max-age=60, stale-while-revalidate=300"
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .content_type(stream.content_type())
        .header("Stream-Next-Offset", Offset(next).to_string())
        .header(header::CACHE_CONTROL, cache)
        .header("Stream-Cursor", time::cursor(cursor.flatten()).to_string());
    if up_to_date {
        response = response.header("Stream-Up-To-Date", "true");
    }
    if seen.closed && up_to_date {
        response = response.header("Stream-Closed", "true");
    }
    response.body(body)
}

/// The `204` of a long-poll that found nothing (or the end of a closed stream).
fn empty_live(tail: u64, closed: bool, cursor: Option<&str>) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("Stream-Next-Offset", Offset(tail).to_string())
        .header("Stream-Up-To-Date", "true")
        .header(header::CACHE_CONTROL, "no-store");
    if closed {
        response = response.header("Stream-Closed", "true");
    } else {
        response = response.header("Stream-Cursor", time::cursor(cursor).to_string());
    }
    response.finish()
}

/// Whether `If-None-Match` lists `etag`.
fn if_none_match(req: &Request, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}
