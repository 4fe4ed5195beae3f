//! One client address can hold at most `max_connections_per_ip` connections; more are closed at
//! once, while other addresses are still served.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use common::{open_for, serve_hub};
use poem_serve::StreamServer;
use poem_sse_ext::Hub;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const MAX_PER_IP: usize = 2;

/// A connection to `server` from the loopback address `source`.
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// Whether a stream request on `stream` is answered `200`.
async fn served(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /events/a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut head)).await;
    matches!(read, Ok(Ok(_))) && &head == b"HTTP/1.1 200"
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_other_addresses_are_served() {
    let hub = Hub::new();
    let server = StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .max_connections_per_ip(Some(MAX_PER_IP));
    let running = serve_hub(server, &hub);
    let (first, second) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));

    // Two idle connections from 127.0.0.1 use up its share (the first-request deadline is 10 s).
    let mut held = Vec::new();
    for _ in 0..MAX_PER_IP {
        held.push(connect_from(first, running.addr).await);
    }
    let mut over = connect_from(first, running.addr).await;
    let open = open_for(&mut over, Duration::from_secs(3)).await;
    assert!(
        open.is_some_and(|open| open < Duration::from_secs(1)),
        "the connection over the cap stayed open {open:?}"
    );

    let mut other = connect_from(second, running.addr).await;
    assert!(served(&mut other).await, "127.0.0.2 is not served");

    // One of 127.0.0.1's connections leaves: its place is free again.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut again = connect_from(first, running.addr).await;
        if served(&mut again).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "127.0.0.1 is still refused after one of its connections closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
}
