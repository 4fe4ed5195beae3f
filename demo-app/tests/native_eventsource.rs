//! A browser's own `EventSource`, created by the test in the page (not the demo's client.js),
//! against the real binary in headless Chromium: refused at a full cap it comes back by itself
//! and gets in once a slot frees; across the ends of its stream's lifetime it has every event
//! once, in order.
//!
//! Skipped with one `skipped:` line when Chromium or chromedriver is missing (never under
//! `CI=true`). Every wait is bounded; everything runs on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{
    client, get_json, publish, test_dir,
    webdriver::{Browser, Chromium},
    Demo,
};
use serde_json::{json, Value};
use testkit::free_port;

const WAIT: Duration = Duration::from_secs(5);

/// Opens `new EventSource(arguments[1])` as `natives[arguments[0]]` and records what it sees:
/// opens, errors, `sse-busy` refusals (with the page's time `at`), messages (id and data), and whether it was ever CLOSED
/// without the test closing it (checked at every error and every 10 ms).
const OPEN_NATIVE: &str = r#"
const [name, url] = arguments;
window.natives = window.natives || {};
window.nativeReport = () => Object.fromEntries(Object.entries(window.natives)
  .map(([k, v]) => [k, Object.assign({ readyState: v.es.readyState }, v.s)]));
const es = new EventSource(url);
const s = { opens: 0, errors: 0, busy: [], events: [], everClosed: false, closedByTest: false };
const watch = () => {
  if (es.readyState === EventSource.CLOSED && !s.closedByTest) s.everClosed = true;
};
es.addEventListener('open', () => { s.opens += 1; });
es.addEventListener('error', () => { s.errors += 1; watch(); });
es.addEventListener('sse-busy', (e) => {
  s.busy.push(Object.assign(JSON.parse(e.data), { at: performance.now() }));
});
es.addEventListener('message', (e) => { s.events.push({ id: e.lastEventId, data: e.data }); });
setInterval(watch, 10);
window.natives[name] = { es, s };
"#;

/// What every native EventSource of the page has seen, for failure messages.
const REPORT: &str = "window.nativeReport && nativeReport()";

/// A native EventSource named `name` on `url` (a path of the page's origin).
async fn open_native(browser: &Browser, name: &str, url: &str) {
    browser
        .execute(OPEN_NATIVE, vec![json!(name), json!(url)])
        .await
        .unwrap_or_else(|err| panic!("opening the EventSource {name}: {err}"));
}

/// What the EventSource `name` has seen (see [`OPEN_NATIVE`]), with its `readyState`.
async fn seen(browser: &Browser, name: &str) -> Value {
    browser.eval(&format!("nativeReport()[{name:?}]")).await
}

async fn wait_until(browser: &Browser, what: &str, expr: &str, timeout: Duration) -> Value {
    browser
        .wait_for_reporting(what, expr, REPORT, timeout)
        .await
}

/// The messages an EventSource received, as `(id, data)`.
fn events(seen: &Value) -> Vec<(String, String)> {
    seen["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {seen}"))
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
            (field("id"), field("data"))
        })
        .collect()
}

/// A test's set-up: `demo` started with `args` in a fresh directory `name`, and a browser on a
/// page of its origin that runs no stream of its own (`/healthz`).
struct BlankPage {
    // Dropped in this order: the browser before the demo, the turn to run one last.
    browser: Browser,
    demo: Demo,
    http: reqwest::Client,
    /// When the test had its turn to run a browser.
    started: Instant,
    _chromium: Chromium,
}

impl BlankPage {
    /// `None` when Chromium or chromedriver is missing (after the `skipped:` line).
    async fn open(name: &str, args: &[&str]) -> Option<BlankPage> {
        let chromium = Chromium::find().await?;
        let started = Instant::now();
        let dir = test_dir(name);
        let demo = Demo::start(&dir, free_port(), args).await;
        let http = client();
        let browser = chromium.start(&dir.join("profile")).await;
        browser.open(&demo.url("/healthz")).await;
        Some(BlankPage {
            browser,
            demo,
            http,
            started,
            _chromium: chromium,
        })
    }

    /// Ends the browser.
    async fn close(self) {
        let _ = self.browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_full_cap_a_native_event_source_comes_back_by_itself_and_gets_in_once_a_slot_frees() {
    let args = ["--max-streams", "1", "--refusal-retry", "1s"];
    let Some(page) = BlankPage::open("native-busy", &args).await else {
        return;
    };
    let (browser, demo, http, started) = (&page.browser, &page.demo, &page.http, page.started);
    let channel = "native.busy";
    let url = format!("/events/{channel}");
    let metrics_url = demo.url("/api/hub/metrics");
    let metrics = || get_json(http, &metrics_url);

    // A takes the one slot, and streams.
    open_native(browser, "a", &url).await;
    wait_until(browser, "A open", "natives.a.s.opens === 1", WAIT).await;
    publish(http, demo, channel, &json!({"data": "for A"})).await;
    wait_until(
        browser,
        "A's event",
        "natives.a.s.events.length === 1",
        WAIT,
    )
    .await;
    assert_eq!(metrics().await["streams"], 1);

    // B is refused softly: `200` with `retry:` and `sse-busy`, and the browser comes back by
    // itself after the hint (twice here: two refusals), never CLOSED.
    open_native(browser, "b", &url).await;
    let refusals = wait_until(
        browser,
        "two soft refusals of B",
        "natives.b.s.busy.length >= 2 && natives.b.s.busy",
        Duration::from_secs(10),
    )
    .await;
    let refusals = refusals.as_array().cloned().unwrap_or_default();
    for refusal in &refusals {
        assert_eq!(refusal["reason"], "max_streams", "{refusal}");
        let retry = refusal["retry_ms"].as_u64().unwrap_or_default();
        assert!((1_000..=2_000).contains(&retry), "{refusal}");
    }
    // The browser waited as the `retry:` said (its own default is 3 s, above any hint here).
    let at = |r: &Value| r["at"].as_f64().unwrap_or_default();
    let waited = at(&refusals[1]) - at(&refusals[0]);
    let hint = refusals[0]["retry_ms"].as_f64().unwrap_or_default();
    assert!(
        (hint - 50.0..hint + 800.0).contains(&waited),
        "came back {waited} ms after a hint of {hint} ms"
    );
    // A still streams; B, waiting, gets nothing.
    publish(http, demo, channel, &json!({"data": "while B waits"})).await;
    wait_until(
        browser,
        "A's second",
        "natives.a.s.events.length === 2",
        WAIT,
    )
    .await;
    let b = seen(browser, "b").await;
    assert_eq!(b["everClosed"], false, "{b}");
    // Each refusal was a `200` event stream: the browser opened it before reading `sse-busy`.
    assert!(b["opens"].as_u64() >= Some(2), "{b}");
    assert_ne!(
        b["readyState"], 2,
        "B is CONNECTING (or reading a refusal): {b}"
    );
    assert_eq!(b["events"], json!([]), "{b}");
    let refused = metrics().await["refused_by_reason"]["max_streams"].as_u64();
    assert!(refused.is_some_and(|n| n >= 2), "{refused:?}");

    // A closes: B gets in on its next try, by itself, and streams what is published from then.
    browser
        .execute(
            "natives.a.s.closedByTest = true; natives.a.es.close();",
            vec![],
        )
        .await
        .unwrap_or_else(|err| panic!("closing A: {err}"));
    let freed = Instant::now();
    let mut after = Vec::new();
    while browser.eval("natives.b.s.events.length").await == 0 {
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "B not in 10 s after A closed: {:#}",
            browser.eval(REPORT).await
        );
        let data = format!("after A closed {}", after.len());
        let id = publish(http, demo, channel, &json!({ "data": data })).await;
        after.push((id, data));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admitted = freed.elapsed();
    for n in 0..3 {
        let data = format!("once B is in {n}");
        let id = publish(http, demo, channel, &json!({ "data": data })).await;
        after.push((id, data));
    }
    let expect = format!(
        "natives.b.s.events.length && natives.b.s.events.at(-1).data === {:?}",
        after[after.len() - 1].1
    );
    wait_until(browser, "B's last event", &expect, WAIT).await;
    let b = seen(browser, "b").await;
    let got = events(&b);
    // Exactly what was published since B got in: a tail of what was published after A closed,
    // in order, each once.
    let first = after.iter().position(|e| *e == got[0]).unwrap_or_else(|| {
        panic!(
            "B's first event {:?} was not published after A closed",
            got[0]
        )
    });
    assert_eq!(got, after[first..], "{b:#}");
    assert_eq!(b["everClosed"], false, "{b}");
    assert_eq!(b["readyState"], 1, "{b}");
    assert_eq!(metrics().await["streams"], 1);
    println!(
        "B refused {} times, in {admitted:?} after A closed; test took {:?}",
        b["busy"].as_array().map_or(0, Vec::len),
        started.elapsed()
    );
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_three_lifetime_ends_a_native_event_source_has_every_event_once_in_order() {
    let args = ["--max-stream-lifetime", "1500ms", "--retry", "200ms"];
    let Some(page) = BlankPage::open("native-lifetime", &args).await else {
        return;
    };
    let (browser, demo, http, started) = (&page.browser, &page.demo, &page.http, page.started);
    let channel = "native.lifetime";

    open_native(browser, "es", &format!("/events/{channel}")).await;
    wait_until(browser, "the stream open", "natives.es.s.opens === 1", WAIT).await;
    // Events published steadily (every 50 ms) while the stream ends and resumes three times or
    // more: events published between an end and the reconnect come as the replay.
    let mut published = Vec::new();
    loop {
        let data = format!("event {}", published.len());
        let id = publish(http, demo, channel, &json!({ "data": data })).await;
        published.push((id, data));
        tokio::time::sleep(Duration::from_millis(50)).await;
        if published.len() % 10 == 0 && browser.eval("natives.es.s.opens").await.as_u64() >= Some(4)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not three lifetime ends in 30 s: {:#}",
            browser.eval(REPORT).await
        );
    }
    let expect = format!("natives.es.s.events.length >= {}", published.len());
    wait_until(browser, "every event", &expect, WAIT).await;
    let es = seen(browser, "es").await;
    assert_eq!(events(&es), published, "{es:#}");
    assert_eq!(es["everClosed"], false, "{es}");
    assert!(es["errors"].as_u64() >= Some(3), "{es}");
    let metrics = get_json(http, &demo.url("/api/hub/metrics")).await;
    let ended = metrics["closed_by_reason"]["lifetime"].as_u64();
    assert!(ended >= Some(3), "{metrics:#}");
    println!(
        "{} events across {} lifetime ends, in {:?}",
        published.len(),
        ended.unwrap_or_default(),
        started.elapsed()
    );
    page.close().await;
}

/// A stream that delivered nothing before its lifetime ended: the browser has no last id of its
/// own to send, so the end itself must tell it where the stream was. What is published between
/// the end and the reconnect still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifetime_end_before_any_event_loses_nothing_published_before_the_reconnect() {
    let args = ["--max-stream-lifetime", "1s", "--retry", "1s"];
    let Some(page) = BlankPage::open("native-quiet", &args).await else {
        return;
    };
    let (browser, demo, http, started) = (&page.browser, &page.demo, &page.http, page.started);
    let channel = "native.quiet";

    open_native(browser, "es", &format!("/events/{channel}")).await;
    wait_until(browser, "the stream open", "natives.es.s.opens === 1", WAIT).await;
    wait_until(
        browser,
        "the lifetime's end",
        "natives.es.s.errors === 1",
        WAIT,
    )
    .await;
    // The browser reconnects after the retry hint (1-2 s): this is published before.
    let id = publish(http, demo, channel, &json!({"data": "in the gap"})).await;
    let es = seen(browser, "es").await;
    assert_eq!(es["opens"], 1, "published before the reconnect: {es}");
    wait_until(
        browser,
        "the event",
        "natives.es.s.events.length >= 1",
        WAIT,
    )
    .await;
    let es = seen(browser, "es").await;
    assert_eq!(events(&es), [(id, "in the gap".to_owned())], "{es:#}");
    assert_eq!(es["opens"], 2, "{es}");
    println!("resumed in {:?}", started.elapsed());
    page.close().await;
}
