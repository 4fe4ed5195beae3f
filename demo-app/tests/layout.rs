//! Every page fits a phone: at 390 px and at 1280 px wide, no page scrolls sideways and every
//! form's submit button (the Post button above all) lies inside the viewport. The same run
//! keeps a screenshot of every page at both widths in the target directory
//! (`<target>/screenshots/<page>-<width>.png`), and with `UPDATE_SCREENSHOTS=1` refreshes the
//! ones the README shows (`docs/`).
//!
//! Headless Chromium over WebDriver against the real binary, on loopback; skipped with one
//! `skipped:` line when Chromium or chromedriver is missing (never under `CI=true`).

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::{
    client, publish, test_dir,
    webdriver::{Browser, Chromium},
    Demo,
};
use fantoccini::Locator;
use serde_json::{json, Value};
use testkit::free_port;

/// The widths a page must fit: a phone (iPhone 12 to 15) and a laptop.
const WIDTHS: [(u32, u32); 2] = [(390, 844), (1280, 900)];

/// The pages, by the name their screenshots take, and their paths. `/me` needs the session the
/// test signs in with; `/generate/{id}` is added once a run exists.
const PAGES: [(&str, &str); 5] = [
    ("dashboard", "/"),
    ("notifications", "/notifications"),
    ("hub", "/hub"),
    ("login", "/login"),
    ("me", "/me"),
];

/// The screenshots the README shows, as `(page, width)`: written to `docs/<page>-<width>.png`
/// when `UPDATE_SCREENSHOTS=1`.
const IN_README: [(&str, u32); 3] = [("dashboard", 390), ("notifications", 390), ("hub", 390)];

/// What the page measures of itself: how wide it is against the viewport, the elements that
/// stick out on the right (to say what to fix), and the rectangles of the submit buttons.
const MEASURE: &str = r##"(() => {
  const vw = window.innerWidth, vh = window.innerHeight;
  const wide = [...document.querySelectorAll("body *")]
    .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > vw + 0.5; })
    .slice(0, 8)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${e.className.baseVal ?? e.className} right=${Math.round(e.getBoundingClientRect().right)}`);
  const buttons = [...document.querySelectorAll("form button[type=submit]")].map((b) => {
    const r = b.getBoundingClientRect();
    return { text: b.textContent.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom };
  });
  return { vw, vh, scrollWidth: document.documentElement.scrollWidth, wide, buttons };
})()"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_and_a_laptop_with_its_post_button_on_screen() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let dir = test_dir("layout");
    let demo = Demo::start(&dir, free_port(), &[]).await;
    let http = client();

    // Content as a user sees it after a while: a long notification without spaces (a URL) and
    // a run, so the run page has its text and the feeds are not empty.
    let long = format!("https://example.com/{}", "a-very-long-path-".repeat(12));
    let unbroken = "x".repeat(120);
    for text in ["Deploy finished in 42 s", &long, &unbroken] {
        publish(
            &http,
            &demo,
            "notifications",
            &json!({"event": "notification", "data": {"text": text}}),
        )
        .await;
    }
    let run: Value = http
        .post(demo.url("/api/runs"))
        .json(&json!({"prompt": "a phone-sized page", "tokens": 120, "rate": 200}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("starting a run: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("the run's answer: {e}"));
    let run_id = run["id"].as_str().unwrap_or_else(|| panic!("{run}"));
    let run_page = format!("/generate/{run_id}");
    let mut pages: Vec<(&str, &str)> = PAGES.to_vec();
    pages.push(("generate", "/generate"));
    pages.push(("run", &run_page));

    let browser = chromium.start(&dir.join("profile")).await;
    sign_in(&browser, &demo, "phone").await;

    let shots = target_dir().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("{}: {e}", shots.display()));
    let update_docs = std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (width, height) in WIDTHS {
        set_viewport(&browser, width, height).await;
        for &(name, path) in &pages {
            browser.open(&demo.url(path)).await;
            // Live and drawn: the page's streams are open (the login page has none).
            browser.wait_for(
                &format!("{path} open"),
                "document.readyState === 'complete' && (!window.sseStatus || sseStatus().every(s => s.state === 'open'))",
                Duration::from_secs(15),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(if name == "dashboard" {
                2_500
            } else {
                500
            }))
            .await;
            let m = browser.eval(MEASURE).await;
            failures.extend(judge(&m, name, width));

            let png = browser.screenshot_png(path).await;
            let file = shots.join(format!("{name}-{width}.png"));
            std::fs::write(&file, &png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if update_docs && IN_README.contains(&(name, width)) {
                let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
                let file = docs.join(format!("{name}-{width}.png"));
                std::fs::write(&file, &png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            }
        }
    }
    let _ = browser.close().await;
    assert!(
        failures.is_empty(),
        "pages that do not fit:\n{}",
        failures.join("\n")
    );
    eprintln!("screenshots in {}", shots.display());
}

/// What is wrong with a page's measurements at `width`, one line per fault.
fn judge(m: &Value, name: &str, width: u32) -> Vec<String> {
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let (vw, vh) = (number(&m["vw"]), number(&m["vh"]));
    let mut faults = Vec::new();
    assert_eq!(
        vw,
        f64::from(width),
        "{name}: the viewport is {width} px wide"
    );
    if number(&m["scrollWidth"]) > vw {
        faults.push(format!(
            "{name} at {width} px: scrollWidth {} > innerWidth {vw}; sticking out: {}",
            m["scrollWidth"], m["wide"]
        ));
    }
    for button in m["buttons"].as_array().into_iter().flatten() {
        let inside = number(&button["left"]) >= 0.0
            && number(&button["right"]) <= vw
            && number(&button["top"]) >= 0.0
            && number(&button["bottom"]) <= vh;
        if !inside {
            faults.push(format!(
                "{name} at {width} px: button {button} is not inside the {vw}x{vh} viewport"
            ));
        }
    }
    if matches!(name, "notifications" | "me") {
        let posts = m["buttons"].as_array().into_iter().flatten();
        if !posts.into_iter().any(|b| b["text"] == "Post") {
            faults.push(format!("{name} at {width} px: no Post button"));
        }
    }
    faults
}

/// Sets the window so that the page's viewport is exactly `width` x `height` CSS pixels.
async fn set_viewport(browser: &Browser, width: u32, height: u32) {
    browser
        .set_window_size(width, height)
        .await
        .unwrap_or_else(|e| panic!("resizing to {width}x{height}: {e}"));
    // Headless windows have no frame, but measure and correct in case one has.
    let inner = browser
        .eval("[window.innerWidth, window.innerHeight]")
        .await;
    let (iw, ih) = (
        inner[0].as_u64().unwrap_or(0) as u32,
        inner[1].as_u64().unwrap_or(0) as u32,
    );
    if (iw, ih) != (width, height) {
        browser
            .set_window_size(
                width + width.saturating_sub(iw),
                height + height.saturating_sub(ih),
            )
            .await
            .unwrap_or_else(|e| panic!("resizing to {width}x{height}: {e}"));
    }
}

/// Signs in through the login form, as a person would.
async fn sign_in(browser: &Browser, demo: &Demo, user: &str) {
    browser.open(&demo.url("/login")).await;
    let form = browser
        .form(Locator::Css("form[action='/login']"))
        .await
        .unwrap_or_else(|e| panic!("the login form: {e}"));
    form.set_by_name("user", user)
        .await
        .unwrap_or_else(|e| panic!("typing the user name: {e}"));
    form.submit()
        .await
        .unwrap_or_else(|e| panic!("signing in: {e}"));
    browser
        .wait_for(
            "the private page after signing in",
            "location.pathname === '/me'",
            Duration::from_secs(10),
        )
        .await;
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` when set, else the `target` directory this
/// test binary runs from (`<target>/<profile>/deps/layout-…`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}
