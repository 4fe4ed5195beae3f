//! What a person sees on the pages, in headless Chromium against the real binary: the login form
//! checks the name and a refused name comes back as the form with the reason; the notification
//! feed keeps each entry's number, and the numbers fit; after a restart, every dashboard widget
//! counts the reset that reloaded it, and the page says why its charts emptied.
//!
//! The browser stories print one `skipped:` line without Chromium or chromedriver (a failure
//! under `CI=true`).

mod common;

use std::time::Duration;

use common::{client, publish, test_dir, webdriver::Chromium, Demo};
use serde_json::json;
use testkit::free_port;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_name_comes_back_as_the_form_with_the_reason() {
    let dir = test_dir("pages-login");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let answer = client()
        .post(demo.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=a.b")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let kind = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    let html = answer.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/login""#),
        "{html}"
    );
    assert!(
        html.contains("1 to 32 letters, digits"),
        "no reason in:\n{html}"
    );
    assert!(
        html.contains(r#"value="a.b""#),
        "the name typed is not kept:\n{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_checks_the_name_in_the_browser() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("pages-login-browser");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let browser = chromium.start(&dir.join("profile")).await;
    browser.open(&demo.url("/login")).await;
    // Chromium compiles `pattern` with the `v` flag: an invalid one checks nothing at all.
    let checks = browser
        .eval(
            "(() => { const i = document.querySelector('input[name=user]'); \
             return ['a.b', 'x y', 'bob', 'a-b_c', 'x'.repeat(33)].map((v) => { i.value = v; return i.validity.valid; }); })()",
        )
        .await;
    assert_eq!(checks, json!([false, false, true, true, false]));
    let _ = browser.close().await;
}

/// Each entry's number as the list shows it (the HTML ordinal value of each `li`).
const ORDINALS: &str = "(() => { const ol = document.querySelector('.feed .items'); \
  const items = [...ol.children]; let n = ol.reversed ? (ol.hasAttribute('start') ? ol.start : items.length) : ol.start; \
  return items.map((li) => { if (li.hasAttribute('value')) n = li.value; const v = n; n += ol.reversed ? -1 : 1; return [li.dataset.id, v]; }); })()";

/// How much room the numbers have against the width of the widest one, in pixels.
const ROOM: &str = "(() => { const ol = document.querySelector('.feed .items'); const li = ol.querySelector('li'); \
  const c = document.createElement('canvas').getContext('2d'); c.font = getComputedStyle(li).font; \
  const widest = Math.max(...[...ol.children].map((li) => li.value || 0), ol.children.length); \
  return [parseFloat(getComputedStyle(ol).paddingLeft), c.measureText(widest + '. ').width]; })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_entries_keep_their_numbers_and_the_numbers_fit() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("pages-feed");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let http = client();
    for n in 1..=12 {
        let body = json!({"event": "notification", "data": {"text": format!("note {n}")}});
        publish(&http, &demo, "notifications", &body).await;
    }
    let browser = chromium.start(&dir.join("profile")).await;
    browser.open(&demo.url("/notifications")).await;
    browser
        .wait_for(
            "the feed live",
            "window.sseStatus && sseStatus()[0].state === 'open'",
            WAIT,
        )
        .await;
    let before = browser.eval(ORDINALS).await;
    let numbers: Vec<i64> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=12).rev().collect::<Vec<_>>(),
        "newest first, numbered from the oldest"
    );
    let body = json!({"event": "notification", "data": {"text": "note 13"}});
    publish(&http, &demo, "notifications", &body).await;
    browser
        .wait_for(
            "the new note",
            "document.querySelectorAll('.feed .items li').length === 13",
            WAIT,
        )
        .await;
    let after = browser.eval(ORDINALS).await;
    let after = after.as_array().unwrap();
    assert_eq!(after[0][1], 13, "{after:?}");
    assert_eq!(
        &after[1..],
        before.as_array().unwrap().as_slice(),
        "entries were renumbered"
    );
    for width in [1280, 390] {
        browser.set_window_size(width, 844).await.unwrap();
        let room = browser.eval(ROOM).await;
        let (padding, widest) = (room[0].as_f64().unwrap(), room[1].as_f64().unwrap());
        assert!(
            padding >= widest,
            "at {width} px the numbers are cut: {padding} px for {widest} px"
        );
    }
    let _ = browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_every_widget_counts_its_reset_and_the_page_says_why() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("pages-restart");
    let mut demo = Demo::start(&dir, free_port(), &["--plain", "--retry", "500ms"]).await;
    let browser = chromium.start(&dir.join("profile")).await;
    browser.open(&demo.url("/")).await;
    browser
        .wait_for(
            "every widget live",
            "window.sseStatus && sseStatus().length === 11 && sseStatus().every((w) => w.state === 'open' && w.events >= 1)",
            WAIT,
        )
        .await;
    let note = "document.getElementById('reset-note')";
    let shown = browser.eval(&format!("!!({note} && !{note}.hidden)")).await;
    assert_eq!(shown, false, "a note is shown before any reset");
    demo.restart().await;
    let widgets = browser
        .wait_for(
            "every widget reset and live again",
            "(() => { const s = sseStatus(); return s.every((w) => w.resets === 1 && w.state === 'open') ? s : null; })()",
            Duration::from_secs(20),
        )
        .await;
    for widget in widgets.as_array().unwrap() {
        assert_eq!(widget["lastReset"], "epoch", "{widget}");
    }
    let shown = browser
        .eval("[...document.querySelectorAll('.conn .resets')].map((b) => b.textContent)")
        .await;
    assert_eq!(shown, json!(vec!["1"; 11]));
    let said = browser
        .eval(&format!("{note}.hidden ? '' : {note}.textContent"))
        .await;
    let said = said.as_str().unwrap_or_default();
    assert!(
        said.contains("restarted") && said.contains("history"),
        "{said:?}"
    );
    let _ = browser.close().await;
}
