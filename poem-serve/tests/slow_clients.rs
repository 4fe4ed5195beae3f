//! Clients that stop reading or never finish their request are disconnected.

mod common;

use std::time::{Duration, Instant};

use poem_serve::StreamServer;
use poem_sse_ext::{Event, Hub};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A client that stays connected but never reads: hyper stops polling its body, so only the
/// socket can tell. With `TCP_USER_TIMEOUT` the kernel ends it and the hub uncounts it.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stopped_reading_is_disconnected() {
    // hyper serves a request that does not ask for an event stream.
    stalled_reader_is_disconnected("GET /events/a HTTP/1.1\r\nHost: x\r\n\r\n").await;
}

/// The same on the lean path, which serves what an `EventSource` asks for.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_that_stopped_reading_is_disconnected() {
    stalled_reader_is_disconnected(
        "GET /events/a HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
}

#[cfg(target_os = "linux")]
async fn stalled_reader_is_disconnected(head: &str) {
    let hub = Hub::builder().history(16).no_heartbeat().build();
    // A small send buffer (inherited by accepted sockets) takes little publishing to fill, so
    // that the buffers are full well inside the timeout even on a loaded machine.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_send_buffer_size(32 << 10).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(16).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener.into()).unwrap();
    let server =
        StreamServer::from_listener(listener).tcp_user_timeout(Some(Duration::from_secs(2)));
    let running = common::serve_hub(server, &hub);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&running.addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut stalled = TcpStream::from_std(socket.into()).unwrap();
    stalled.write_all(head.as_bytes()).await.unwrap();
    let opened = Instant::now();
    while hub.metrics().total.open_streams == 0 {
        assert!(
            opened.elapsed() < Duration::from_secs(5),
            "stream not opened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Fill the server's send buffer and the client's receive window; the client reads nothing.
    // The kernel's timer starts when the window shuts, early in this loop: it must end well
    // inside the timeout.
    let payload = "x".repeat(16 << 10);
    for _ in 0..100 {
        hub.publish("a", Event::text(payload.as_str()))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    let filled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hub.metrics().total.open_streams,
        1,
        "still counted before the timeout"
    );
    while hub.metrics().total.open_streams != 0 {
        assert!(
            filled.elapsed() < Duration::from_secs(15),
            "the stalled client is still counted after {:?}",
            filled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stalled.shutdown().await;
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_no_headers_is_cut_off() {
    let hub = Hub::new();
    let server = StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .header_read_timeout(Duration::from_millis(200));
    let running = common::serve_hub(server, &hub);
    let mut slow = TcpStream::connect(running.addr).await.unwrap();
    slow.write_all(b"GET /events/a HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    // The server answers 408 or just closes; either way the read ends.
    let read = tokio::time::timeout(Duration::from_secs(3), async {
        while slow.read(&mut buf).await.unwrap_or(0) > 0 {}
    })
    .await;
    assert!(read.is_ok(), "connection still open after 3 s");
    assert!(started.elapsed() >= Duration::from_millis(150));
    running.stop().await;
}
