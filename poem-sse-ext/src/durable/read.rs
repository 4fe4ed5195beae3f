//! Reads: catch-up (`GET ?offset=`) and long-poll (`&live=long-poll`); SSE is in
//! [`sse`](super::sse).
//!
//! | State at the offset | catch-up | long-poll |
//! |---|---|---|
//! | data after it | `200` + data | `200` + data |
//! | at the tail, open | `200`, empty, `Stream-Up-To-Date` | waits; `200` + data, or `204` after the timeout |
//! | at the tail, closed | `200`, empty, `Stream-Closed` | `204` + `Stream-Closed`, at once |

use std::{pin::pin, sync::Arc};

use bytes::Bytes;
use poem::{
    http::{header, StatusCode},
    Request, Response,
};

use super::{
    error::Failure,
    log::Chunk,
    offset::{Offset, Start},
    request::{self, Live},
    sse,
    stream::Stream,
    time, Shared,
};

/// A `GET`.
pub(crate) async fn get(shared: &Shared, req: &Request, name: &str) -> Result<Response, Failure> {
    let query = request::read_query(req)?;
    if shared.shutdown.is_cancelled() && query.live != Live::CatchUp {
        return Err(Failure::ShuttingDown);
    }
    let stream = shared.registry.get(name)?;
    let start = query.offset.unwrap_or(Start::Beginning);
    let from = {
        let mut state = stream.lock();
        state.check_live()?;
        state.expiry.touch();
        let tail = state.log.tail();
        match start {
            Start::Beginning => 0,
            Start::Now => tail,
            Start::At(Offset(at)) if at > tail => {
                return Err(Failure::BadRequest(
                    "the offset is beyond the stream's tail".into(),
                ))
            }
            Start::At(Offset(at)) => at,
        }
    };
    match query.live {
        Live::Sse => Ok(sse::response(shared, stream, from, query.cursor)),
        Live::CatchUp => Ok(catch_up(shared, req, &stream, from, start == Start::Now)),
        Live::LongPoll => long_poll(shared, &stream, from, query.cursor.as_deref()).await,
    }
}

/// What one read saw, under the stream's lock.
struct Seen {
    chunk: Chunk,
    tail: u64,
    closed: bool,
}

fn look(shared: &Shared, stream: &Stream, from: u64) -> Result<Seen, Failure> {
    let state = stream.lock();
    state.check_live()?;
    Ok(Seen {
        chunk: state.log.read(from, shared.options.read_chunk_bytes),
        tail: state.log.tail(),
        closed: state.closed,
    })
}

fn catch_up(
    shared: &Shared,
    req: &Request,
    stream: &Arc<Stream>,
    from: u64,
    now: bool,
) -> Response {
    let seen = match look(shared, stream, from) {
        Ok(seen) => seen,
        Err(failure) => return failure.into_response(),
    };
    let next = seen.chunk.next;
    let at_end = seen.closed && next == seen.tail;
    let etag = format!(
        "\"{}:{}:{}{}\"",
        stream.id,
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
    let mut response = data_response(stream, &seen, None);
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
    stream: &Arc<Stream>,
    from: u64,
    cursor: Option<&str>,
) -> Result<Response, Failure> {
    let deadline = tokio::time::Instant::now() + shared.options.long_poll_timeout;
    loop {
        // Registered before looking, so that an append between the look and the wait wakes us.
        let mut changed = pin!(stream.changed.notified());
        changed.as_mut().enable();
        let seen = look(shared, stream, from)?;
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
fn data_response(stream: &Stream, seen: &Seen, cursor: Option<Option<&str>>) -> Response {
    let next = seen.chunk.next;
    let up_to_date = next == seen.tail;
    let body: Bytes = if stream.json {
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
        .content_type(stream.content_type.as_str())
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
