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
    webdriver::{eval, wait_for, Driver},
    Demo,
};
use fantoccini::Client;
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
async fn run_status(browser: &Client) -> Value {
    wait_for(
        browser,
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
    let Some((chromium, chromedriver)) = testkit::chromium() else {
        return;
    };
    let dir = test_dir("generate-browser");
    let demo = Demo::start(&dir, free_port(), &["--retry", "300ms"]).await;
    let driver = Driver::start(&chromedriver).await;
    let browser = driver.browser(&chromium, &dir.join("profile")).await;

    // The form starts a run; the page follows it.
    let prompt = format!("a lighthouse keeper {}", std::process::id());
    let tokens = 160;
    browser.goto(&demo.url("/generate")).await.unwrap();
    browser
        .execute(
            "const f = document.getElementById('generate');
             f.prompt.value = arguments[0]; f.tokens.value = arguments[1]; f.rate.value = 40;
             f.querySelector('button').click();",
            vec![json!(prompt), json!(tokens)],
        )
        .await
        .unwrap();
    let started = run_status(&browser).await;
    let id = started["id"].as_str().unwrap().to_owned();
    wait_for(
        &browser,
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
    let rendered = eval(
        &browser,
        "JSON.parse(document.getElementById('state').textContent).run.text.length",
    )
    .await;
    assert!(
        rendered.as_u64().unwrap() > 0,
        "the page rendered the text so far"
    );
    let done = wait_for(
        &browser,
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
    wait_for(
        &browser,
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
    assert_eq!(eval(&browser, "runStatus().readyState").await, 2);

    // Two tabs follow one run; Stop in one cancels it for both.
    let long = start_run(&demo, json!({"prompt": prompt, "tokens": 5000, "rate": 40})).await;
    let page = demo.url(&format!("/generate/{long}"));
    browser.goto(&page).await.unwrap();
    let first_tab = browser.window().await.unwrap();
    let second_tab = browser.new_window(true).await.unwrap().handle;
    browser.switch_to_window(second_tab.clone()).await.unwrap();
    browser.goto(&page).await.unwrap();
    run_status(&browser).await;
    for tab in [&first_tab, &second_tab] {
        browser.switch_to_window(tab.clone()).await.unwrap();
        wait_for(
            &browser,
            "tokens in both tabs",
            "runStatus().events >= 5",
            STATUS,
            Duration::from_secs(10),
        )
        .await;
    }
    let pressed = Instant::now();
    browser
        .execute("document.getElementById('run-stop').click();", vec![])
        .await
        .unwrap();
    let mut texts = Vec::new();
    for tab in [&second_tab, &first_tab] {
        browser.switch_to_window(tab.clone()).await.unwrap();
        let stopped = wait_for(
            &browser,
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
