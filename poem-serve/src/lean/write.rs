//! Writing a response on the lean path: the head, then each body frame the moment it exists.

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    task::{ready, Poll},
};

use http_body_util::combinators::BoxBody;
use hyper::body::{Body as _, Bytes};
use poem::http::{
    header::{CONTENT_LENGTH, DATE, TRANSFER_ENCODING},
    response::Parts,
    HeaderValue, StatusCode,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::head::MAX_HEAD;

/// How the end of a response body is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body at all (`1xx`, `204`, `304`).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: each frame a chunk, the end a zero-length one.
    Chunked,
}

/// How a response ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The body was written to its end; the connection can serve another request.
    Complete,
    /// The client closed its side, or the body failed: the connection ends.
    Broken,
}

/// A response ready to write: its head encoded, its body, and how the body's end is told.
pub(crate) struct Prepared {
    head: Vec<u8>,
    /// The response says `Connection: close`: the connection ends after it.
    pub(crate) close: bool,
    body: BoxBody<Bytes, io::Error>,
    framing: Framing,
}

/// Encodes the head of `response`; nothing of its headers is kept beyond the encoded bytes.
pub(crate) fn prepare(response: poem::Response) -> Prepared {
    let (mut parts, body) =
        hyper::Response::<BoxBody<Bytes, io::Error>>::from(response).into_parts();
    let framing = framing(&mut parts, &body);
    Prepared {
        head: encode_head(&parts),
        close: super::head::says_close(&parts.headers),
        body,
        framing,
    }
}

/// Writes `response` on `io`. Between frames it watches the read side: a client that closes
/// its side ends the response at once (an idle stream would otherwise hold its socket until the
/// next write fails); bytes a client sends ahead (a pipelined request) are kept in `pending`.
pub(crate) async fn write_response<I>(
    io: &mut I,
    response: Prepared,
    pending: &mut Vec<u8>,
) -> io::Result<Ended>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let Prepared {
        head,
        body,
        framing,
        ..
    } = response;
    io.write_all(&head).await?;
    drop(head);
    if framing == Framing::None {
        io.flush().await?;
        return Ok(Ended::Complete);
    }
    write_body(io, body, framing == Framing::Chunked, pending).await
}

/// Writes each frame of `body` as it comes (as a chunk when `chunked`), then the end.
async fn write_body<I>(
    io: &mut I,
    mut body: BoxBody<Bytes, io::Error>,
    chunked: bool,
    pending: &mut Vec<u8>,
) -> io::Result<Ended>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = poll_fn(|cx| {
            if let Poll::Ready(gone) = watch_read_side(io, cx, pending) {
                return Poll::Ready(Step::ClientGone(gone));
            }
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Step::Frame(frame.into_data().ok())),
                Poll::Ready(Some(Err(err))) => Poll::Ready(Step::Failed(err)),
                Poll::Ready(None) => Poll::Ready(Step::End),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match next {
            Step::Frame(Some(data)) if !data.is_empty() => {
                if chunked {
                    write_chunk(io, &data).await?;
                } else {
                    io.write_all(&data).await?;
                }
                io.flush().await?;
            }
            Step::Frame(_) => {}
            Step::End => {
                if chunked {
                    io.write_all(b"0\r\n\r\n").await?;
                }
                io.flush().await?;
                return Ok(Ended::Complete);
            }
            Step::Failed(err) => {
                // Ending without the last chunk tells the client the body is incomplete.
                tracing::debug!(%err, "response body failed: closing the connection");
                return Ok(Ended::Broken);
            }
            Step::ClientGone(err) => {
                if let Some(err) = err {
                    tracing::debug!(%err, "reading from the client failed");
                }
                return Ok(Ended::Broken);
            }
        }
    }
}

enum Step {
    Frame(Option<Bytes>),
    End,
    Failed(io::Error),
    /// The client closed its side (`None`) or reading failed.
    ClientGone(Option<io::Error>),
}

/// Ready when the client has closed its side or reading fails; keeps bytes it sent ahead in
/// `pending` (up to one head's worth; more is a client that floods a stream, which ends it).
fn watch_read_side<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut std::task::Context<'_>,
    pending: &mut Vec<u8>,
) -> Poll<Option<io::Error>> {
    let mut scratch = [0u8; 512];
    loop {
        let mut read = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(err)) => return Poll::Ready(Some(err)),
            Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                if pending.len() + read.filled().len() > MAX_HEAD {
                    return Poll::Ready(Some(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the client sent more than a request head during a response",
                    )));
                }
                pending.extend_from_slice(read.filled());
            }
        }
    }
}

/// Decides the framing and makes the headers say it.
fn framing(parts: &mut Parts, body: &BoxBody<Bytes, io::Error>) -> Framing {
    if parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
    {
        parts.headers.remove(TRANSFER_ENCODING);
        parts.headers.remove(CONTENT_LENGTH);
        return Framing::None;
    }
    if !parts.headers.contains_key(DATE) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        if let Ok(now) = HeaderValue::from_str(&now) {
            parts.headers.insert(DATE, now);
        }
    }
    match body.size_hint().exact() {
        Some(length) if !parts.headers.contains_key(TRANSFER_ENCODING) => {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(length));
            Framing::Length(length)
        }
        _ => {
            parts.headers.remove(CONTENT_LENGTH);
            parts
                .headers
                .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            Framing::Chunked
        }
    }
}

/// The status line and the header fields, ready to write.
fn encode_head(parts: &Parts) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes `data` as one chunk: the size line, the data and the closing line feed in one vectored
/// write where the socket takes it all, with nothing copied or allocated per frame.
async fn write_chunk<I: AsyncWrite + Unpin>(io: &mut I, data: &Bytes) -> io::Result<()> {
    let mut size = [0u8; 18];
    let size = chunk_size_line(data.len(), &mut size);
    let mut parts = [size, &data[..], b"\r\n"];
    let mut first = 0;
    // Polled by hand, so that the slices live only within a poll: this future is part of every
    // lean connection's task.
    poll_fn(|cx| {
        while first < parts.len() {
            let slices = parts.map(io::IoSlice::new);
            let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[first..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            first = advance(&mut parts, written);
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// Drops the first `n` bytes from `parts`; returns the index of the first part with bytes left.
fn advance(parts: &mut [&[u8]; 3], mut n: usize) -> usize {
    for part in parts.iter_mut() {
        let take = n.min(part.len());
        *part = &part[take..];
        n -= take;
    }
    parts
        .iter()
        .position(|part| !part.is_empty())
        .unwrap_or(parts.len())
}

/// `len` in hex and `\r\n`, written into `buf`.
fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = 16;
    let mut rest = len;
    loop {
        at -= 1;
        buf[at] = HEX[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use poem::Body;
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn written(response: poem::Response) -> (String, Ended) {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let mut pending = Vec::new();
        let ended = write_response(&mut server, prepare(response), &mut pending)
            .await
            .unwrap();
        drop(server);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        (out, ended)
    }

    #[tokio::test]
    async fn a_streaming_body_is_chunked_and_ends_with_the_last_chunk() {
        let frames = stream::iter([
            Ok::<_, io::Error>(Bytes::from_static(b"data: a\n\n")),
            Ok(Bytes::from_static(b"data: bb\n\n")),
        ]);
        let response = poem::Response::builder()
            .content_type("text/event-stream")
            .body(Body::from_bytes_stream(frames));
        let (out, ended) = written(response).await;
        assert_eq!(ended, Ended::Complete);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("content-type: text/event-stream\r\n"), "{out}");
        assert!(out.contains("transfer-encoding: chunked\r\n"), "{out}");
        assert!(out.contains("date: "), "{out}");
        assert!(
            out.ends_with("\r\n\r\n9\r\ndata: a\n\n\r\na\r\ndata: bb\n\n\r\n0\r\n\r\n"),
            "{out}"
        );
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let mut buf = [0; 18];
        assert_eq!(chunk_size_line(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_size_line(9, &mut buf), b"9\r\n");
        assert_eq!(chunk_size_line(0x1a2b, &mut buf), b"1a2b\r\n");
        assert_eq!(
            chunk_size_line(usize::MAX, &mut buf),
            b"ffffffffffffffff\r\n"
        );
    }

    /// A socket that takes a few bytes at a time still gets the whole chunk, in order.
    #[tokio::test]
    async fn a_chunk_is_written_whole_through_short_writes() {
        let (mut client, mut server) = tokio::io::duplex(3);
        let data = Bytes::from(vec![b'x'; 40]);
        let writing = tokio::spawn(async move { write_chunk(&mut server, &data).await });
        let mut out = vec![0; 2 + 2 + 40 + 2];
        client.read_exact(&mut out).await.unwrap();
        writing.await.unwrap().unwrap();
        assert_eq!(out, [&b"28\r\n"[..], &[b'x'; 40], b"\r\n"].concat());
    }

    #[tokio::test]
    async fn a_sized_body_has_a_length_and_no_content_has_neither() {
        let (out, _) = written(
            poem::Response::builder()
                .status(StatusCode::FORBIDDEN)
                .body("no"),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{out}");
        assert!(out.contains("content-length: 2\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nno"), "{out}");
        let (out, _) = written(
            poem::Response::builder()
                .status(StatusCode::NO_CONTENT)
                .finish(),
        )
        .await;
        assert!(
            !out.contains("content-length") && !out.contains("transfer-encoding"),
            "{out}"
        );
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[tokio::test]
    async fn a_client_that_closes_ends_an_idle_stream_at_once() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let never = stream::pending::<Result<Bytes, io::Error>>();
        let response = poem::Response::builder().body(Body::from_bytes_stream(never));
        let writing = tokio::spawn(async move {
            let mut pending = Vec::new();
            write_response(&mut server, prepare(response), &mut pending).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(client);
        let ended = tokio::time::timeout(Duration::from_secs(2), writing)
            .await
            .expect("the stream ends when its client leaves")
            .unwrap();
        // The write of the head may fail or succeed first; either way the stream ended.
        assert!(matches!(ended, Ok(Ended::Broken) | Err(_)), "{ended:?}");
    }
}
