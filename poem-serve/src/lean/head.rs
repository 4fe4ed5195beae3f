//! Reading an HTTP/1.1 request head, and deciding whether the lean path serves it.

use poem::http::{
    header::{ACCEPT, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE},
    request::Parts,
    HeaderName, HeaderValue, Method, Request, Uri, Version,
};

/// The longest request head the lean path reads; a longer one goes to hyper (which answers
/// `431`).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The most header fields of a request the lean path parses; more go to hyper.
const MAX_HEADERS: usize = 64;
/// What an HTTP/2 connection starts with (prior knowledge, or ALPN `h2` over TLS).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// What the bytes read so far are.
#[derive(Debug)]
pub(crate) enum Head {
    /// Not enough bytes yet to tell.
    Partial,
    /// A complete request head that asks for an event stream, `len` bytes long: the lean path
    /// serves it.
    EventStream { parts: Box<Parts>, len: usize },
    /// Anything else: HTTP/2, HTTP/1.0, a request with a body or an upgrade, another media
    /// type, a head the lean path does not parse or one over [`MAX_HEAD`]. hyper serves it.
    Other,
}

/// Classifies the start of `buf`.
pub(crate) fn classify(buf: &[u8]) -> Head {
    let common = buf.len().min(H2_PREFACE.len());
    if buf[..common] == H2_PREFACE[..common] {
        return if buf.len() >= H2_PREFACE.len() {
            Head::Other
        } else {
            Head::Partial
        };
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => match event_stream_request(&request) {
            Some(parts) => Head::EventStream {
                parts: Box::new(parts),
                len,
            },
            None => Head::Other,
        },
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Head::Partial,
        Ok(httparse::Status::Partial) | Err(_) => Head::Other,
    }
}

/// The request as `http` parts when it is an HTTP/1.1 `GET` without a body or an upgrade that
/// accepts `text/event-stream` (what every `EventSource` sends); `None` otherwise.
fn event_stream_request(request: &httparse::Request<'_, '_>) -> Option<Parts> {
    if request.method != Some("GET") || request.version != Some(1) {
        return None;
    }
    let uri: Uri = request.path?.parse().ok()?;
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = Method::GET;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers.reserve(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        parts.headers.append(name, value);
    }
    let headers = &parts.headers;
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .any(|length| length.as_bytes() != b"0");
    let upgrade = headers.contains_key(UPGRADE)
        || headers.get_all(CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        });
    let wants_events = headers.get_all(ACCEPT).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| media_type(item).eq_ignore_ascii_case(b"text/event-stream"))
    });
    (wants_events && !has_body && !upgrade).then_some(parts)
}

/// The media type of one `Accept` item, without its parameters.
fn media_type(item: &[u8]) -> &[u8] {
    let end = item.iter().position(|&b| b == b';').unwrap_or(item.len());
    item[..end].trim_ascii()
}

/// Whether the request asked to close the connection after its response.
pub(crate) fn wants_close(parts: &Parts) -> bool {
    says_close(&parts.headers)
}

/// Whether `Connection` in `headers` (a request's or a response's) says `close`.
pub(crate) fn says_close(headers: &poem::http::HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_stream(head: &str) -> Parts {
        match classify(head.as_bytes()) {
            Head::EventStream { parts, len } => {
                assert_eq!(len, head.len());
                *parts
            }
            other => panic!("{head:?} was classified {other:?}"),
        }
    }

    fn is_other(head: &str) -> bool {
        matches!(classify(head.as_bytes()), Head::Other)
    }

    #[test]
    fn an_event_source_request_takes_the_lean_path() {
        let parts = event_stream(
            "GET /events/a?lastEventId=7 HTTP/1.1\r\nHost: x\r\n\
             Accept: text/event-stream\r\nLast-Event-ID: 5\r\n\r\n",
        );
        assert_eq!(parts.uri.path(), "/events/a");
        assert_eq!(parts.uri.query(), Some("lastEventId=7"));
        assert_eq!(parts.headers["last-event-id"], "5");
        assert!(!wants_close(&parts));
        let parts = event_stream(
            "GET / HTTP/1.1\r\naccept: text/html;q=0.9, TEXT/Event-Stream ; q=1\r\n\
             connection: keep-alive, close\r\n\r\n",
        );
        assert!(wants_close(&parts));
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        assert!(is_other("GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n"));
        assert!(is_other(
            "GET / HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n"
        ));
        assert!(is_other(
            "POST / HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n"
        ));
        assert!(is_other(
            "HEAD / HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n"
        ));
        assert!(is_other(
            "GET / HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(is_other(
            "GET / HTTP/1.1\r\nAccept: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(is_other(
            "GET / HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: Upgrade\r\n\r\n"
        ));
        assert!(is_other(
            "GET / HTTP/1.1\r\nAccept: text/event-streams\r\n\r\n"
        ));
        assert!(is_other("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(is_other("GARBAGE\r\n\r\n"));
        // A value no `HeaderValue` takes (a raw DEL byte) is left to hyper to refuse.
        assert!(is_other(
            "GET / HTTP/1.1\r\nAccept: text/event-stream\r\nX: a\x7fb\r\n\r\n"
        ));
    }

    #[test]
    fn an_unfinished_head_waits_for_more_up_to_the_limit() {
        assert!(matches!(classify(b"PRI * HT"), Head::Partial));
        assert!(matches!(
            classify(b"GET / HTTP/1.1\r\nAccept: te"),
            Head::Partial
        ));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(is_other(&long));
    }
}
