//! Runs over HTTP, on every store: a follower gets the run from wherever it stands, the stream
//! ends with the run for good, and only a cancel stops the producer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use poem::{http::StatusCode, Route};
use poem_sse_ext::http::StreamOptions;
use poem_sse_ext::{
    run::{EndReason, RunError, RunHandle, RunId, RunSnapshot, Runs, RunsBuilder},
    Event,
};
use serde_json::Value;
use testkit::ParsedEvent;

const END: &str = "sse-end";

/// The runs' two routes, as an app mounts them.
async fn serve_runs(runs: &Runs) -> TestServer {
    let app = Route::new()
        .at("/runs/:id/events", runs.endpoint())
        .at("/api/runs/:id/cancel", runs.cancel_endpoint());
    TestServer::start_with_hub(app, Some(runs.hub().clone())).await
}

fn events_url(server: &TestServer, id: &str) -> String {
    server.url(&format!("/runs/{id}/events"))
}

/// A run with `tokens` appended and finished: its id, and the ids of the tokens and of the end.
async fn finished_run(runs: &Runs, tokens: &[&str]) -> (String, Vec<String>, String) {
    let run = runs.start().await.expect("start");
    let id = run.id().to_string();
    let mut ids = Vec::new();
    for token in tokens {
        let appended = run.append(Event::text(*token)).await.expect("append");
        ids.push(appended.to_string());
    }
    let end = run.finish(EndReason::Done).await.expect("finish");
    (id, ids, end.to_string())
}

/// How a producer stopped.
struct Stopped {
    appended: usize,
    at: Instant,
    cancelled: bool,
}

/// A producer that appends `token <n>` every `every`, `count` times, unless it is stopped first.
fn produce(run: RunHandle, count: usize, every: Duration) -> tokio::task::JoinHandle<Stopped> {
    tokio::spawn(async move {
        let mut appended = 0;
        for n in 0..count {
            tokio::select! {
                () = run.cancelled() => {
                    return Stopped { appended, at: Instant::now(), cancelled: true };
                }
                () = tokio::time::sleep(every) => {}
            }
            if run
                .append(Event::text(format!("token {n} ")))
                .await
                .is_err()
            {
                return Stopped {
                    appended,
                    at: Instant::now(),
                    cancelled: true,
                };
            }
            appended += 1;
        }
        let _ = run.finish(EndReason::Done).await;
        Stopped {
            appended,
            at: Instant::now(),
            cancelled: false,
        }
    })
}

/// Run `id` once its end is in the log this process reads (a store shared by instances fills it
/// a moment after the write).
async fn ended(runs: &Runs, id: &str) -> RunSnapshot {
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = runs.snapshot(id).await.expect("snapshot");
        if snapshot.end.is_some() {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "run {id} never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every event until the server ends the stream.
async fn read_to_end(conn: &mut SseConnection) -> Vec<ParsedEvent> {
    let mut events = Vec::new();
    while let Some(event) = conn
        .next_event(WAIT)
        .await
        .expect("the stream goes on or ends")
    {
        events.push(event);
    }
    events
}

fn data(events: &[ParsedEvent]) -> Vec<&str> {
    events.iter().map(|event| event.data.as_str()).collect()
}

/// The last event, which must be the run's end: its data.
fn end_of(events: &[ParsedEvent]) -> Value {
    let last = events.last().expect("at least the end");
    assert_eq!(last.event_type, END, "the stream ends with the run's end");
    last.json().expect("the end is JSON")
}

async fn status_of(client: &reqwest::Client, url: &str, last_id: Option<&str>) -> StatusCode {
    let conn = SseConnection::connect(client, url, last_id)
        .await
        .expect("connect");
    conn.status()
}

#[tokio::test]
async fn a_late_follower_gets_the_whole_run_then_its_stream_ends() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder());
        let server = serve_runs(&runs).await;
        let tokens = ["Once", " upon", " a time", "\n", "", "  the end."];
        let (id, _, end_id) = finished_run(&runs, &tokens).await;

        let mut late = connect(&http1(), &events_url(&server, &id), None).await;
        let events = read_to_end(&mut late).await;
        assert_eq!(data(&events[..tokens.len()]), tokens, "{}", backend.name);
        assert_eq!(events.len(), tokens.len() + 1, "nothing but the run");
        assert_eq!(end_of(&events)["reason"], "done");
        assert_eq!(events[tokens.len()].last_event_id, end_id);
        assert!(late.is_ended(), "the response ended with the run");
        server.stop().await;
    }
}

#[tokio::test]
async fn resuming_from_every_id_gives_exactly_the_rest_and_the_end_gives_204() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder());
        let server = serve_runs(&runs).await;
        let tokens: Vec<String> = (0..20).map(|n| format!("t{n} ")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let (id, ids, end_id) = finished_run(&runs, &refs).await;
        let url = events_url(&server, &id);
        let client = h2c();

        for (seen, last_id) in ids.iter().enumerate() {
            let mut conn = connect(&client, &url, Some(last_id)).await;
            let events = read_to_end(&mut conn).await;
            assert_eq!(
                data(&events[..events.len() - 1]),
                refs[seen + 1..],
                "{} after {last_id}",
                backend.name
            );
            assert_eq!(end_of(&events)["reason"], "done");
        }
        // A page rendered at some id resumes from the query parameter.
        let rendered = format!("{url}?lastEventId={}", ids[9]);
        let mut page = connect(&client, &rendered, None).await;
        assert_eq!(read_to_end(&mut page).await.len(), 10 + 1);

        // The follower that has the end is done for good: 204 closes an EventSource.
        assert_eq!(
            status_of(&client, &url, Some(&end_id)).await,
            StatusCode::NO_CONTENT
        );
        let ended = format!("{url}?lastEventId={end_id}");
        assert_eq!(
            status_of(&client, &ended, None).await,
            StatusCode::NO_CONTENT
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_resume_point_from_elsewhere_starts_the_run_over_with_a_reset() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder());
        let server = serve_runs(&runs).await;
        let (id, _, _) = finished_run(&runs, &["a", "b"]).await;
        let huge = "9".repeat(4096);
        for garbage in ["garbage", "0-0-0", huge.as_str()] {
            let mut conn = connect(&http1(), &events_url(&server, &id), Some(garbage)).await;
            let events = read_to_end(&mut conn).await;
            assert_eq!(events[0].event_type, "sse-reset", "{}", backend.name);
            let reset: Value = events[0].json().expect("json");
            assert_eq!(reset["resume_from"], events[0].last_event_id.as_str());
            assert_eq!(data(&events[1..3]), ["a", "b"], "the whole run again");
            assert_eq!(end_of(&events)["reason"], "done");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn followers_come_and_go_and_the_producer_carries_on() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder());
        let server = serve_runs(&runs).await;
        let run = runs.start().await.expect("start");
        let id = run.id().to_string();
        let producer = produce(run, 30, Duration::from_millis(10));

        let mut follower = connect(&http1(), &events_url(&server, &id), None).await;
        let first = follower.next_events(3, WAIT).await.expect("live tokens");
        assert_eq!(data(&first), ["token 0 ", "token 1 ", "token 2 "]);
        let resume = first[2].last_event_id.clone();
        follower.close(); // a reload, a flaky network

        let mut again = connect(&http1(), &events_url(&server, &id), Some(&resume)).await;
        let rest = read_to_end(&mut again).await;
        let expected: Vec<String> = (3..30).map(|n| format!("token {n} ")).collect();
        assert_eq!(data(&rest[..rest.len() - 1]), expected, "{}", backend.name);
        assert_eq!(end_of(&rest)["reason"], "done");

        let stopped = producer.await.expect("producer");
        assert!(!stopped.cancelled && stopped.appended == 30);
        let snapshot = runs.snapshot(&id).await.expect("snapshot");
        assert_eq!(snapshot.events.len(), 30);
        assert_eq!(snapshot.head.as_str(), rest[rest.len() - 1].last_event_id);
        server.stop().await;
    }
}

#[tokio::test]
async fn cancel_stops_the_producer_at_once_and_ends_every_follower() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder());
        let server = serve_runs(&runs).await;
        let run = runs.start().await.expect("start");
        let id = run.id().to_string();
        let producer = produce(run, 100_000, Duration::from_millis(5));
        let url = events_url(&server, &id);
        let client = h2c();
        let mut tabs = [
            connect(&client, &url, None).await,
            connect(&client, &url, None).await,
        ];
        for tab in &mut tabs {
            tab.next_events(2, WAIT).await.expect("live tokens");
        }

        let cancel = server.url(&format!("/api/runs/{id}/cancel"));
        let sent = Instant::now();
        let answer = client.post(&cancel).send().await.expect("cancel");
        assert_eq!(answer.status(), StatusCode::ACCEPTED, "{}", backend.name);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body, serde_json::json!({"id": id, "reason": "cancelled"}));

        let stopped = producer.await.expect("producer");
        let took = stopped.at.duration_since(sent);
        assert!(stopped.cancelled);
        assert!(
            took < Duration::from_millis(100),
            "producer stopped after {took:?}"
        );
        for tab in &mut tabs {
            let rest = read_to_end(tab).await;
            assert_eq!(end_of(&rest)["reason"], "cancelled", "{}", backend.name);
        }
        let snapshot = runs.snapshot(&id).await.expect("snapshot");
        assert_eq!(
            snapshot.events.len(),
            stopped.appended,
            "nothing stored after the end"
        );

        // Pressing Stop twice (two tabs) is fine: the run stays cancelled.
        let again = client.post(&cancel).send().await.expect("cancel");
        assert_eq!(again.status(), StatusCode::ACCEPTED);
        server.stop().await;
    }
}

#[tokio::test]
async fn unknown_runs_answer_404_with_a_message() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder());
        let server = serve_runs(&runs).await;
        let client = http1();
        let unknown = "0123456789abcdef0123456789abcdef";
        for id in [unknown, "not-a-run"] {
            let answer = client
                .get(events_url(&server, id))
                .send()
                .await
                .expect("get");
            assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{}", backend.name);
            let message = answer.text().await.unwrap_or_default();
            assert!(
                message.contains("no run") && message.contains(id),
                "{message}"
            );

            let cancel = server.url(&format!("/api/runs/{id}/cancel"));
            let answer = client.post(cancel).send().await.expect("post");
            assert_eq!(answer.status(), StatusCode::NOT_FOUND);
            assert!(answer.text().await.unwrap_or_default().contains("no run"));
        }
        assert_eq!(
            runs.cancel(unknown).await,
            Err(RunError::NotFound { id: unknown.into() })
        );
        assert_eq!(
            runs.hub().channel_count(),
            0,
            "lookups leave nothing behind"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_run_is_followed_with_get_only_and_other_methods_leave_it_untouched() {
    let runs = Runs::builder().build();
    let server = serve_runs(&runs).await;
    let (id, _, _) = finished_run(&runs, &["a"]).await;
    let client = http1();
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let answer = client
            .request(method.clone(), events_url(&server, &id))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(answer.headers()["allow"], "GET");
    }
    assert_eq!(runs.hub().metrics().opened, 0, "no follower was opened");
    assert_eq!(
        status_of(&client, &events_url(&server, &id), None).await,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn a_run_past_its_bounds_ends_as_failed_and_says_why() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder().max_events(3).max_bytes(100));
        let server = serve_runs(&runs).await;

        let run = runs.start().await.expect("start");
        let id = run.id().to_string();
        for n in 0..3 {
            assert!(run.append(Event::text(n.to_string())).await.is_ok());
        }
        assert_eq!(
            run.append(Event::text("3")).await,
            Err(RunError::TooManyEvents { limit: 3 })
        );
        assert!(run.is_cancelled(), "the producer is told to stop");
        assert_eq!(
            run.append(Event::text("4")).await,
            Err(RunError::Ended {
                reason: EndReason::Failed
            })
        );
        let mut conn = connect(&http1(), &events_url(&server, &id), None).await;
        let events = read_to_end(&mut conn).await;
        assert_eq!(data(&events[..3]), ["0", "1", "2"], "{}", backend.name);
        let end = end_of(&events);
        assert_eq!(end["reason"], "failed");
        assert!(
            end["message"]
                .as_str()
                .unwrap_or_default()
                .contains("3 events"),
            "{end}"
        );

        let big = runs.start().await.expect("start");
        assert!(big.append(Event::text("x".repeat(60))).await.is_ok());
        assert_eq!(
            big.append(Event::text("y".repeat(60))).await,
            Err(RunError::TooManyBytes { limit: 100 })
        );
        let end = ended(&runs, big.id().as_str()).await.end.expect("ended");
        assert_eq!(end.reason, EndReason::Failed);
        assert!(end.message.unwrap_or_default().contains("100 bytes"));
        server.stop().await;
    }
}

#[tokio::test]
async fn at_most_max_runs_and_the_first_ended_makes_room() {
    for backend in backends().await {
        let runs = backend.runs(Runs::builder().max_runs(2));
        let first = runs.start().await.expect("first");
        let _second = runs.start().await.expect("second");
        assert_eq!(
            runs.start().await.err(),
            Some(RunError::TooManyRuns { limit: 2 }),
            "{}",
            backend.name
        );
        let first_id = first.id().to_string();
        assert!(first.finish(EndReason::Done).await.is_ok());
        assert!(runs.start().await.is_ok(), "the ended run made room");
        assert_eq!(runs.len(), 2);
        if backend.name == "memory" {
            // A shared store keeps it readable for other instances until its time to live ends.
            assert!(matches!(
                runs.snapshot(&first_id).await,
                Err(RunError::NotFound { .. })
            ));
        }
    }
}

#[tokio::test]
async fn an_ended_run_is_gone_after_its_ttl_and_memory_returns_to_baseline() {
    for backend in backends().await {
        let ttl = Duration::from_millis(300);
        let runs = backend.runs(Runs::builder().ttl(ttl));
        let server = serve_runs(&runs).await;
        let client = http1();
        let tasks = tokio::runtime::Handle::current().metrics();
        let baseline = tasks.num_alive_tasks();

        let (id, _, _) = finished_run(&runs, &["kept", " a while"]).await;
        let url = events_url(&server, &id);
        let mut conn = connect(&client, &url, None).await;
        assert_eq!(read_to_end(&mut conn).await.len(), 3);
        assert!(runs.hub().channel_count() > 0 || backend.name != "memory");

        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        let answer = client.get(&url).send().await.expect("get");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{}", backend.name);
        let cancel = server.url(&format!("/api/runs/{id}/cancel"));
        let answer = client.post(cancel).send().await.expect("post");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert!(runs.is_empty());
        assert_eq!(runs.hub().channel_count(), 0, "the run's log is dropped");
        if backend.name == "memory" {
            // The run's watcher and its log's fan-out task are gone with it.
            let deadline = Instant::now() + WAIT;
            while tasks.num_alive_tasks() > baseline && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(tasks.num_alive_tasks(), baseline);
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn who_may_follow_and_who_may_cancel_is_decided_per_run() {
    let runs = Runs::new();
    let owned_by_alice = runs.start().await.expect("start");
    let alice_run = owned_by_alice.id().clone();
    let owner = alice_run.clone();
    let app = Route::new()
        .at(
            "/runs/:id/events",
            runs.endpoint()
                .options(StreamOptions::new().authorize(
                    |req, _channel| match req.header("x-user") {
                        Some(_) => Ok(()),
                        None => Err(poem::Error::from_status(StatusCode::UNAUTHORIZED)),
                    },
                )),
        )
        .at(
            "/api/runs/:id/cancel",
            runs.cancel_endpoint()
                .options(StreamOptions::new().authorize(move |req, channel| {
                    let run = RunId::from_channel(channel);
                    if run.as_ref() == Some(&owner) && req.header("x-user") == Some("alice") {
                        Ok(())
                    } else {
                        Err(poem::Error::from_string(
                            "only its owner may stop a run",
                            StatusCode::FORBIDDEN,
                        ))
                    }
                })),
        );
    let server = TestServer::start_with_hub(app, Some(runs.hub().clone())).await;
    let client = http1();
    let url = events_url(&server, alice_run.as_str());
    assert_eq!(
        status_of(&client, &url, None).await,
        StatusCode::UNAUTHORIZED
    );
    let bob = client
        .get(&url)
        .header("x-user", "bob")
        .send()
        .await
        .expect("get");
    assert_eq!(bob.status(), StatusCode::OK, "anyone signed in may follow");

    let cancel = server.url(&format!("/api/runs/{alice_run}/cancel"));
    let by_bob = client.post(&cancel).header("x-user", "bob").send().await;
    assert_eq!(by_bob.map(|r| r.status()).ok(), Some(StatusCode::FORBIDDEN));
    assert!(!owned_by_alice.is_cancelled());
    let by_alice = client.post(&cancel).header("x-user", "alice").send().await;
    assert_eq!(
        by_alice.map(|r| r.status()).ok(),
        Some(StatusCode::ACCEPTED)
    );
    assert!(owned_by_alice.is_cancelled());
    server.stop().await;
}

#[tokio::test]
async fn a_run_that_runs_too_long_or_is_given_up_ends_as_failed() {
    for backend in backends().await {
        let runs =
            backend.runs(RunsBuilder::default().max_duration(Some(Duration::from_millis(200))));
        let slow = runs.start().await.expect("start");
        tokio::time::timeout(WAIT, slow.cancelled())
            .await
            .expect("the producer is told to stop at the time limit");
        let end = ended(&runs, slow.id().as_str()).await.end.expect("ended");
        assert_eq!(end.reason, EndReason::Failed, "{}", backend.name);
        assert!(end.message.unwrap_or_default().contains("time limit"));

        let given_up = runs.start().await.expect("start");
        let id = given_up.id().to_string();
        drop(given_up); // a producer that panicked, say
        let end = ended(&runs, &id).await.end.expect("ended");
        assert_eq!(end.reason, EndReason::Failed);
        assert!(end.message.unwrap_or_default().contains("gave the run up"));
    }
}

#[tokio::test]
async fn shutdown_stops_producers_and_ends_followers_with_a_retry_hint() {
    let app_hub = poem_sse_ext::Hub::new();
    let runs = Runs::builder()
        .shutdown_with(app_hub.shutdown_token())
        .build();
    let server = serve_runs(&runs).await;
    let run = runs.start().await.expect("start");
    let id = run.id().to_string();
    let producer = produce(run, 100_000, Duration::from_millis(5));
    let mut follower = connect(&http1(), &events_url(&server, &id), None).await;
    follower.next_events(1, WAIT).await.expect("a token");

    app_hub.shutdown();
    let stopped = tokio::time::timeout(WAIT, producer)
        .await
        .expect("the producer stops")
        .expect("producer");
    assert!(stopped.cancelled);
    follower.wait_for_end(WAIT).await.expect("the stream ends");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_appends_leaves_the_end_last_and_every_stored_event_before_it() {
    use futures_util::StreamExt;
    use poem_sse_ext::run::Follow;

    for backend in backends().await {
        let runs = backend.runs(Runs::builder().max_events(1_000_000));
        for round in 0..40 {
            let run = runs.start().await.expect("start");
            let id = run.id().to_string();
            let appended = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = std::sync::Arc::clone(&appended);
            let producer = tokio::spawn(async move {
                let mut stored = 0;
                while run.append(Event::text("x")).await.is_ok() {
                    stored += 1;
                    counter.store(stored, std::sync::atomic::Ordering::Release);
                }
                stored
            });
            // The cancel lands while the producer appends as fast as it can.
            let deadline = Instant::now() + WAIT;
            while appended.load(std::sync::atomic::Ordering::Acquire) < round * 25 {
                assert!(Instant::now() < deadline, "the producer appends");
                tokio::task::yield_now().await;
            }
            assert_eq!(runs.cancel(&id).await, Ok(EndReason::Cancelled));
            let stored = producer.await.expect("producer");
            assert!(stored >= round * 25);

            let Ok(Follow::Stream(follower)) = runs.follow(&id, None).await else {
                panic!("{}: the run can be followed", backend.name);
            };
            let chunks: Vec<_> = follower.collect().await;
            let wire: Vec<u8> = chunks.concat();
            let (events, _) = testkit::parse_all(&String::from_utf8_lossy(&wire));
            assert_eq!(events.len(), stored + 1, "{} round {round}", backend.name);
            assert!(events[..stored].iter().all(|e| e.data == "x"));
            assert_eq!(end_of(&events)["reason"], "cancelled");
        }
    }
}
