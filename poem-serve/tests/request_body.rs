//! A request body that stops arriving half-way is an error for the handler that reads it, after
//! the request body timeout, and its HTTP/1 connection closes.

mod common;

use std::{io, time::Duration};

use common::open_for;
use futures_util::StreamExt;
use poem::{handler, http::StatusCode, post, web::Data, Body, EndpointExt, Route};
use poem_serve::{BodyTimeout, StreamServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};

const BODY_TIMEOUT: Duration = Duration::from_millis(300);
const LIMIT: Duration = Duration::from_secs(3);

/// Reads the whole body, reports to the test what reading it gave, and answers `400` when it
/// could not be read.
#[handler]
async fn upload(
    body: Body,
    seen: Data<&mpsc::UnboundedSender<io::Result<usize>>>,
) -> poem::Result<String> {
    let read = body
        .into_bytes()
        .await
        .map(|b| b.len())
        .map_err(|e| match e {
            poem::error::ReadBodyError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        });
    let answer = match &read {
        Ok(len) => Ok(format!("{len} bytes")),
        Err(_) => Err(poem::Error::from_status(StatusCode::BAD_REQUEST)),
    };
    let _ = seen.send(read);
    answer
}

/// Whether `err` is, or wraps, the server's `BodyTimeout` (poem's `into_bytes` wraps the body's
/// error in one more `io::Error`).
fn is_body_timeout(err: &io::Error) -> bool {
    match err.get_ref() {
        Some(inner) if inner.is::<BodyTimeout>() => err.kind() == io::ErrorKind::TimedOut,
        Some(inner) => inner
            .downcast_ref::<io::Error>()
            .is_some_and(is_body_timeout),
        None => false,
    }
}

struct Uploads {
    addr: std::net::SocketAddr,
    seen: mpsc::UnboundedReceiver<io::Result<usize>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve_upload() -> Uploads {
    let server = StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .request_body_timeout(Some(BODY_TIMEOUT));
    let addr = server.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Route::new().at("/upload", post(upload)).data(tx);
    tokio::spawn(server.run_with_graceful_shutdown(app, async {
        let _ = stopped.await;
    }));
    Uploads {
        addr,
        seen,
        _stop: stop,
    }
}

async fn next_seen(uploads: &mut Uploads) -> io::Result<usize> {
    tokio::time::timeout(LIMIT, uploads.seen.recv())
        .await
        .unwrap_or_else(|_| panic!("the handler still waits for the body after {LIMIT:?}"))
        .unwrap_or_else(|| panic!("the handler is gone"))
}

#[tokio::test]
async fn an_http1_body_that_stalls_is_an_error_and_the_connection_closes() {
    let mut uploads = serve_upload().await;
    let mut client = TcpStream::connect(uploads.addr).await.unwrap();
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = next_seen(&mut uploads).await.unwrap_err();
    assert!(is_body_timeout(&err), "{err:?}");
    assert!(started.elapsed() >= BODY_TIMEOUT - Duration::from_millis(50));
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
    assert!(
        open_for(&mut client, LIMIT).await.is_some(),
        "the connection stayed open after the body timed out"
    );
}

#[tokio::test]
async fn a_slow_body_that_keeps_coming_is_read_whole() {
    let mut uploads = serve_upload().await;
    let mut client = TcpStream::connect(uploads.addr).await.unwrap();
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n")
        .await
        .unwrap();
    // Nine chunks, each a quarter of the timeout apart (a busy machine may delay one by half
    // the timeout and the claim still holds); together more than twice as long as it.
    for byte in b"hello, yo" {
        tokio::time::sleep(BODY_TIMEOUT / 4).await;
        client.write_all(&[*byte]).await.unwrap();
    }
    assert_eq!(next_seen(&mut uploads).await.unwrap(), 9);
}

#[tokio::test]
async fn an_http2_body_that_stalls_is_an_error() {
    let mut uploads = serve_upload().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // One chunk, then nothing and no end.
    let chunks = futures_util::stream::once(async { Ok::<_, io::Error>("0123456789") })
        .chain(futures_util::stream::pending());
    let request = client
        .post(format!("http://{}/upload", uploads.addr))
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let sending = tokio::spawn(request);
    let err = next_seen(&mut uploads).await.unwrap_err();
    assert!(is_body_timeout(&err), "{err:?}");
    sending.abort();
}
