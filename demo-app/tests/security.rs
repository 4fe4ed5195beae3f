//! The pages' web security against the real binary: security headers on every page, and
//! notifications that look like markup stay text, in the server-rendered page and live.

mod common;

use std::time::Duration;

use common::{client, publish, test_dir, webdriver::Chromium, Demo};
use serde_json::json;
use testkit::free_port;

const PAGES: [&str; 3] = ["/", "/notifications", "/hub"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_the_security_headers_and_hsts_only_over_tls() {
    for (name, args) in [
        ("headers-tls", &[][..]),
        ("headers-plain", &["--plain"][..]),
    ] {
        let dir = test_dir(name);
        let demo = Demo::start(&dir, free_port(), args).await;
        let http = client();
        for path in PAGES {
            let page = http.get(demo.url(path)).send().await.unwrap();
            assert_eq!(page.status(), 200, "{name} {path}");
            let headers = page.headers();
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
            let hsts = headers.get("strict-transport-security");
            if args.is_empty() {
                assert!(hsts.is_some_and(|v| v.to_str().unwrap().starts_with("max-age=")));
            } else {
                assert!(hsts.is_none(), "no HSTS over cleartext");
            }
            // No inline script may be left for the policy to block: every executable <script>
            // has a src; the one without is the page's JSON state.
            let html = page.text().await.unwrap();
            for tag in html.split("<script").skip(1) {
                let tag = tag.split('>').next().unwrap_or_default();
                assert!(
                    tag.contains("src=") || tag.contains("type=\"application/json\""),
                    "{path}: inline script <script{tag}>"
                );
            }
            assert!(
                !html.contains(" onload=") && !html.contains(" onclick="),
                "{path}"
            );
        }
    }
}

const MARKUP: [&str; 2] = [
    "<img src=x onerror=\"window.__xss='img'\">",
    "</script><script>window.__xss='script'</script>",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_notifications_is_shown_as_text_rendered_and_live() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("xss");
    let demo = Demo::start(&dir, free_port(), &["--retry", "500ms"]).await;
    let http = client();
    let notify = |text: &str| json!({"event": "notification", "data": {"text": text}});
    // Before the page loads: the server renders these.
    for text in MARKUP {
        publish(&http, &demo, "notifications", &notify(text)).await;
    }
    let browser = chromium.start(&dir.join("profile")).await;
    browser
        .open_live(&demo.url("/notifications"), Duration::from_secs(10))
        .await;
    // While the page is open: client.js adds these.
    for text in MARKUP {
        publish(&http, &demo, "notifications", &notify(text)).await;
    }
    let shown = browser.wait_for(
        "four notifications in the feed",
        "(() => { const li = [...document.querySelectorAll('.feed li')].map(l => l.textContent); \
         return li.length >= 4 ? li : null; })()",
        Duration::from_secs(10),
    )
    .await;
    let expected: Vec<&str> = MARKUP
        .iter()
        .rev()
        .chain(MARKUP.iter().rev())
        .copied()
        .collect();
    // Each after the time it was published: `14:30:05 - <img ...>`.
    let shown: Vec<String> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|li| {
            let li = li.as_str().unwrap();
            let (time, text) = li.split_once(" - ").unwrap_or(("", li));
            assert!(time.len() == 8 && time.as_bytes()[2] == b':', "{li}");
            text.to_owned()
        })
        .collect();
    assert_eq!(shown, expected, "newest first, as text");
    let created = browser
        .eval("document.querySelectorAll('main img, main script, .feed li *').length")
        .await;
    assert_eq!(created, 0, "no element was made from a notification");
    assert_eq!(browser.eval("window.__xss === undefined").await, true);
    let _ = browser.close().await;
}
