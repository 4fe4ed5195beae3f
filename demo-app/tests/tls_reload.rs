//! Certificates are reloaded when their files change: new handshakes get the new certificate,
//! streams already open go on.

mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::{test_dir, Demo};
use testkit::{free_port, SseConnection};

/// Writes a fresh self-signed certificate for 127.0.0.1 (key first, as a careful rotation does)
/// and returns its DER.
fn write_cert(dir: &Path) -> Vec<u8> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    certified.cert.der().to_vec()
}

/// The certificate a new TLS connection is served.
async fn served_cert(demo: &Demo) -> Vec<u8> {
    // A new client per probe: a new connection, so a new handshake.
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .tls_info(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client.get(demo.url("/healthz")).send().await.unwrap();
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .unwrap();
    info.peer_certificate().unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_handshakes_get_the_new_certificate_and_open_streams_go_on() {
    let dir = test_dir("tls-reload");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let first = write_cert(&tls);
    let demo = Demo::start(
        &dir,
        free_port(),
        &["--cert", "tls/cert.pem", "--key", "tls/key.pem"],
    )
    .await;
    assert_eq!(served_cert(&demo).await, first);

    let streams = common::client();
    let mut stream = SseConnection::connect(&streams, &demo.url("/events/sys.cpu"), None)
        .await
        .unwrap();
    stream.next_event(Duration::from_secs(5)).await.unwrap();

    let second = write_cert(&tls);
    let started = Instant::now();
    while served_cert(&demo).await != second {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "certificate not reloaded:\n{}",
            demo.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "new certificate served {:?} after the files changed",
        started.elapsed()
    );
    assert!(
        demo.log().contains("TLS certificate reloaded"),
        "{}",
        demo.log()
    );

    // The stream opened under the first certificate is still live.
    let events = stream.next_events(2, Duration::from_secs(5)).await.unwrap();
    assert!(events.iter().all(|e| e.event_type == "sample"));
    assert!(!stream.is_ended());

    // A broken pair is refused, and the current certificate stays in use.
    std::fs::write(tls.join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(served_cert(&demo).await, second);
    assert!(
        demo.log().contains("keeping the previous one"),
        "{}",
        demo.log()
    );
}
