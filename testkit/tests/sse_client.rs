//! `SseConnection` against a scripted HTTP/1.1 server on the loopback interface.

use std::time::{Duration, Instant};

use testkit::sse_client::{Error, SseConnection};
use testkit::ParsedEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SHORT: Duration = Duration::from_millis(150);
const LONG: Duration = Duration::from_secs(5);

enum Step {
    Send(&'static [u8]),
    Sleep(Duration),
    /// Keeps the connection open until the test ends.
    Hang,
}

struct Script {
    url: String,
    /// The request head the client sent.
    request: oneshot::Receiver<String>,
}

/// Serves one connection: answers any request with an SSE response head, then plays `steps`
/// and closes the connection (unless told to hang). With `respond == false` it never answers.
async fn serve(respond: bool, steps: Vec<Step>) -> Script {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events/test", listener.local_addr().unwrap());
    let (request_tx, request) = oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending its request");
            head.extend_from_slice(&buf[..n]);
        }
        let _ = request_tx.send(String::from_utf8_lossy(&head).into_owned());
        if !respond {
            tokio::time::sleep(LONG * 2).await;
            return;
        }
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  cache-control: no-cache\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        for step in steps {
            match step {
                // The client may hang up first; that ends the script.
                Step::Send(bytes) => {
                    if socket.write_all(bytes).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(duration) => tokio::time::sleep(duration).await,
                Step::Hang => tokio::time::sleep(LONG * 2).await,
            }
        }
    });
    Script { url, request }
}

fn message(data: &str, id: &str) -> ParsedEvent {
    ParsedEvent::new("message", data, id)
}

#[tokio::test]
async fn reads_events_as_they_arrive_until_the_stream_ends() {
    let pause = Duration::from_millis(50);
    let script = serve(
        true,
        vec![
            Step::Send(b"retry: 2000\n\n"),
            Step::Sleep(pause),
            Step::Send(b"id: 1\ndata: one\n\n"),
            Step::Sleep(pause),
            Step::Send(b": heartbeat\n\n"),
            Step::Sleep(pause),
            Step::Send(b"id: 2\nevent: tick\ndata: two\n\n"),
            Step::Sleep(pause),
            Step::Send(b"data: unterminated\n"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let mut sse = SseConnection::connect(&client, &script.url, Some("0-41"))
        .await
        .unwrap();

    let request = script.request.await.unwrap().to_ascii_lowercase();
    assert!(request.contains("last-event-id: 0-41\r\n"), "{request}");
    assert!(
        request.contains("accept: text/event-stream\r\n"),
        "{request}"
    );
    assert_eq!(sse.status(), reqwest::StatusCode::OK);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));

    assert_eq!(
        sse.next_event(LONG).await.unwrap(),
        Some(message("one", "1"))
    );
    assert_eq!(sse.retry(), Some(2000));
    assert_eq!(
        sse.next_event(LONG).await.unwrap(),
        Some(ParsedEvent::new("tick", "two", "2"))
    );
    assert_eq!(sse.comments(), 1);
    assert_eq!(sse.next_event(LONG).await.unwrap(), None);
    assert!(sse.is_ended());
    assert_eq!(sse.last_event_id(), "2");

    // The pauses keep the writes apart, so each arrived as a chunk of its own.
    let chunks = sse.raw_chunks();
    assert_eq!(chunks.len(), 5, "{chunks:?}");
    assert_eq!(&chunks[1].bytes[..], b"id: 1\ndata: one\n\n");
    assert!(chunks
        .windows(2)
        .all(|w| w[0].received_at <= w[1].received_at));
    assert_eq!(sse.take_raw_chunks().len(), 5);
    assert!(sse.raw_chunks().is_empty());
}

#[tokio::test]
async fn waits_are_bounded_and_keep_what_arrived() {
    let script = serve(true, vec![Step::Send(b"data: a\n\n: ping\n\n"), Step::Hang]).await;
    let client = reqwest::Client::new();
    let mut sse = SseConnection::connect(&client, &script.url, None)
        .await
        .unwrap();
    assert!(!script
        .request
        .await
        .unwrap()
        .to_ascii_lowercase()
        .contains("last-event-id"));

    let started = Instant::now();
    let error = sse.next_events(2, SHORT).await.unwrap_err();
    assert!(started.elapsed() < LONG, "the wait was not bounded");
    assert!(
        matches!(error, Error::Timeout { received: 1, .. }),
        "{error}"
    );

    // The event read before the timeout is still there.
    assert_eq!(sse.next_event(SHORT).await.unwrap(), Some(message("a", "")));
    assert!(sse.next_event(SHORT).await.unwrap_err().is_timeout());
    sse.expect_no_event(SHORT).await.unwrap();
    assert_eq!(sse.comments(), 1);
    assert!(sse.wait_for_end(SHORT).await.unwrap_err().is_timeout());
    sse.close();
}

#[tokio::test]
async fn next_events_reports_an_early_end() {
    let script = serve(true, vec![Step::Send(b"data: a\n\n")]).await;
    let client = reqwest::Client::new();
    let mut sse = SseConnection::connect(&client, &script.url, None)
        .await
        .unwrap();
    let error = sse.next_events(2, LONG).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Ended {
                wanted: 2,
                received: 1
            }
        ),
        "{error}"
    );
    assert_eq!(
        sse.next_events(1, LONG).await.unwrap(),
        vec![message("a", "")]
    );
    assert_eq!(sse.wait_for_end(LONG).await.unwrap(), 0);
}

#[tokio::test]
async fn expect_no_event_fails_on_an_event() {
    let script = serve(
        true,
        vec![
            Step::Sleep(Duration::from_millis(20)),
            Step::Send(b"data: surprise\n\n"),
            Step::Hang,
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let mut sse = SseConnection::connect(&client, &script.url, None)
        .await
        .unwrap();
    match sse.expect_no_event(LONG).await {
        Err(Error::UnexpectedEvent(event)) => assert_eq!(event, message("surprise", "")),
        other => panic!("expected UnexpectedEvent, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_is_bounded_when_the_server_never_answers() {
    let script = serve(false, Vec::new()).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let error = SseConnection::connect_with_timeout(&client, &script.url, None, SHORT)
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < LONG);
}

#[tokio::test]
async fn connect_reports_a_refused_connection() {
    let url = format!("http://127.0.0.1:{}/events/test", testkit::free_port());
    let client = reqwest::Client::new();
    let error = SseConnection::connect(&client, &url, None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Request { .. }), "{error}");
}
