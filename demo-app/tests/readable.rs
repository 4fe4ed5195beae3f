//! The pages read well on a phone (390 px) as well as a laptop, in headless Chromium against the
//! real binary: `/hub` keeps each head id on one line and breaks channel names only after a
//! dot; a dashboard widget shows its cursor short on one line (the full id on hover); charts
//! carry a time label every 30 s; byte rates read in the unit that fits (`50 MiB/s`, never
//! `50k KiB/s`); `/me` entries carry their time; a run's page shows its prompt; and the buttons
//! are styled, Sign out clear of the feed.
//!
//! Prints one `skipped:` line without Chromium or chromedriver (a failure under `CI=true`).

mod common;

use std::time::Duration;

use common::{client, publish, test_dir, webdriver::Chromium, Demo};
use fantoccini::Locator;
use serde_json::{json, Value};
use testkit::free_port;

const WAIT: Duration = Duration::from_secs(15);

/// Per element of `selector`, how many line boxes it takes.
fn lines_of(selector: &str) -> String {
    format!("[...document.querySelectorAll({selector:?})].map((e) => e.getClientRects().length)")
}

/// Per channel cell of the busiest channels: whether every word of the name stays on one line.
/// A name may break after a dot (where the page offers a break) or after `-` or `_`, never
/// inside a word (a word broken inside takes two rectangles).
const NAMES_WHOLE: &str =
    "[...document.querySelectorAll('.channels tbody td:first-child')].map((td) => \
  [td.textContent, [...td.childNodes].filter((n) => n.nodeType === 3).every((n) => { \
    let at = 0; return n.textContent.split(/(?<=[-_.])/).every((word) => { \
      const r = document.createRange(); r.setStart(n, at); at += word.length; r.setEnd(n, at); \
      return r.getClientRects().length <= 1; }); })])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_read_well_on_a_phone() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("readable");
    let demo = Demo::start(&dir, free_port(), &[]).await;
    let http = client();
    // Channels with long dotted names, so that the table has names to break.
    for name in [
        "orders.eu-west.payments",
        "inventory.warehouse-north.restocks",
    ] {
        publish(&http, &demo, name, &json!({"data": 1})).await;
    }
    let browser = chromium.start(&dir.join("profile")).await;
    browser.set_window_size(390, 844).await.unwrap();

    // /hub: head ids on one line, names broken after a dot only.
    browser.open(&demo.url("/hub")).await;
    browser
        .wait_for(
            "the busiest channels",
            "[...document.querySelectorAll('.channels tbody td:first-child')].some((td) => td.textContent.startsWith('inventory'))",
            WAIT,
        )
        .await;
    let heads = browser.eval(&lines_of(".channels tbody code")).await;
    assert!(
        heads.as_array().unwrap().iter().all(|n| n == 1),
        "head ids wrap: {heads}"
    );
    let names = browser.eval(NAMES_WHOLE).await;
    for name in names.as_array().unwrap() {
        assert_eq!(name[1], true, "a channel name broken inside a word: {name}");
    }
    let titled = browser
        .eval("[...document.querySelectorAll('.channels tbody code')].every((c) => c.title.length >= c.textContent.length - 1)")
        .await;
    assert_eq!(titled, true, "every short id has its full id in its title");

    // The dashboard: each widget's id on one line, short, the full cursor in its title; charts
    // with a time label every 30 s; byte rates in readable units.
    browser.open(&demo.url("/")).await;
    let all = browser
        .wait_for(
            "every widget live",
            "(() => { const s = window.sseStatus ? sseStatus() : []; return s.length === 11 && s.every((w) => w.state === 'open' && w.events >= 1 && w.chart && w.chart.xLabels.length) ? s : null; })()",
            WAIT,
        )
        .await;
    let ids = browser.eval(&lines_of(".conn .last-id")).await;
    assert!(
        ids.as_array().unwrap().iter().all(|n| n == 1),
        "ids over several lines: {ids}"
    );
    let full = browser
        .eval("[...document.querySelectorAll('.conn .last-id')].map((c) => [c.textContent.length, c.title.length])")
        .await;
    for pair in full.as_array().unwrap() {
        let (shown, title) = (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap());
        assert!(
            shown <= 12 && title >= shown,
            "short id, full in the title: {pair}"
        );
    }
    for w in all.as_array().unwrap() {
        let x = w["chart"]["xLabels"].as_array().unwrap();
        assert!(x.len() >= 3, "{}: time labels {x:?}", w["channel"]);
    }
    let units = browser
        .execute_async(
            "import('/assets/format.js').then((f) => arguments[0]([50 * 1024, 1536, 900, 3 * 1024 * 1024].map((v) => f.amount(v, 'KiB/s'))), (e) => arguments[0](String(e)))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        units,
        json!(["50 MiB/s", "1.5 MiB/s", "900 KiB/s", "3 GiB/s"])
    );
    let disk: Value = all
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["channel"] == "sys.disk")
        .cloned()
        .unwrap();
    let labels = disk["chart"]["yLabels"]["y"].to_string();
    assert!(!labels.contains("k KiB/s"), "{labels}");
    let units: std::collections::BTreeSet<&str> = disk["chart"]["yLabels"]["y"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str()?.rsplit_once(' ').map(|(_, unit)| unit))
        .collect();
    assert_eq!(units.len(), 1, "one unit per axis: {labels}");

    // /me: entries with their time, styled buttons, Sign out clear of the feed.
    browser.open(&demo.url("/login")).await;
    let form = browser
        .form(Locator::Css("form[action='/login']"))
        .await
        .unwrap();
    form.set_by_name("user", "reader").await.unwrap();
    form.submit().await.unwrap();
    browser
        .wait_for(
            "the /me page",
            "location.pathname === '/me' && window.meStatus && meStatus.state === 'open'",
            WAIT,
        )
        .await;
    browser
        .run(
            "document.querySelector('#me-post [name=text]').value = 'a timed note'; document.querySelector('#me-post button').click();",
            vec![],
        )
        .await;
    let line = browser
        .wait_for(
            "the note on the feed",
            "(() => { const li = document.querySelector('#me-feed .items li'); return li && li.textContent.includes('a timed note') ? li.textContent : null; })()",
            WAIT,
        )
        .await;
    let line = line.as_str().unwrap().to_owned();
    assert!(is_timed(&line), "no time: {line:?}");
    browser.open(&demo.url("/me")).await;
    let rendered = browser
        .eval("document.querySelector('#me-feed .items li').textContent")
        .await;
    assert!(
        is_timed(rendered.as_str().unwrap()),
        "rendered without a time: {rendered}"
    );
    let look = browser
        .eval(
            "[...document.querySelectorAll('main button')].map((b) => { const s = getComputedStyle(b); return [b.textContent.trim(), s.borderRadius, s.backgroundColor]; })",
        )
        .await;
    for button in look.as_array().unwrap() {
        assert_ne!(button[1], "0px", "an unstyled button: {button}");
        assert_ne!(
            button[2], "rgb(239, 239, 239)",
            "an unstyled button: {button}"
        );
    }
    let gap = browser
        .eval("document.getElementById('me-feed').getBoundingClientRect().top - document.querySelector('form[action=\"/logout\"] button').getBoundingClientRect().bottom")
        .await;
    assert!(
        gap.as_f64().unwrap() >= 8.0,
        "Sign out touches the feed: {gap} px apart"
    );

    // A run's page shows its prompt.
    let run: Value = http
        .post(demo.url("/api/runs"))
        .json(&json!({"prompt": "lanterns over the harbour", "tokens": 20, "rate": 200}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    browser
        .open(&demo.url(&format!("/generate/{}", run["id"].as_str().unwrap())))
        .await;
    let prompt = browser
        .eval("document.getElementById('run-prompt')?.textContent ?? ''")
        .await;
    assert!(
        prompt
            .as_str()
            .unwrap()
            .contains("lanterns over the harbour"),
        "{prompt}"
    );
    let _ = browser.close().await;
}

/// `14:30:05 - text`.
fn is_timed(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11 && b[2] == b':' && b[5] == b':' && &line[8..11] == " - "
}
