//! The generate page: a run followed through reloads and tabs, stopped by its Stop button, and an
//! EventSource that stays closed after the end. In headless Chromium (skipped with one `skipped:`
//! line when it is missing, never under `CI=true`), and over plain HTTP for the API.

#[path = "../src/babble.rs"]
#[allow(dead_code)]
mod babble;
mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{
    client, test_dir,
    webdriver::{Browser, Chromium},
    Demo,
};
use serde_json::{json, Value};
use testkit::free_port;

const STATUS: &str = "window.runStatus ? runStatus() : document.body.innerText.slice(0, 500)";

/// The text the demo's producer writes for `prompt`, `tokens` tokens long.
fn expected_text(prompt: &str, tokens: usize) -> String {
    babble::tokens(prompt).take(tokens).collect()
}

async fn start_run(demo: &Demo, body: Value) -> String {
    let answer = client()
        .post(demo.url("/api/runs"))
        .json(&body)
        .send()
        .await
        .expect("POST /api/runs");
    assert_eq!(answer.status(), 201);
    let created: Value = answer.json().await.expect("json");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["events"], format!("/runs/{id}/events"));
    id
}

/// The page's view of its run, once `runStatus` exists.
async fn run_status(browser: &Browser) -> Value {
    browser
        .wait_for_reporting(
            "the run's script",
            "window.runStatus && runStatus()",
            STATUS,
            Duration::from_secs(10),
        )
        .await
}

/// When the demo logged a line containing every one of `needles` (its timestamp).
fn logged_at(log: &str, needles: &[&str]) -> Option<SystemTime> {
    let line = log
        .lines()
        .find(|line| needles.iter().all(|needle| line.contains(needle)))?;
    let stamp = line.split_whitespace().next()?;
    humantime::parse_rfc3339(stamp).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_mid_run_two_tabs_stop_and_a_closed_event_source_after_the_end() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("generate-browser");
    let demo = Demo::start(&dir, free_port(), &["--retry", "300ms"]).await;
    let browser = chromium.start(&dir.join("profile")).await;

    // The form starts a run; the page follows it.
    let prompt = format!("a lighthouse keeper {}", std::process::id());
    let tokens = 160;
    browser.open(&demo.url("/generate")).await;
    browser
        .run(
            "const f = document.getElementById('generate');
             f.prompt.value = arguments[0]; f.tokens.value = arguments[1]; f.rate.value = 40;
             f.querySelector('button').click();",
            vec![json!(prompt), json!(tokens)],
        )
        .await;
    let started = run_status(&browser).await;
    let id = started["id"].as_str().unwrap().to_owned();
    browser
        .wait_for_reporting(
            "twenty tokens",
            "runStatus().events >= 20",
            STATUS,
            Duration::from_secs(10),
        )
        .await;

    // Reload mid-run: the server renders the text so far and its id, the stream goes on from it.
    browser.refresh().await.unwrap();
    let reloaded = run_status(&browser).await;
    assert_eq!(reloaded["status"], "running", "{reloaded}");
    let rendered = browser
        .eval("JSON.parse(document.getElementById('state').textContent).run.text.length")
        .await;
    assert!(
        rendered.as_u64().unwrap() > 0,
        "the page rendered the text so far"
    );
    let done = browser
        .wait_for_reporting(
            "the run done",
            "runStatus().status === 'done' && runStatus()",
            STATUS,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        done["text"].as_str().unwrap(),
        expected_text(&prompt, tokens),
        "no token missing or doubled"
    );
    assert_eq!(done["resets"], 0);

    // The server ended the stream; the EventSource reconnected once with the end's id, got 204,
    // and stays closed: no reconnect loop.
    browser
        .wait_for_reporting(
            "the EventSource closed",
            "runStatus().readyState === 2",
            STATUS,
            Duration::from_secs(5),
        )
        .await;
    let answered_204 = |log: &str| {
        log.lines()
            .filter(|line| line.contains("has the end: 204") && line.contains(&id))
            .count()
    };
    assert_eq!(answered_204(&demo.log()), 1, "{}", demo.log());
    tokio::time::sleep(Duration::from_secs(2)).await; // several retry hints (300 ms)
    assert_eq!(
        answered_204(&demo.log()),
        1,
        "the browser did not come back"
    );
    assert_eq!(browser.eval("runStatus().readyState").await, 2);

    // Two tabs follow one run; Stop in one cancels it for both.
    let long = start_run(&demo, json!({"prompt": prompt, "tokens": 5000, "rate": 40})).await;
    let page = demo.url(&format!("/generate/{long}"));
    browser.open(&page).await;
    let first_tab = browser.window().await.unwrap();
    let second_tab = browser.new_window(true).await.unwrap().handle;
    browser.switch_to_window(second_tab.clone()).await.unwrap();
    browser.open(&page).await;
    run_status(&browser).await;
    for tab in [&first_tab, &second_tab] {
        browser.switch_to_window(tab.clone()).await.unwrap();
        browser
            .wait_for_reporting(
                "tokens in both tabs",
                "runStatus().events >= 5",
                STATUS,
                Duration::from_secs(10),
            )
            .await;
    }
    let pressed = Instant::now();
    browser
        .run("document.getElementById('run-stop').click();", vec![])
        .await;
    let mut texts = Vec::new();
    for tab in [&second_tab, &first_tab] {
        browser.switch_to_window(tab.clone()).await.unwrap();
        let stopped = browser
            .wait_for_reporting(
                "cancelled shown",
                "runStatus().status === 'cancelled' && runStatus()",
                STATUS,
                Duration::from_secs(5),
            )
            .await;
        texts.push(stopped["text"].as_str().unwrap().to_owned());
    }
    println!(
        "both tabs show cancelled {:?} after Stop",
        pressed.elapsed()
    );
    assert_eq!(texts[0], texts[1], "both tabs hold the same text");
    assert!(expected_text(&prompt, 5000).starts_with(&texts[0]));

    // The producer observed the cancel within 100 ms, and stored nothing after it.
    let log = demo.log();
    let cancelled = logged_at(&log, &["run cancelled", &long]).expect("the cancel is logged");
    let stopped = logged_at(&log, &["producer stopped", &long]).expect("the producer stopped");
    let took = stopped.duration_since(cancelled).unwrap_or_default();
    println!("producer stopped {took:?} after the cancel");
    assert!(took < Duration::from_millis(100), "{took:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = client()
        .get(demo.url(&format!("/generate/{long}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(snapshot.contains(r#"data-status="cancelled""#));
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_runs_api_answers_with_ids_statuses_and_messages() {
    let dir = test_dir("generate-http");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let http = client();

    let id = start_run(&demo, json!({"prompt": "x", "tokens": 3, "rate": 200})).await;
    assert_eq!(id.len(), 32, "128 random bits in hex");
    let other = start_run(&demo, json!({})).await;
    assert_ne!(id, other);
    let empty = http.post(demo.url("/api/runs")).send().await.unwrap();
    assert_eq!(empty.status(), 201, "an empty body takes the defaults");

    for bad in [
        json!({"tokens": 0}),
        json!({"rate": 1000}),
        json!({"model": "x"}),
    ] {
        let answer = http
            .post(demo.url("/api/runs"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{bad}");
    }

    let unknown = "0123456789abcdef0123456789abcdef";
    for (method, path) in [
        ("GET", format!("/runs/{unknown}/events")),
        ("POST", format!("/api/runs/{unknown}/cancel")),
        ("GET", format!("/generate/{unknown}")),
        ("GET", "/generate/not-a-run".to_owned()),
    ] {
        let request = match method {
            "GET" => http.get(demo.url(&path)),
            _ => http.post(demo.url(&path)),
        };
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 404, "{method} {path}");
        assert!(answer.text().await.unwrap().contains("no run"), "{path}");
    }

    let cancel = http
        .post(demo.url(&format!("/api/runs/{other}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let body: Value = cancel.json().await.unwrap();
    assert_eq!(body, json!({"id": other, "reason": "cancelled"}));
}

/// Reads a run's stream until the server ends it: the data of its events, and its end's data.
async fn read_run(conn: &mut testkit::SseConnection) -> (Vec<String>, Value) {
    let mut data = Vec::new();
    loop {
        let event = conn
            .next_event(Duration::from_secs(10))
            .await
            .expect("the run goes on")
            .expect("the end comes before the stream ends");
        if event.event_type == "sse-end" {
            let end = event.json().expect("json");
            assert!(
                conn.next_event(Duration::from_secs(5))
                    .await
                    .expect("the stream ends")
                    .is_none(),
                "nothing after the end"
            );
            return (data, end);
        }
        data.push(event.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_redis_serve_a_run_wherever_its_followers_land() {
    let Some(redis) = testkit::redis::RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = test_dir("generate-redis");
    let store = redis.url();
    let args = ["--plain", "--store", store.as_str()];
    let a = Demo::start(&dir, free_port(), &args).await;
    let b = Demo::start(&dir, free_port(), &args).await;
    let streams = reqwest::Client::builder().http1_only().build().unwrap();

    // Produced on A, followed on B; B is killed; the follower resumes on A, exactly.
    let prompt = "two instances, one run";
    let id = start_run(&a, json!({"prompt": prompt, "tokens": 200, "rate": 100})).await;
    let events = format!("/runs/{id}/events");
    let mut on_b = testkit::SseConnection::connect(&streams, &b.url(&events), None)
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200);
    let first = on_b.next_events(20, Duration::from_secs(10)).await.unwrap();
    drop(b); // SIGKILL
    let last_id = first[19].last_event_id.clone();
    let mut on_a = testkit::SseConnection::connect(&streams, &a.url(&events), Some(&last_id))
        .await
        .unwrap();
    let (rest, end) = read_run(&mut on_a).await;
    let text: String = first
        .iter()
        .map(|e| e.data.as_str())
        .chain(rest.iter().map(String::as_str))
        .collect();
    assert_eq!(text, expected_text(prompt, 200));
    assert_eq!(end["reason"], "done");

    // A cancel through another instance stops the producer on A.
    let c = Demo::start(&dir, free_port(), &args).await;
    let long = start_run(&a, json!({"prompt": prompt, "tokens": 5000, "rate": 40})).await;
    let events = format!("/runs/{long}/events");
    let mut follower = testkit::SseConnection::connect(&streams, &c.url(&events), None)
        .await
        .unwrap();
    follower
        .next_events(3, Duration::from_secs(10))
        .await
        .unwrap();
    let cancel = client()
        .post(c.url(&format!("/api/runs/{long}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let (_, end) = read_run(&mut follower).await;
    assert_eq!(end["reason"], "cancelled");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a
        .log()
        .lines()
        .any(|l| l.contains("producer stopped") && l.contains(&long))
    {
        assert!(
            Instant::now() < deadline,
            "A's producer did not stop:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = client()
        .get(c.url(&format!("/generate/{long}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(r#"data-status="cancelled""#));
}
