//! A connection must send its first request within the header read timeout, counted from
//! accept: the TLS handshake, protocol detection, the HTTP/2 preface and SETTINGS, and the first
//! request head (or HEADERS frame) all fall inside it. One that stalls anywhere there is closed;
//! one that has sent its request is not cut by it.

mod common;

use std::time::Duration;

use common::{open_for, serve_hub, TestCert};
use poem_serve::StreamServer;
use poem_sse_ext::{Event, Hub};
use rustls::pki_types::ServerName;
use tokio::{io::AsyncWriteExt, net::TcpStream};

const DEADLINE: Duration = Duration::from_millis(300);
/// Far beyond the deadline, far below anything else that would close the socket (the HTTP/2
/// PING comes after 20 s).
const LIMIT: Duration = Duration::from_secs(3);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

async fn server() -> StreamServer {
    StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .header_read_timeout(DEADLINE)
}

fn assert_closed_after_the_deadline(open: Option<Duration>, what: &str) {
    let open = open.unwrap_or_else(|| panic!("{what}: still open after {LIMIT:?}"));
    assert!(
        open >= DEADLINE - Duration::from_millis(50),
        "{what}: closed after {open:?}, before the deadline"
    );
}

#[tokio::test]
async fn a_cleartext_connection_that_sends_nothing_is_closed() {
    let hub = Hub::new();
    let running = serve_hub(server().await, &hub);
    let mut idle = TcpStream::connect(running.addr).await.unwrap();
    assert_closed_after_the_deadline(open_for(&mut idle, LIMIT).await, "idle socket");
    running.stop().await;
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed() {
    let hub = Hub::new();
    let running = serve_hub(server().await, &hub);
    let mut partial = TcpStream::connect(running.addr).await.unwrap();
    partial.write_all(&H2_PREFACE[..16]).await.unwrap();
    assert_closed_after_the_deadline(open_for(&mut partial, LIMIT).await, "partial preface");
    running.stop().await;
}

#[tokio::test]
async fn an_http2_connection_that_never_opens_a_stream_is_closed() {
    let hub = Hub::new();
    let running = serve_hub(server().await, &hub);
    let mut streamless = TcpStream::connect(running.addr).await.unwrap();
    streamless.write_all(H2_PREFACE).await.unwrap();
    streamless.write_all(H2_EMPTY_SETTINGS).await.unwrap();
    assert_closed_after_the_deadline(
        open_for(&mut streamless, LIMIT).await,
        "HTTP/2 connection without a stream",
    );
    running.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed() {
    let cert = TestCert::new("stalled-handshake");
    let hub = Hub::new();
    let running = serve_hub(server().await.tls(cert.server.clone()), &hub);
    let mut stalled = TcpStream::connect(running.addr).await.unwrap();
    // The first bytes of a ClientHello record, then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    assert_closed_after_the_deadline(open_for(&mut stalled, LIMIT).await, "stalled handshake");
    running.stop().await;
}

#[tokio::test]
async fn a_tls_connection_that_sends_nothing_after_the_handshake_is_closed() {
    let cert = TestCert::new("silent-after-handshake");
    let hub = Hub::new();
    let running = serve_hub(server().await.tls(cert.server.clone()), &hub);
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = cert.client.connect(name, tcp).await.unwrap();
    assert_closed_after_the_deadline(
        open_for(&mut tls, LIMIT).await,
        "TLS connection without a request",
    );
    running.stop().await;
}

/// The deadline covers the wait for the first request only: streams opened in time, over
/// HTTP/1.1 and HTTP/2, still deliver events long after it.
#[tokio::test]
async fn streams_opened_in_time_outlive_the_deadline() {
    let hub = Hub::builder().no_heartbeat().build();
    let running = serve_hub(server().await, &hub);
    let url = format!("http://{}/events/a", running.addr);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let mut streams = Vec::new();
    for client in [&h1, &h2] {
        streams.push(
            testkit::SseConnection::connect(client, &url, None)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(DEADLINE * 3).await;
    hub.publish("a", Event::text("late")).await.unwrap();
    for stream in &mut streams {
        let event = stream.next_event(Duration::from_secs(2)).await.unwrap();
        assert_eq!(event.map(|e| e.data), Some("late".to_owned()));
    }
    running.stop().await;
}
