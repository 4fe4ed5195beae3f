//! Runs on a store shared by several instances (Redis): any instance serves a run's followers,
//! a cancel on any instance stops the producer where it runs, and a follower whose instance goes
//! away resumes exactly on another.

mod common;

use std::time::{Duration, Instant};

use common::*;
use poem::{http::StatusCode, Route};
use poem_sse_ext::{
    run::{EndReason, RunHandle, Runs},
    Event,
};
use serde_json::Value;
use testkit::ParsedEvent;

/// One instance: its runs' routes on a server of its own.
async fn serve_runs(runs: &Runs) -> TestServer {
    let app = Route::new()
        .at("/runs/:id/events", runs.endpoint())
        .at("/api/runs/:id/cancel", runs.cancel_endpoint());
    TestServer::start_with_hub(app, Some(runs.hub().clone())).await
}

/// A producer that appends `token <n>` every `every`, `count` times, unless it is stopped
/// first: how many it stored, and when it stopped.
fn produce(
    run: RunHandle,
    count: usize,
    every: Duration,
) -> tokio::task::JoinHandle<(usize, Instant)> {
    tokio::spawn(async move {
        for n in 0..count {
            tokio::select! {
                () = run.cancelled() => return (n, Instant::now()),
                () = tokio::time::sleep(every) => {}
            }
            if run
                .append(Event::text(format!("token {n} ")))
                .await
                .is_err()
            {
                return (n, Instant::now());
            }
        }
        let _ = run.finish(EndReason::Done).await;
        (count, Instant::now())
    })
}

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

fn end_reason(events: &[ParsedEvent]) -> Value {
    let last = events.last().expect("the end");
    assert_eq!(last.event_type, "sse-end");
    last.json::<Value>().expect("json")["reason"].clone()
}

#[tokio::test]
async fn a_follower_whose_instance_goes_away_resumes_exactly_on_another() {
    for backend in backends().await {
        let Some(instances) = backend.instances(3, Runs::builder) else {
            continue;
        };
        let [producing, first, second] = &instances[..] else {
            unreachable!()
        };
        let run = producing.start().await.expect("start");
        let id = run.id().to_string();
        let producer = produce(run, 60, Duration::from_millis(10));

        let first_server = serve_runs(first).await;
        let url = first_server.url(&format!("/runs/{id}/events"));
        let mut follower = connect(&http1(), &url, None).await;
        let seen = follower.next_events(10, WAIT).await.expect("tokens");
        let last_id = seen[9].last_event_id.clone();
        first.shutdown();
        first_server.stop().await;
        follower
            .wait_for_end(WAIT)
            .await
            .expect("the instance went away");

        let second_server = serve_runs(second).await;
        let url = second_server.url(&format!("/runs/{id}/events"));
        let mut resumed = connect(&http1(), &url, Some(&last_id)).await;
        let rest = read_to_end(&mut resumed).await;
        let expected: Vec<String> = (10..60).map(|n| format!("token {n} ")).collect();
        let data: Vec<&str> = rest[..rest.len() - 1]
            .iter()
            .map(|e| e.data.as_str())
            .collect();
        assert_eq!(data, expected, "exactly the rest, on another instance");
        assert_eq!(end_reason(&rest), "done");
        assert_eq!(producer.await.expect("producer").0, 60);

        let end_id = rest[rest.len() - 1].last_event_id.clone();
        let again = SseConnection::connect(&http1(), &url, Some(&end_id)).await;
        assert_eq!(again.expect("connect").status(), StatusCode::NO_CONTENT);
        second_server.stop().await;
    }
}

#[tokio::test]
async fn a_cancel_on_any_instance_stops_the_producer_where_it_runs() {
    for backend in backends().await {
        let Some(instances) = backend.instances(2, Runs::builder) else {
            continue;
        };
        let [producing, other] = &instances[..] else {
            unreachable!()
        };
        let run = producing.start().await.expect("start");
        let id = run.id().to_string();
        let producer = produce(run, 100_000, Duration::from_millis(5));
        let server = serve_runs(other).await;
        let client = http1();
        let mut follower = connect(&client, &server.url(&format!("/runs/{id}/events")), None).await;
        follower.next_events(3, WAIT).await.expect("tokens");

        let sent = Instant::now();
        let answer = client
            .post(server.url(&format!("/api/runs/{id}/cancel")))
            .send()
            .await
            .expect("cancel");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let (stored, stopped_at) = tokio::time::timeout(WAIT, producer)
            .await
            .expect("the producer stops")
            .expect("producer");
        let took = stopped_at.duration_since(sent);
        println!("producer on the other instance stopped {took:?} after the cancel was sent");
        assert!(took < Duration::from_millis(100), "{took:?}");

        // The end is the last event delivered. The producer may store a token or two after the
        // end went into the log on the other instance, before its own instance reads it: those
        // are never delivered.
        let rest = read_to_end(&mut follower).await;
        assert_eq!(end_reason(&rest), "cancelled");
        let delivered = 3 + rest.len() - 1;
        let data: Vec<String> = rest[..rest.len() - 1]
            .iter()
            .map(|e| e.data.clone())
            .collect();
        let expected: Vec<String> = (3..delivered).map(|n| format!("token {n} ")).collect();
        assert_eq!(data, expected, "every token up to the end, in order");
        let late = stored - delivered;
        println!("{late} token(s) stored after the end, never delivered");
        assert!(
            late as u128 <= took.as_millis() / 5 + 1,
            "{late} after {took:?}"
        );
        assert_eq!(producing.running(), 0, "the producing instance knows");
        server.stop().await;
    }
}

#[tokio::test]
async fn any_instance_serves_a_finished_run_until_its_time_to_live_ends() {
    for backend in backends().await {
        let ttl = Duration::from_millis(600);
        let Some(instances) = backend.instances(2, || Runs::builder().ttl(ttl)) else {
            continue;
        };
        let [producing, other] = &instances[..] else {
            unreachable!()
        };
        let run = producing.start().await.expect("start");
        let id = run.id().to_string();
        for token in ["a", "b", "c"] {
            run.append(Event::text(token)).await.expect("append");
        }
        run.finish(EndReason::Done).await.expect("finish");

        let server = serve_runs(other).await;
        let url = server.url(&format!("/runs/{id}/events"));
        let mut late = connect(&http1(), &url, None).await;
        let events = read_to_end(&mut late).await;
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data[..3], ["a", "b", "c"]);
        assert_eq!(end_reason(&events), "done");
        let cancel = server.url(&format!("/api/runs/{id}/cancel"));
        let answer = http1().post(&cancel).send().await.expect("cancel");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body["reason"], "done", "a finished run stays finished");

        tokio::time::sleep(ttl + Duration::from_millis(300)).await;
        let gone = http1().get(&url).send().await.expect("get");
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        assert!(gone.text().await.unwrap_or_default().contains("no run"));
        assert_eq!(other.hub().channel_count(), 0, "nothing kept for it here");
        assert!(producing.is_empty());
        server.stop().await;
    }
}
