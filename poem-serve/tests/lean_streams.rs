//! HTTP/1.1 event streams on the lean path: what a client sees is HTTP/1.1 as it should be.
//!
//! An `EventSource` request (a `GET` accepting `text/event-stream`) is served without hyper's
//! connection buffers; these tests hold it to the same wire behaviour: each event flushed the
//! moment it is published, keep-alive and pipelining after a finished stream, other requests on
//! the same connection, a client that leaves, the header read timeout and shutdown.

mod common;

use std::time::{Duration, Instant};

use futures_util::stream;
use poem::{get, handler, IntoResponse, Route};
use poem_serve::StreamServer;
use poem_sse_ext::{http::SseResponse, Event, Hub};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SSE_GET: &str = "GET /events/a HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";

#[handler]
fn plain() -> &'static str {
    "hello"
}

#[handler]
fn finite() -> SseResponse<impl futures_util::Stream<Item = Event> + Send> {
    SseResponse::new(stream::iter([Event::text("one"), Event::text("two")])).no_heartbeat()
}

fn app() -> Route {
    Route::new()
        .at("/plain", get(plain))
        .at("/finite", get(finite))
}

async fn start(server: StreamServer) -> (Hub, common::Running) {
    let hub = Hub::builder().history(16).no_heartbeat().build();
    let running = common::serve_app(server, &hub, app());
    (hub, running)
}

async fn bind() -> StreamServer {
    StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"))
}

/// Reads from `socket` into `seen` until it contains `want`, for at most two seconds.
async fn read_until(socket: &mut TcpStream, seen: &mut String, want: &str) {
    read_until_count(socket, seen, want, 1).await;
}

/// Reads from `socket` into `seen` until it contains `want` `count` times, for at most two
/// seconds.
async fn read_until_count(socket: &mut TcpStream, seen: &mut String, want: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 4096];
    while seen.matches(want).count() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, socket.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{want:?} did not arrive; got {seen:?}"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(n > 0, "closed before {want:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(3), "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn each_event_arrives_as_a_chunk_the_moment_it_is_published() {
    let (hub, running) = start(bind().await).await;
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    socket.write_all(SSE_GET.as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut socket, &mut seen, "\r\n\r\n").await;
    let head = seen.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{seen}");
    assert!(head.contains("content-type: text/event-stream"), "{seen}");
    assert!(head.contains("transfer-encoding: chunked"), "{seen}");
    for text in ["first", "second", "third"] {
        let id = hub.publish("a", Event::text(text)).await.unwrap();
        // Not the next publish, nor a buffer filling: this event alone brings its chunk.
        read_until(
            &mut socket,
            &mut seen,
            &format!("id: {id}\ndata: {text}\n\n\r\n"),
        )
        .await;
    }
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_an_idle_stream_is_uncounted_at_once() {
    let (hub, running) = start(bind().await).await;
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    socket.write_all(SSE_GET.as_bytes()).await.unwrap();
    wait_for("the stream opens", || hub.metrics().total.open_streams == 1).await;
    drop(socket);
    // No heartbeat and no event: only the read side can tell that the client left.
    wait_for("the stream closes when its client leaves", || {
        hub.metrics().total.open_streams == 0
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn after_a_finished_stream_the_connection_serves_the_next_requests_pipelined() {
    let (_hub, running) = start(bind().await).await;
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    // Three requests in one write: a finite event stream, a plain request, another stream.
    let stream = "GET /finite HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    let other = "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n";
    socket
        .write_all(format!("{stream}{other}{stream}").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    read_until_count(&mut socket, &mut seen, "data: two\n\n\r\n0\r\n\r\n", 2).await;
    let responses: Vec<_> = seen.split("HTTP/1.1 200 OK").skip(1).collect();
    assert_eq!(responses.len(), 3, "{seen}");
    for stream in [responses[0], responses[2]] {
        let (one, two) = (stream.find("data: one"), stream.find("data: two"));
        assert!(one.is_some() && one < two, "{seen}");
    }
    assert!(responses[1].ends_with("hello"), "{seen}");
    running.stop().await;
}

#[tokio::test]
async fn an_event_stream_after_another_request_on_the_same_connection_is_served() {
    let (hub, running) = start(bind().await).await;
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    socket
        .write_all(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut socket, &mut seen, "hello").await;
    socket.write_all(SSE_GET.as_bytes()).await.unwrap();
    wait_for("the stream opens", || hub.metrics().total.open_streams == 1).await;
    let id = hub.publish("a", Event::text("live")).await.unwrap();
    read_until(&mut socket, &mut seen, &format!("id: {id}\ndata: live\n")).await;
    running.stop().await;
}

#[tokio::test]
async fn an_idle_connection_after_a_finished_stream_is_closed_at_the_header_read_timeout() {
    let server = bind().await.header_read_timeout(Duration::from_millis(300));
    let (_hub, running) = start(server).await;
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    socket
        .write_all(b"GET /finite HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut socket, &mut seen, "0\r\n\r\n").await;
    let open = common::open_for(&mut socket, Duration::from_secs(3)).await;
    let open = open.unwrap_or_else(|| panic!("an idle connection stays open"));
    assert!(open < Duration::from_secs(2), "closed after {open:?}");
    running.stop().await;
}

#[tokio::test]
async fn connection_close_ends_the_connection_after_the_response() {
    let (_hub, running) = start(bind().await).await;
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    socket
        .write_all(
            b"GET /finite HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut all))
        .await
        .unwrap_or_else(|_| panic!("the connection stayed open"))
        .unwrap();
    assert!(String::from_utf8_lossy(&all).ends_with("0\r\n\r\n"));
    running.stop().await;
}

#[handler]
fn finite_then_close() -> poem::Response {
    let events = stream::iter([Event::text("one"), Event::text("two")]);
    let mut response = SseResponse::new(events).no_heartbeat().into_response();
    response
        .headers_mut()
        .insert("connection", poem::http::HeaderValue::from_static("close"));
    response
}

#[tokio::test]
async fn a_response_that_says_close_ends_the_connection() {
    let hub = Hub::builder().no_heartbeat().build();
    let app = app().at("/closing", get(finite_then_close));
    let running = common::serve_app(bind().await, &hub, app);
    let mut socket = TcpStream::connect(running.addr).await.unwrap();
    socket
        .write_all(b"GET /closing HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut all))
        .await
        .unwrap_or_else(|_| panic!("the connection stayed open"))
        .unwrap();
    assert!(String::from_utf8_lossy(&all).ends_with("0\r\n\r\n"));
    running.stop().await;
}

#[tokio::test]
async fn shutdown_ends_lean_streams_at_once() {
    let (hub, running) = start(bind().await).await;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut socket = TcpStream::connect(running.addr).await.unwrap();
        socket.write_all(SSE_GET.as_bytes()).await.unwrap();
        sockets.push(socket);
    }
    wait_for("the streams open", || {
        hub.metrics().total.open_streams == 20
    })
    .await;
    let started = Instant::now();
    running.stop().await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    for mut socket in sockets {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(1), socket.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "a stream stayed open after shutdown");
        assert!(
            String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
            "not ended cleanly"
        );
    }
}

#[tokio::test]
async fn a_malformed_or_unsupported_head_is_answered_by_hyper() {
    let (_hub, running) = start(bind().await).await;
    for head in [
        "GET /plain HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nBad Header: x\r\n\r\n",
        "GET /events/a HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: x\r\n\r\n",
    ] {
        let mut socket = TcpStream::connect(running.addr).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut seen = String::new();
        read_until(&mut socket, &mut seen, "\r\n").await;
        assert!(seen.starts_with("HTTP/1.1 400"), "{head:?} got {seen:?}");
    }
    running.stop().await;
}
