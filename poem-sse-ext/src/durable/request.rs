//! Reading a request: the stream's name, the protocol's headers and query parameters, the
//! body under its size cap. Every malformed value is a `400` with a message, never a panic.

use bytes::Bytes;
use poem::{http::header, Request};

use super::{
    budget::ClientKey,
    error::Failure,
    offset::{Offset, Start},
    producer::{ProducerClaim, MAX_ID_LEN, MAX_NUMBER},
    time,
};

/// The longest stream name accepted, in bytes of its (still percent-encoded) path.
pub(crate) const MAX_NAME_LEN: usize = 1024;

/// The stream name of a request: its path below the mount point, without the leading `/`.
pub(crate) fn stream_name(req: &Request) -> Result<String, Failure> {
    let path = req.uri().path();
    let name = path.strip_prefix('/').unwrap_or(path);
    if name.is_empty() {
        return Err(Failure::NotFound);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Failure::BadRequest(format!(
            "stream paths are at most {MAX_NAME_LEN} bytes"
        )));
    }
    let mut segments = name.split('/');
    if segments
        .clone()
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Failure::BadRequest(
            "a stream path has no empty, `.` or `..` segments".into(),
        ));
    }
    if segments.next() == Some("__ds") {
        return Err(Failure::NotFound);
    }
    Ok(name.to_owned())
}

/// The path the endpoint is mounted at (`/v1/stream` for `nest("/v1/stream", ...)`).
pub(crate) fn mount_prefix(req: &Request) -> &str {
    let full = req.original_uri().path();
    let rest = req.uri().path();
    full.strip_suffix(rest).unwrap_or("")
}

/// The name of the stream a `Stream-Forked-From` path names: the path under the same mount
/// point (`/v1/stream/a/b` → `a/b`), or a bare name.
pub(crate) fn source_name(req: &Request, path: &str) -> Result<String, Failure> {
    let under_mount = path
        .strip_prefix(mount_prefix(req))
        .and_then(|rest| rest.strip_prefix('/'));
    let name = match under_mount {
        Some(name) if path.starts_with('/') => name,
        _ if !path.starts_with('/') => path,
        _ => return Err(Failure::NotFound),
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Failure::NotFound);
    }
    Ok(name.to_owned())
}

/// The client to charge.
pub(crate) fn client(req: &Request) -> ClientKey {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

/// A header as text; `Err` when it is not visible ASCII.
pub(crate) fn header<'a>(req: &'a Request, name: &str) -> Result<Option<&'a str>, Failure> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| Failure::BadRequest(format!("the {name} header is not plain ASCII"))),
    }
}

/// `Stream-Closed: true` (case-insensitive); any other value counts as absent.
pub(crate) fn closes(req: &Request) -> bool {
    req.headers()
        .get("Stream-Closed")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The request's `Content-Type`, `None` when absent or empty.
pub(crate) fn content_type(req: &Request) -> Result<Option<String>, Failure> {
    Ok(header(req, header::CONTENT_TYPE.as_str())?
        .filter(|v| !v.is_empty())
        .map(str::to_owned))
}

/// `Stream-TTL` and `Stream-Expires-At`; both at once is a `400`.
pub(crate) fn expiry(req: &Request) -> Result<(Option<u64>, Option<i64>), Failure> {
    let ttl = match header(req, "Stream-TTL")? {
        None => None,
        Some(v) => Some(time::parse_ttl(v).ok_or_else(|| {
            Failure::BadRequest(
                "Stream-TTL must be whole seconds, digits only, without leading zeros".into(),
            )
        })?),
    };
    let expires_at = match header(req, "Stream-Expires-At")? {
        None => None,
        Some(v) => Some(time::parse_rfc3339(v).ok_or_else(|| {
            Failure::BadRequest(
                "Stream-Expires-At must be an RFC 3339 timestamp such as 2026-01-02T03:04:05Z"
                    .into(),
            )
        })?),
    };
    if ttl.is_some() && expires_at.is_some() {
        return Err(Failure::BadRequest(
            "send Stream-TTL or Stream-Expires-At, not both".into(),
        ));
    }
    Ok((ttl, expires_at))
}

/// A non-negative decimal integer without sign or leading zeros, at most 2^53 - 1.
pub(crate) fn number(value: &str) -> Option<u64> {
    let canonical = !value.is_empty()
        && value.len() <= 16
        && value.bytes().all(|b| b.is_ascii_digit())
        && (!value.starts_with('0') || value.len() == 1);
    canonical
        .then(|| value.parse().ok())
        .flatten()
        .filter(|n| *n <= MAX_NUMBER)
}

/// The producer headers: all three or none.
pub(crate) fn producer(req: &Request) -> Result<Option<ProducerClaim>, Failure> {
    let id = header(req, "Producer-Id")?;
    let epoch = header(req, "Producer-Epoch")?;
    let seq = header(req, "Producer-Seq")?;
    let (id, epoch, seq) =
        match (id, epoch, seq) {
            (None, None, None) => return Ok(None),
            (Some(id), Some(epoch), Some(seq)) => (id, epoch, seq),
            _ => return Err(Failure::BadRequest(
                "Producer-Id, Producer-Epoch and Producer-Seq go together: send all three or none"
                    .into(),
            )),
        };
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Failure::BadRequest(format!(
            "Producer-Id must have 1 to {MAX_ID_LEN} bytes"
        )));
    }
    let bad =
        |name: &str| Failure::BadRequest(format!("{name} must be an integer from 0 to 2^53-1"));
    Ok(Some(ProducerClaim {
        id: id.to_owned(),
        epoch: number(epoch).ok_or_else(|| bad("Producer-Epoch"))?,
        seq: number(seq).ok_or_else(|| bad("Producer-Seq"))?,
    }))
}

/// The query of a read.
#[derive(Debug, Default)]
pub(crate) struct ReadQuery {
    /// `None` when the request has no `offset`.
    pub(crate) offset: Option<Start>,
    pub(crate) live: Live,
    pub(crate) cursor: Option<String>,
}

/// The read mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Live {
    #[default]
    CatchUp,
    LongPoll,
    Sse,
}

/// Parses the query of a `GET`: one `offset` at most, a known `live` mode.
pub(crate) fn read_query(req: &Request) -> Result<ReadQuery, Failure> {
    let mut query = ReadQuery::default();
    let mut offsets = 0;
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*key {
            "offset" => {
                offsets += 1;
                if offsets > 1 {
                    return Err(Failure::BadRequest(
                        "send one offset parameter, not several".into(),
                    ));
                }
                query.offset = Some(Start::parse(&value)?);
            }
            "live" => {
                query.live = match &*value {
                    "long-poll" => Live::LongPoll,
                    "sse" => Live::Sse,
                    _ => return Err(Failure::BadRequest("live must be long-poll or sse".into())),
                }
            }
            "cursor" => query.cursor = Some(value.into_owned()),
            _ => {}
        }
    }
    if query.live != Live::CatchUp && query.offset.is_none() {
        return Err(Failure::BadRequest(
            "live reads need an offset (-1 for the start, now for the tail)".into(),
        ));
    }
    Ok(query)
}

/// The fork headers of a `PUT`, as a source name, an offset (`None`: the tail) and a
/// sub-offset; `None` when the request is no fork.
pub(crate) fn fork(req: &Request) -> Result<Option<(String, Option<Offset>, u64)>, Failure> {
    let from = header(req, "Stream-Forked-From")?;
    let offset = header(req, "Stream-Fork-Offset")?;
    let sub = header(req, "Stream-Fork-Sub-Offset")?;
    let Some(from) = from else {
        if offset.is_some() || sub.is_some() {
            return Err(Failure::BadRequest(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From".into(),
            ));
        }
        return Ok(None);
    };
    let source = source_name(req, from)?;
    let offset = match offset {
        None => None,
        Some(token) => match Start::parse(token)? {
            Start::Beginning => Some(Offset::ZERO),
            Start::Now => None,
            Start::At(offset) => Some(offset),
        },
    };
    let sub = match sub {
        None => 0,
        Some(v) => number(v).ok_or_else(|| {
            Failure::BadRequest(
                "Stream-Fork-Sub-Offset must be a non-negative integer without leading zeros"
                    .into(),
            )
        })?,
    };
    if sub > 0 && offset.is_none() {
        return Err(Failure::BadRequest(
            "Stream-Fork-Sub-Offset needs Stream-Fork-Offset".into(),
        ));
    }
    Ok(Some((source, offset, sub)))
}

/// The body, refused with `413` past `limit` bytes (by its `Content-Length` before reading).
pub(crate) async fn body(req: &mut Request, limit: usize) -> Result<Bytes, Failure> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Failure::TooLarge(limit));
    }
    read_body(req.take_body(), limit).await
}

/// Reads `body`, refused with `413` past `limit` bytes.
pub(crate) async fn read_body(body: poem::Body, limit: usize) -> Result<Bytes, Failure> {
    body.into_bytes_limit(limit).await.map_err(|e| match e {
        poem::error::ReadBodyError::PayloadTooLarge => Failure::TooLarge(limit),
        other => Failure::BadRequest(format!("the body could not be read: {other}")),
    })
}

/// `Stream-Seq`, at most [`MAX_ID_LEN`] bytes.
pub(crate) fn stream_seq(req: &Request) -> Result<Option<String>, Failure> {
    match header(req, "Stream-Seq")? {
        Some(seq) if seq.len() > MAX_ID_LEN => Err(Failure::BadRequest(format!(
            "Stream-Seq must have at most {MAX_ID_LEN} bytes"
        ))),
        seq => Ok(seq.map(str::to_owned)),
    }
}
