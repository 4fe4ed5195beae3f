//! The dashboard on one stream, in a real browser (headless Chromium over WebDriver): all its
//! widgets on ONE `EventSource` of the set of their channels, over `--plain` HTTP/1.1 as over
//! HTTP/2, and one stream per browser however many tabs show the page.
//!
//! Skipped with one `skipped:` line when Chromium or chromedriver is missing (never under
//! `CI=true`). Every wait is bounded; everything runs on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{
    client, get_json, test_dir,
    webdriver::{Browser, Chromium},
    Demo,
};
use serde_json::Value;
use testkit::free_port;

/// Streams open on the demo, a set of channels counting once.
async fn streams(http: &reqwest::Client, demo: &Demo) -> u64 {
    let metrics = get_json(http, &demo.url("/api/hub/metrics")).await;
    metrics["streams"]
        .as_u64()
        .unwrap_or_else(|| panic!("no `streams` in {metrics}"))
}

/// Waits (bounded) until the demo has exactly `n` open streams, and stays there for a second.
async fn settle_at(http: &reqwest::Client, demo: &Demo, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = streams(http, demo).await;
        if now == n {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let later = streams(http, demo).await;
            assert_eq!(later, n, "open streams went from {n} to {later}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} open streams, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every widget of the tab is live (its tab holds the stream, or receives from the one that
/// does) with at least `events` events; answers how many widgets.
async fn all_live(browser: &Browser, events: u32) -> u64 {
    let expr = format!(
        "window.sseStatus && sseStatus().length >= 11 && sseStatus().every(s => (s.state === 'open' || s.state === 'following') && s.events >= {events}) && sseStatus().length"
    );
    browser
        .wait_for("every widget live", &expr, Duration::from_secs(20))
        .await
        .as_u64()
        .unwrap_or_else(|| panic!("a widget count"))
}

/// Per widget, whether the events it holds are, id for id, a run of its channel's newest events
/// in the store: no event lost, none twice. Live items carry the set's cursor; the channel's own
/// id is read out of it (see poem-sse-ext's cursor module for the format).
const NO_GAP: &str = r#"(async () => {
  const set = document.querySelector('[data-set]').dataset.set.split(',');
  const own = (id, n) => {
    if (!id.startsWith('s1.')) return id;
    const parts = id.split('.').slice(2);
    let prev = '';
    for (let k = 0; k <= n; k++) {
      prev = k === 0 ? parts[0] : prev.slice(0, parseInt(parts[k][0], 36)) + parts[k].slice(1);
    }
    return prev.replace(/%2E/g, '.').replace(/%25/g, '%');
  };
  const state = await (await fetch('/api/state/dashboard', { cache: 'no-store' })).json();
  const out = {};
  for (const w of sseSet.widgets.values()) {
    const n = set.indexOf(w.channel);
    const server = state.channels[w.channel].items.map(i => i.id);
    const mine = w.items.map(i => own(i.id, n));
    const at = server.indexOf(mine[0]);
    out[w.channel] = mine.length > 0 && at >= 0 &&
      mine.every((id, k) => at + k >= server.length || server[at + k] === id) ? true : { mine, server };
  }
  return out;
})()"#;

async fn no_gap(browser: &Browser) {
    let script = format!("const done = arguments[0]; {NO_GAP}.then(done, e => done(String(e)));");
    let result = browser
        .execute_async(&script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let map = result
        .as_object()
        .unwrap_or_else(|| panic!("no-gap check: {result}"));
    assert!(map.len() >= 11, "{result}");
    for (channel, ok) in map {
        assert_eq!(ok, &Value::Bool(true), "{channel}: {ok}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_plain_http1_every_widget_is_live_on_one_stream_and_fetch_answers_at_once() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("set-plain");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let browser = chromium.start(&dir.join("profile")).await;
    let http = client();

    browser.open(&demo.url("/")).await;
    let nav = browser
        .eval("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        .await;
    assert_eq!(nav, "http/1.1");
    let widgets = browser
        .eval("document.querySelectorAll('[data-channel]').length")
        .await;
    assert_eq!(widgets, 11);
    // All 11 live, not the 5 or 6 a browser's six HTTP/1.1 connections allowed one stream each.
    assert_eq!(all_live(&browser, 2).await, 11);
    for widget in browser.sse_status().await {
        assert_eq!(widget["role"], "leader", "{widget}");
        assert_eq!(widget["state"], "open", "{widget}");
    }
    settle_at(&http, &demo, 1).await;
    let metrics = get_json(&http, &demo.url("/api/hub/metrics")).await;
    // Per channel the set counts once on each: 11 in the per-channel total.
    assert_eq!(metrics["open_streams"], 11, "{metrics}");

    // A fetch from the same tab is answered at once: the stream holds one connection of six.
    let script = "const done = arguments[0]; const t = performance.now();
        Promise.race([fetch('/api/state/dashboard', { cache: 'no-store' }).then(r => r.status),
                      new Promise(r => setTimeout(() => r('timed out'), 5000))])
          .then(s => done({ status: s, ms: performance.now() - t }));";
    let answer = browser.execute_async(script, vec![]).await.unwrap();
    println!("fetch over HTTP/1.1 beside the stream: {answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(
        answer["ms"].as_f64().unwrap_or(f64::MAX) < 1000.0,
        "{answer}"
    );
    no_gap(&browser).await;

    // The events the page dispatches are its widgets' own: a server `error` or `open` on the
    // one EventSource (a MessageEvent) opens no second stream.
    browser
        .run(
            "const es = sseEventSources()[0]; es.marked = true;
             for (const type of ['error', 'open', 'error']) {
               es.dispatchEvent(new MessageEvent(type, { data: 'from the server' }));
             }",
            vec![],
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(streams(&http, &demo).await, 1);
    let same = browser.eval(
        "sseEventSources()[0].marked === true && sseEventSources()[0].readyState === EventSource.OPEN",
    )
    .await;
    assert_eq!(same, true, "{:#?}", browser.sse_status().await);
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tabs_hold_one_stream_and_another_takes_over_exactly_when_the_leader_closes() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("set-tabs");
    let demo = Demo::start(&dir, free_port(), &[]).await;
    let browser = chromium.start(&dir.join("profile")).await;
    let http = client();

    let first = browser.window().await.unwrap();
    browser.open(&demo.url("/")).await;
    assert_eq!(all_live(&browser, 1).await, 11);
    let mut tabs = vec![first];
    for _ in 0..2 {
        let tab = browser.new_window(true).await.unwrap().handle;
        browser.switch_to_window(tab.clone()).await.unwrap();
        browser.open(&demo.url("/")).await;
        tabs.push(tab);
    }
    // Every tab live, over HTTP/2, and one stream for the three.
    let mut leader = None;
    for tab in &tabs {
        browser.switch_to_window(tab.clone()).await.unwrap();
        assert_eq!(all_live(&browser, 2).await, 11);
        let role = browser.eval("sseSet.role").await;
        if role == "leader" {
            assert!(leader.is_none(), "two leaders");
            leader = Some(tab.clone());
        }
    }
    assert_eq!(
        browser
            .eval("performance.getEntriesByType('navigation')[0].nextHopProtocol")
            .await,
        "h2"
    );
    let leader = leader.unwrap_or_else(|| panic!("no tab holds the stream"));
    settle_at(&http, &demo, 1).await;

    // Close the leader: another tab takes the stream over, from the last cursor it received.
    browser.switch_to_window(leader.clone()).await.unwrap();
    browser.close_window().await.unwrap();
    let rest: Vec<_> = tabs.into_iter().filter(|t| *t != leader).collect();
    browser.switch_to_window(rest[0].clone()).await.unwrap();
    let before = browser
        .eval("sseStatus()[0].events")
        .await
        .as_u64()
        .unwrap();
    let closed = Instant::now();
    let mut new_leader = None;
    while new_leader.is_none() {
        for tab in &rest {
            browser.switch_to_window(tab.clone()).await.unwrap();
            if browser
                .eval("sseSet.role === 'leader' && sseSet.state === 'open'")
                .await
                == true
            {
                new_leader = Some(tab.clone());
            }
        }
        assert!(
            closed.elapsed() < Duration::from_secs(15),
            "no tab took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "a tab took the stream over {:?} after the leader closed",
        closed.elapsed()
    );
    for tab in &rest {
        browser.switch_to_window(tab.clone()).await.unwrap();
        let more = format!("sseStatus().every(s => s.events >= {} + 3)", before);
        browser
            .wait_for("events after the takeover", &more, Duration::from_secs(15))
            .await;
        for widget in browser.sse_status().await {
            assert_eq!(widget["resets"], 0, "{widget}");
        }
        // No event lost or repeated across the takeover, in either tab.
        no_gap(&browser).await;
    }
    settle_at(&http, &demo, 1).await;
    browser.close().await.unwrap();
}
