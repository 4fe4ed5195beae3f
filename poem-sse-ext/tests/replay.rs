//! The replay suite, run on every available store: resume exactly, or say why not.

mod common;

use std::time::Duration;

use common::*;
use poem_sse_ext::Hub;

const RESET: &str = "sse-reset";

#[tokio::test]
async fn missed_events_are_replayed_exactly_once_in_order_then_live() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history(1_000));
        let server = serve(&hub).await;
        let url = server.url("/events/feed");
        let client = http1();

        let mut first = connect(&client, &url, None).await;
        publish(&hub, "feed", "before-1").await;
        publish(&hub, "feed", "before-2").await;
        let seen = first.next_events(2, WAIT).await.expect("live events");
        assert_eq!(seen[1].data, "before-2", "{}", backend.name);
        let last_id = seen[1].last_event_id.clone();
        drop(first);

        let missed: Vec<String> = (0..50).map(|n| format!("missed-{n}")).collect();
        for data in &missed {
            publish(&hub, "feed", data).await;
        }
        let mut again = connect(&client, &url, Some(&last_id)).await;
        assert_eq!(data_of(&mut again, 50).await, missed, "{}", backend.name);
        again
            .expect_no_event(Duration::from_millis(200))
            .await
            .expect("no duplicates after the replay");
        publish(&hub, "feed", "live").await;
        assert_eq!(data_of(&mut again, 1).await, ["live"], "{}", backend.name);
        server.stop().await;
    }
}

#[tokio::test]
async fn query_parameter_resumes_and_the_header_wins_over_it() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder());
        let server = serve(&hub).await;
        let client = http1();
        let rendered_at = publish(&hub, "page", "state").await;
        publish(&hub, "page", "after-render-1").await;
        let second = publish(&hub, "page", "after-render-2").await;

        // A server-rendered page connects with the id its state was rendered at.
        let url = server.url(&format!("/events/page?lastEventId={rendered_at}"));
        let mut page = connect(&client, &url, None).await;
        assert_eq!(
            data_of(&mut page, 2).await,
            ["after-render-1", "after-render-2"],
            "{}",
            backend.name
        );

        // EventSource reconnects to the same URL with a newer Last-Event-ID header.
        let mut reconnected = connect(&client, &url, Some(&second)).await;
        publish(&hub, "page", "newest").await;
        assert_eq!(
            data_of(&mut reconnected, 1).await,
            ["newest"],
            "{}",
            backend.name
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn evicted_resume_point_gets_a_reset_then_live() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history(5));
        let server = serve(&hub).await;
        let client = http1();
        let old = publish(&hub, "feed", "0").await;
        let mut head = String::new();
        for n in 1..=10 {
            head = publish(&hub, "feed", &n.to_string()).await;
        }
        let mut conn = connect(&client, &server.url("/events/feed"), Some(&old)).await;
        let reset = conn.next_event(WAIT).await.expect("reset").expect("open");
        assert_eq!(reset.event_type, RESET, "{}", backend.name);
        assert_eq!(
            reset.last_event_id, head,
            "the reset says where the stream continues"
        );
        let body: serde_json::Value = reset.json().expect("json");
        assert_eq!(body["reason"], "evicted");
        assert_eq!(body["resume_from"], head.as_str());
        conn.expect_no_event(Duration::from_millis(200))
            .await
            .expect("nothing replayed after a reset");
        publish(&hub, "feed", "live").await;
        assert_eq!(data_of(&mut conn, 1).await, ["live"]);
        server.stop().await;
    }
}

#[tokio::test]
async fn ids_that_were_never_issued_get_an_unknown_reset_never_an_error() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder());
        let server = serve(&hub).await;
        let client = http1();
        let head = publish(&hub, "feed", "x").await;
        let huge = "9".repeat(4096);
        let ahead = format!("{}99999", head);
        let garbage = [
            "garbage",
            "-1",
            "18446744073709551616-18446744073709551616",
            huge.as_str(),
            ahead.as_str(),
            "%00",
            "1-2-3",
        ];
        for id in garbage {
            let mut conn = connect(&client, &server.url("/events/feed"), Some(id)).await;
            let reset = conn.next_event(WAIT).await.expect("reset").expect("open");
            assert_eq!(reset.event_type, RESET, "{} {id:?}", backend.name);
            let body: serde_json::Value = reset.json().expect("json");
            assert!(
                body["reason"] == "unknown" || body["reason"] == "epoch",
                "{id:?}: {body}"
            );
            assert_eq!(reset.last_event_id, head);
        }
        // Non-ASCII bytes in the header (obs-text) are still just an unknown id.
        let response = client
            .get(server.url("/events/feed"))
            .header(
                "Last-Event-ID",
                reqwest::header::HeaderValue::from_bytes(b"\xff\xfe-1").expect("obs-text"),
            )
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_id_from_another_epoch_gets_an_epoch_reset() {
    // Two hubs with their own in-memory stores stand for a process before and after a restart.
    let before = Hub::new();
    let old_id = publish(&before, "feed", "x").await;
    let after = Hub::new();
    let server = serve(&after).await;
    let mut conn = connect(&http1(), &server.url("/events/feed"), Some(&old_id)).await;
    let reset = conn.next_event(WAIT).await.expect("reset").expect("open");
    assert_eq!(reset.event_type, RESET);
    assert_eq!(
        reset.json::<serde_json::Value>().expect("json")["reason"],
        "epoch"
    );
    server.stop().await;
}

#[tokio::test]
async fn age_bound_evicts_history_even_without_new_events() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history_age(Duration::from_millis(300)));
        let server = serve(&hub).await;
        let before = publish(&hub, "feed", "old-0").await;
        publish(&hub, "feed", "old-1").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut conn = connect(&http1(), &server.url("/events/feed"), Some(&before)).await;
        let first = conn.next_event(WAIT).await.expect("event").expect("open");
        assert_eq!(
            first.event_type, RESET,
            "{}: expired events are not replayed",
            backend.name
        );
        server.stop().await;
    }
}

/// Clients connect with a resume id while events are being published: each must see every event
/// after its id exactly once, in order (the store starts live delivery before reading history,
/// with no gap and no overlap between the two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_while_publishing_has_no_gap_and_no_duplicate() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history(10_000));
        let server = serve(&hub).await;
        let url = server.url("/events/race");
        const TOTAL: usize = 1_500;
        const READERS: usize = 20;
        let (ids_tx, ids_rx) = tokio::sync::watch::channel(Vec::<String>::new());
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for n in 0..TOTAL {
                    let id = publish(&hub, "race", &n.to_string()).await;
                    ids_tx.send_modify(|ids| ids.push(id));
                    if n % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        };
        let client = h2c();
        let mut readers = Vec::new();
        for k in 0..READERS {
            let (client, url, mut ids) = (client.clone(), url.clone(), ids_rx.clone());
            readers.push(tokio::spawn(async move {
                // Resume after event `start`, as soon as it exists: mid-burst.
                let start = k * (TOTAL / READERS);
                let from = ids
                    .wait_for(|ids| ids.len() > start)
                    .await
                    .expect("publisher alive")[start]
                    .clone();
                let mut conn = connect(&client, &url, Some(&from)).await;
                for expected in start + 1..TOTAL {
                    let event = conn.next_event(WAIT).await.expect("event").expect("open");
                    assert_ne!(event.event_type, RESET, "history is large enough: no reset");
                    assert_eq!(event.data, expected.to_string(), "reader {k} from {start}");
                }
                conn.expect_no_event(Duration::from_millis(100))
                    .await
                    .expect("nothing after the last event");
            }));
        }
        publisher.await.expect("publisher");
        for reader in readers {
            tokio::time::timeout(Duration::from_secs(30), reader)
                .await
                .expect("reader finished")
                .expect("reader passed");
        }
        server.stop().await;
    }
}

/// A reader that stops reading while the log moves on costs only its cursor: when it reads again
/// it gets what the socket held, then an explicit reset, never a silent gap; after the reset it
/// continues exactly after the id the reset names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_gets_a_reset_instead_of_a_silent_gap() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history(20));
        let server = serve(&hub).await;
        let mut conn = connect(&http1(), &server.url("/events/fast"), None).await;
        let payload = "x".repeat(2_000);
        const TOTAL: usize = 4_000; // 8 MB: more than socket buffers and history hold
        let mut ids = std::collections::HashMap::new();
        for n in 0..TOTAL {
            ids.insert(publish(&hub, "fast", &format!("{n} {payload}")).await, n);
        }
        let end = publish(&hub, "fast", "end").await;
        ids.insert(end.clone(), TOTAL);
        let mut last: Option<usize> = None;
        let mut resets = 0;
        loop {
            let event = conn.next_event(WAIT).await.expect("event").expect("open");
            let n = if event.event_type == RESET {
                resets += 1;
                // The stream goes on right after the id the reset names (the head when it was made).
                *ids.get(&event.last_event_id)
                    .expect("the reset names a published id")
            } else if event.data == "end" {
                TOTAL
            } else {
                let n = event
                    .data
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("n");
                if let Some(last) = last {
                    assert_eq!(
                        n,
                        last + 1,
                        "{}: events after {last} vanished without a reset",
                        backend.name
                    );
                }
                n
            };
            last = Some(n);
            if n == TOTAL {
                break;
            }
        }
        assert!(
            resets >= 1,
            "{}: the reader fell behind; a reset must say so",
            backend.name
        );
        publish(&hub, "fast", "after").await;
        assert_eq!(data_of(&mut conn, 1).await, ["after"], "{}", backend.name);
        server.stop().await;
    }
}
