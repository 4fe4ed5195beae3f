//! The `/hub` page and what its channels carry stay small and fast however many channels the hub
//! holds: the totals, the busiest channels, and a count of the rest.

mod common;

use std::time::{Duration, Instant};

use common::{client, embedded_state, test_dir, Demo};
use serde_json::{json, Value};
use testkit::{free_port, SseConnection};

const CHANNELS: usize = 5_000;
const PUBLISHERS: usize = 16;
/// What a page or a sample may weigh, whatever the number of channels.
const MAX_BYTES: usize = 50 * 1024;
const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_5000_channels_the_hub_page_shows_the_busiest_and_stays_small() {
    let dir = test_dir("hub-page");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let http = client();
    // Streams outlive a request timeout.
    let streams = reqwest::Client::builder().build().unwrap();

    // 5,000 channels, one event each.
    let started = Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..PUBLISHERS {
        let (http, base) = (http.clone(), demo.url("/api/channels"));
        publishers.spawn(async move {
            for n in (p..CHANNELS).step_by(PUBLISHERS) {
                let url = format!("{base}/c-{n}/events");
                let response = http.post(&url).json(&json!({"data": n})).send().await;
                let status = response.map(|r| r.status().as_u16());
                assert_eq!(status.ok(), Some(201), "POST {url}");
            }
        });
    }
    while let Some(done) = publishers.join_next().await {
        done.unwrap_or_else(|err| panic!("a publisher failed: {err}"));
    }
    println!("{CHANNELS} channels created in {:?}", started.elapsed());

    // Someone watches one of them: it is among the first rows (with the hub page's own streams),
    // before every channel nobody watches.
    let watched = "c-4321";
    let watcher = SseConnection::connect(&streams, &demo.url(&format!("/events/{watched}")), None)
        .await
        .unwrap();
    assert_eq!(watcher.status(), 200);

    // The next snapshot of the busiest channels: 20 rows, the rest counted, a few KiB.
    let mut top = SseConnection::connect(&streams, &demo.url("/events/hub.top"), None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (rows, more, size, at) = loop {
        assert!(Instant::now() < deadline, "no snapshot with the watcher");
        let event = top.next_event(WAIT).await.unwrap().unwrap();
        assert_eq!(event.event_type, "channels");
        let data: Value = event.json().unwrap();
        let rows = data["rows"].as_array().cloned().unwrap_or_default();
        if let Some(at) = rows.iter().position(|row| row["name"] == watched) {
            assert!(at < 3, "{watched} is row {at}: {rows:?}");
            // Watched rows first: the watched channel and the hub page's own (whose streams
            // this test opens, so they may be counted or not yet), then the rest.
            let watched_rows = rows.iter().take_while(|row| row["open_streams"] == 1);
            assert!(
                watched_rows.clone().all(|row| row["name"] == watched
                    || row["name"].as_str().is_some_and(|n| n.starts_with("hub"))),
                "{rows:?}"
            );
            let unwatched = watched_rows.count();
            assert!(at < unwatched, "{rows:?}");
            assert!(
                rows[unwatched..].iter().all(|row| row["open_streams"] == 0),
                "{rows:?}"
            );
            break (rows, data["more"].as_u64().unwrap(), event.data.len(), at);
        }
    };
    println!("busiest-channels sample: {size} bytes");
    assert_eq!(rows.len(), 20);
    assert!(size < 4 * 1024, "{size} bytes");
    assert_eq!(rows[at]["open_streams"], 1);
    assert!(rows[at]["head"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(more as usize + rows.len() > CHANNELS, "{more} more");

    // A sample of the totals: small, and it counts every channel.
    let mut totals = SseConnection::connect(&streams, &demo.url("/events/hub"), None)
        .await
        .unwrap();
    let event = totals.next_event(WAIT).await.unwrap().unwrap();
    assert!(event.data.len() < 1024, "{} bytes", event.data.len());
    let sample: Value = event.json().unwrap();
    assert!(
        sample["channels"].as_u64().unwrap() as usize > CHANNELS,
        "{sample}"
    );

    // The page and its state: bounded, and quick to render.
    let started = Instant::now();
    let page = http.get(demo.url("/hub")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let took = started.elapsed();
    println!("/hub: {} bytes in {took:?}", html.len());
    assert!(html.len() < MAX_BYTES, "{} bytes", html.len());
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(html.contains(&format!("<td>{watched}</td>")), "{html}");
    assert!(html.contains(" more channels</p>"), "{html}");
    let state = embedded_state(&html);
    assert_eq!(
        state["channels"]["hub.top"]["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let api = http.get(demo.url("/api/state/hub")).send().await.unwrap();
    let api = api.bytes().await.unwrap();
    assert!(api.len() < MAX_BYTES, "{} bytes", api.len());
    drop(watcher);
}
