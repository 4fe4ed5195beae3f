//! What a person reads on the live pages, in a real browser (headless Chromium): charts with a
//! clock axis, units and legends over a fixed window; rates that hold still; widgets that say
//! since when their data is stale while the server is down; a refused post that says why; and
//! notifications with the time they were published.
//!
//! Skipped with one `skipped:` line when Chromium or chromedriver is missing (never under
//! `CI=true`). Every wait is bounded; everything runs on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{client, test_dir, webdriver::Chromium, Demo};
use serde_json::{json, Value};
use testkit::free_port;

/// `14:30:05`.
fn is_clock(label: &str) -> bool {
    let b = label.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

fn widget<'a>(all: &'a [Value], channel: &str) -> &'a Value {
    all.iter()
        .find(|w| w["channel"] == channel)
        .unwrap_or_else(|| panic!("no widget {channel} in {all:#?}"))
}

fn labels(value: &Value) -> Vec<String> {
    let all = value.as_array().cloned().unwrap_or_default();
    all.iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_show_clock_time_units_and_legends_and_hub_rates_hold_still() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("charts");
    let demo = Demo::start(&dir, free_port(), &[]).await;
    // A few samples in the store before the page is rendered: the chart starts from them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let browser = chromium.start(&dir.join("profile")).await;

    browser.open(&demo.url("/")).await;
    let all = browser.wait_for(
        "every chart drawn with its axes",
        "(() => { const s = window.sseStatus ? sseStatus() : []; \
           return s.length === 11 && s.every(w => w.state === 'open' && w.chart && w.chart.xLabels.length >= 2) ? s : null; })()",
        Duration::from_secs(15),
    )
    .await;
    let all = all.as_array().cloned().unwrap_or_default();
    for w in &all {
        let chart = &w["chart"];
        // The server-rendered state drew the chart before any live event.
        assert!(chart["seeded"].as_u64() >= Some(2), "{w:#}");
        // A fixed window of two minutes, whatever the number of points.
        assert_eq!(chart["window"], 120, "{w:#}");
        let x = labels(&chart["xLabels"]);
        assert!(x.iter().all(|l| is_clock(l)), "clock labels: {x:?}");
    }
    let cpu = &widget(&all, "sys.cpu")["chart"];
    assert!(
        labels(&cpu["yLabels"]["y"])
            .iter()
            .any(|l| l.ends_with(" %")),
        "{cpu:#}"
    );
    assert_eq!(cpu["legend"], json!([]), "one line, no legend: {cpu:#}");
    let net = &widget(&all, "sys.net")["chart"];
    assert!(
        labels(&net["yLabels"]["y"])
            .iter()
            .any(|l| l.ends_with(" KiB/s")),
        "{net:#}"
    );
    assert_eq!(net["legend"], json!(["rx", "tx"]), "{net:#}");
    let load = &widget(&all, "sys.load")["chart"];
    assert_eq!(
        load["legend"],
        json!(["1 min", "5 min", "15 min"]),
        "{load:#}"
    );
    assert_eq!(browser.eval("cspViolations()").await, json!([]));

    // The hub page: events/s and open streams, each on its own axis.
    browser.open(&demo.url("/hub")).await;
    let hub = browser.wait_for(
        "the hub chart",
        "(() => { const w = window.sseStatus && sseStatus()[0]; \
           return w && w.chart && w.chart.xLabels.length >= 2 && w.chart.yLabels.rate.length ? w : null; })()",
        Duration::from_secs(15),
    )
    .await;
    let chart = &hub["chart"];
    assert_eq!(
        chart["legend"],
        json!(["events / s", "open streams"]),
        "{hub:#}"
    );
    assert!(
        labels(&chart["yLabels"]["rate"])
            .iter()
            .any(|l| l.ends_with(" /s")),
        "{hub:#}"
    );
    assert!(!labels(&chart["yLabels"]["streams"]).is_empty(), "{hub:#}");
    assert_eq!(browser.eval("cspViolations()").await, json!([]));

    // The dashboard's sources publish 11 events a second, in one burst: once the rate's window
    // is full, every reading is near 11 (between two readings it was 0 or 22).
    let since_start = Duration::from_secs(13);
    tokio::time::sleep(since_start.saturating_sub(Duration::from_secs(4))).await;
    let mut readings = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let shown = browser
            .eval("Number(document.querySelector('[data-key=events_per_sec]').textContent)")
            .await;
        readings.push(shown.as_f64().unwrap_or(f64::NAN));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("events/s shown on /hub, every 500 ms: {readings:?}");
    assert!(
        readings.iter().all(|r| (8.0..=14.0).contains(r)),
        "a steady 11 events/s: {readings:?}"
    );
    let _ = browser.close().await;
}

const TOKEN: &str = "s3cret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_carry_their_time_and_refusals_and_stale_data_say_what_happened() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("stale");
    let args = ["--retry", "500ms", "--publish-token", TOKEN];
    let mut demo = Demo::start(&dir, free_port(), &args).await;
    let http = client();
    let notify = |text: &str| {
        let url = demo.url("/api/channels/notifications/events");
        let body = json!({"event": "notification", "data": {"text": text}});
        http.post(url).bearer_auth(TOKEN).json(&body).send()
    };
    let browser = chromium.start(&dir.join("profile")).await;

    // A notification published while the page is open shows `HH:MM:SS - text`.
    browser
        .open_live(&demo.url("/notifications"), Duration::from_secs(10))
        .await;
    let posted = notify("deployed v2").await.unwrap();
    assert_eq!(posted.status(), 201);
    let live = browser.wait_for(
        "the live notification",
        "(() => { const li = document.querySelector('.feed li'); return li && li.textContent.endsWith('deployed v2') ? li.textContent : null; })()",
        Duration::from_secs(5),
    )
    .await;
    let live = live.as_str().unwrap_or_default().to_owned();
    let state = browser.eval("JSON.stringify(sseStatus()[0])").await;
    let (time, text) = live
        .split_once(" - ")
        .unwrap_or_else(|| panic!("no time in {live:?}; {state}"));
    assert!(is_clock(time) && text == "deployed v2", "{live}");
    // The server renders it the same way (the same clock here: one machine, one time zone).
    let html = http
        .get(demo.url("/notifications"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(">{live}</li>")), "{live} in\n{html}");

    // A refused post says what the server said, not a status code or a TypeError.
    browser
        .run(
            "document.querySelector('#notify [name=text]').value = 'no token';
             document.querySelector('#notify button').click();",
            vec![],
        )
        .await;
    let refused = browser.wait_for(
        "the refusal",
        "(() => { const t = document.getElementById('notify-status').textContent; return t.startsWith('failed') ? t : null; })()",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        refused,
        "failed: missing or wrong bearer token: send `Authorization: Bearer <token>` (401)"
    );

    // The server stops: the feed says since when its data is stale, and a post says the server
    // can not be reached.
    let stopped_at = browser.eval("Date.now()").await;
    demo.stop().await;
    let stale = browser.wait_for(
        "the feed stale",
        "(() => { const t = document.querySelector('.conn .stale').textContent; return t ? t : null; })()",
        Duration::from_secs(5),
    )
    .await;
    let stale = stale.as_str().unwrap_or_default().to_owned();
    let since = stale.strip_prefix("stale since ").unwrap_or_default();
    assert!(is_clock(since), "{stale}");
    let expected = browser.eval(
        &format!("(() => {{ const d = new Date({stopped_at}); return [d.getHours(), d.getMinutes(), d.getSeconds()].map(n => String(n).padStart(2, '0')).join(':'); }})()"),
    )
    .await;
    let after = browser.eval("(() => { const d = new Date(); return [d.getHours(), d.getMinutes(), d.getSeconds()].map(n => String(n).padStart(2, '0')).join(':'); })()").await;
    assert!(
        expected.as_str() <= Some(since) && Some(since) <= after.as_str(),
        "{expected} <= {since} <= {after}"
    );
    browser
        .run(
            "document.querySelector('#notify [name=token]').value = 's3cret';
             document.querySelector('#notify button').click();",
            vec![],
        )
        .await;
    let unreachable = browser.wait_for(
        "the post while the server is down",
        "(() => { const t = document.getElementById('notify-status').textContent; return t.includes('can not be reached') ? t : null; })()",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        !unreachable.to_string().contains("TypeError"),
        "{unreachable}"
    );

    // Back: live again, and no longer stale.
    demo.start_again().await;
    browser.wait_for(
        "the feed live and fresh",
        "sseStatus()[0].state === 'open' && document.querySelector('.conn .stale').textContent === ''",
        Duration::from_secs(20),
    )
    .await;

    // The dashboard: every widget says it, on the one stream of the set.
    browser.open(&demo.url("/")).await;
    browser.wait_for(
        "every widget open",
        "window.sseStatus && sseStatus().length === 11 && sseStatus().every(w => w.state === 'open')",
        Duration::from_secs(15),
    )
    .await;
    demo.stop().await;
    let stale = browser.wait_for(
        "every widget stale",
        "(() => { const t = [...document.querySelectorAll('.conn .stale')].map(s => s.textContent); \
           return t.length === 11 && t.every(s => /^stale since \\d\\d:\\d\\d:\\d\\d$/.test(s)) ? t : null; })()",
        Duration::from_secs(5),
    )
    .await;
    println!("dashboard while the server is down: {}", stale[0]);
    demo.start_again().await;
    browser.wait_for(
        "every widget live and fresh",
        "sseStatus().every(w => w.state === 'open') && [...document.querySelectorAll('.conn .stale')].every(s => s.textContent === '')",
        Duration::from_secs(20),
    )
    .await;
    let fresh = browser.sse_status().await;
    assert!(
        fresh.iter().all(|w| w["staleSince"].is_null()),
        "{fresh:#?}"
    );

    // /me's form too says what the server said: its own channel takes its session (no token),
    // and once the session is gone the post is refused with the reason.
    browser.open(&demo.url("/login")).await;
    browser
        .run(
            "document.querySelector('[name=user]').value = 'ada'; document.querySelector('main form').submit();",
            vec![],
        )
        .await;
    browser
        .wait_for(
            "the /me page",
            "location.pathname === '/me' && window.meStatus && meStatus.state === 'open'",
            Duration::from_secs(10),
        )
        .await;
    let post = "document.getElementById('me-status').textContent = '';
         document.querySelector('#me-post [name=text]').value = 'a note';
         document.querySelector('#me-post button').click();";
    browser.run(post, vec![]).await;
    browser
        .wait_for(
            "the /me post",
            "document.getElementById('me-status').textContent === 'posted'",
            Duration::from_secs(5),
        )
        .await;
    browser
        .execute_async(
            "fetch('/logout', { method: 'POST', redirect: 'manual' }).then(() => arguments[0](true))",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("signing out: {e}"));
    browser.run(post, vec![]).await;
    let refused = browser.wait_for(
        "the /me refusal",
        "(() => { const t = document.getElementById('me-status').textContent; return t.startsWith('refused') ? t : null; })()",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        refused,
        "refused: `user.ada` is private: not signed in: POST /login with a user name first (401)"
    );
    let _ = browser.close().await;
}
