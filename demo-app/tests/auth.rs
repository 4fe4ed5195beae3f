//! Private `user.<name>` channels against the real binary: sign in, read your own channel, and
//! be refused another user's, a forged or an expired cookie, at connect and at reconnect; the
//! `/me` page in Chromium renews its session at `sse-reauth` and misses nothing.
//!
//! Each story runs on the in-memory store (`memory::...`) and on a Redis server of its own
//! (`redis::...`). A story that needs redis-server or Chromium prints one `skipped:` line when
//! it is missing (and fails under `CI=true`).

mod common;

use std::{
    ops::Deref,
    time::{Duration, Instant},
};

use common::{test_dir, webdriver::Chromium, Demo};
use reqwest::{header, redirect, StatusCode};
use serde_json::json;
use testkit::{free_port, redis::RedisServer, SseConnection};

const WAIT: Duration = Duration::from_secs(5);

/// The replay store a story runs on.
#[derive(Debug, Clone, Copy)]
enum Store {
    Memory,
    /// A redis-server of the story's own, on a free loopback port.
    Redis,
}

/// A demo on a store, with its Redis server (if any) kept running until the demo has stopped.
struct OnStore {
    demo: Demo,
    _redis: Option<RedisServer>,
}

impl Deref for OnStore {
    type Target = Demo;

    fn deref(&self) -> &Demo {
        &self.demo
    }
}

impl Store {
    /// Starts the demo with `args` on this store, in a directory named after `name` and the
    /// store; `None` (after one `skipped:` line) when it needs redis-server and that is missing.
    async fn start(self, name: &str, args: &[&str]) -> Option<OnStore> {
        let redis = match self {
            Store::Memory => None,
            Store::Redis => Some(
                RedisServer::start()
                    .unwrap_or_else(|err| panic!("starting redis-server: {err}"))?,
            ),
        };
        let url = redis.as_ref().map(RedisServer::url);
        // The test publishes to users' private channels as a server would: with the token.
        let mut args = args.to_vec();
        args.extend(["--publish-token", common::PUBLISH_TOKEN]);
        if let Some(url) = &url {
            args.extend(["--store", url.as_str()]);
        }
        let dir = test_dir(&format!("{name}-{self:?}"));
        let demo = Demo::start(&dir, free_port(), &args).await;
        Some(OnStore {
            demo,
            _redis: redis,
        })
    }
}

/// Runs each story (an `async fn(Store)`) as two tests: `memory::<story>` and `redis::<story>`.
macro_rules! on_both_stores {
    ($($story:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story(super::Store::Memory).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    super::$story(super::Store::Redis).await;
                }
            )+
        }
    };
}

on_both_stores!(
    own_channel_only_and_stolen_forged_or_missing_cookies_are_refused,
    a_session_ends_the_stream_with_reauth_and_a_renewed_cookie_resumes_it,
    the_me_page_renews_its_session_at_sse_reauth_and_misses_nothing,
);

/// A plain HTTP client that sends `cookie` (a `sid=...` pair) with every request.
fn with_cookie(cookie: &str) -> reqwest::Client {
    let mut headers = header::HeaderMap::new();
    headers.insert(header::COOKIE, cookie.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `user` in: the `sid=...` pair of the answer's cookie.
async fn login(demo: &Demo, http: &reqwest::Client, user: &str) -> (String, String) {
    let answer = http
        .post(demo.url("/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("user={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "login {user}");
    assert_eq!(answer.headers()[header::LOCATION], "/me");
    let set = answer.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    (set.split(';').next().unwrap().to_owned(), set)
}

async fn open(demo: &Demo, http: &reqwest::Client, channel: &str) -> SseConnection {
    SseConnection::connect(http, &demo.url(&format!("/events/{channel}")), None)
        .await
        .unwrap()
}

async fn own_channel_only_and_stolen_forged_or_missing_cookies_are_refused(store: Store) {
    let Some(demo) = store.start("auth-http", &["--plain"]).await else {
        return;
    };
    let anonymous = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let (alice, set) = login(&demo, &anonymous, "alice").await;
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "no Secure over cleartext: {set}");
    let bad = anonymous
        .post(demo.url("/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("user=a+b")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let as_alice = with_cookie(&alice);
    let me = as_alice.get(demo.url("/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert!(me.text().await.unwrap().contains("user.alice"));
    let me = anonymous.get(demo.url("/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::SEE_OTHER,
        "not signed in: to /login"
    );

    // Her own channel: a stream that carries what is posted to it.
    let mut own = open(&demo, &as_alice, "user.alice").await;
    assert_eq!(own.status(), StatusCode::OK);
    common::publish_with(
        &anonymous,
        &demo,
        "user.alice",
        &serde_json::json!({"data": "hi"}),
        Some(common::PUBLISH_TOKEN),
    )
    .await;
    let event = own.next_event(WAIT).await.unwrap().unwrap();
    assert_eq!(event.data, "hi");

    // Someone else's channel: 403 with a message naming who she is.
    let stolen = open(&demo, &as_alice, "user.bob").await;
    assert_eq!(stolen.status(), StatusCode::FORBIDDEN);
    let why = as_alice
        .get(demo.url("/events/user.bob"))
        .send()
        .await
        .unwrap();
    assert!(why.text().await.unwrap().contains("signed in as `alice`"));
    // No cookie, or a forged one (name changed, signature kept; or made up): 401.
    assert_eq!(
        open(&demo, &anonymous, "user.alice").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let renamed = with_cookie(&alice.replacen("alice", "bob", 1));
    assert_eq!(
        open(&demo, &renamed, "user.bob").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let made_up = with_cookie("sid=bob:99999999999:00ff");
    assert_eq!(
        open(&demo, &made_up, "user.bob").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Public channels stay public.
    assert_eq!(
        open(&demo, &anonymous, "notifications").await.status(),
        StatusCode::OK
    );

    // Switching accounts: the client signed in as bob reads bob's channel, no longer alice's.
    let (bob, _) = login(&demo, &as_alice, "bob").await;
    let as_bob = with_cookie(&bob);
    assert_eq!(
        open(&demo, &as_bob, "user.bob").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        open(&demo, &as_bob, "user.alice").await.status(),
        StatusCode::FORBIDDEN
    );
    let renewed = anonymous
        .post(demo.url("/session/renew"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        renewed.status(),
        StatusCode::UNAUTHORIZED,
        "renew without a session"
    );
}

async fn a_session_ends_the_stream_with_reauth_and_a_renewed_cookie_resumes_it(store: Store) {
    let args = ["--plain", "--session-ttl", "2s"];
    let Some(demo) = store.start("auth-expiry", &args).await else {
        return;
    };
    let anonymous = reqwest::Client::new();
    let (alice, _) = login(
        &demo,
        &reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
        "alice",
    )
    .await;
    let as_alice = with_cookie(&alice);
    let mut stream = open(&demo, &as_alice, "user.alice").await;
    assert_eq!(stream.status(), StatusCode::OK);
    let first = common::publish_with(
        &anonymous,
        &demo,
        "user.alice",
        &serde_json::json!({"data": "one"}),
        Some(common::PUBLISH_TOKEN),
    )
    .await;
    assert_eq!(
        stream
            .next_event(WAIT)
            .await
            .unwrap()
            .unwrap()
            .last_event_id,
        first
    );

    // At the session's end the stream says `sse-reauth` with where to resume, and ends.
    let reauth = loop {
        let event = stream
            .next_event(WAIT)
            .await
            .unwrap()
            .expect("an sse-reauth event");
        if event.event_type == "sse-reauth" {
            break event;
        }
    };
    let body: serde_json::Value = serde_json::from_str(&reauth.data).unwrap();
    assert_eq!(body["resume_from"], first.as_str(), "{body}");
    stream.wait_for_end(WAIT).await.unwrap();

    // The old cookie is refused now (401 at reconnect), and meanwhile one more event comes.
    assert_eq!(
        open(&demo, &as_alice, "user.alice").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let second = common::publish_with(
        &anonymous,
        &demo,
        "user.alice",
        &serde_json::json!({"data": "two"}),
        Some(common::PUBLISH_TOKEN),
    )
    .await;
    // Renewing it (just past the expiry) gives a new cookie that resumes with no gap.
    let renewed = as_alice
        .post(demo.url("/session/renew"))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), StatusCode::NO_CONTENT);
    let set = renewed.headers()[header::SET_COOKIE].to_str().unwrap();
    let as_alice = with_cookie(set.split(';').next().unwrap());
    let url = demo.url("/events/user.alice");
    let mut resumed = SseConnection::connect(&as_alice, &url, Some(&first))
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let event = resumed.next_event(WAIT).await.unwrap().unwrap();
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        ("two", second.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure() {
    let dir = test_dir("auth-tls");
    let demo = Demo::start(&dir, free_port(), &[]).await;
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let (_, set) = login(&demo, &http, "alice").await;
    assert!(set.contains("; Secure"), "{set}");
}

/// What the `/me` page says about itself, for failure messages.
const ME_REPORT: &str =
    "({ status: window.meStatus, conn: document.getElementById('me-conn')?.textContent, \
     items: [...document.querySelectorAll('#me-feed .items li')].map(li => li.textContent) })";

/// Signed in through the form, the `/me` page's native EventSource reads `user.alice`. Each
/// session lasts 2-3 s (`--session-ttl 3s`, expiry in whole seconds): at its end the stream says
/// `sse-reauth`, me.js renews the cookie, and the EventSource reconnects by itself with
/// `Last-Event-ID`. Notes published steadily across two renewals are each delivered once and on
/// the page once, in order, and the EventSource never CLOSED (CLOSED is final: the page would stay `closed`).
async fn the_me_page_renews_its_session_at_sse_reauth_and_misses_nothing(store: Store) {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let started = Instant::now();
    let args = ["--session-ttl", "3s", "--retry", "300ms"];
    let Some(demo) = store.start("auth-me-browser", &args).await else {
        return;
    };
    let browser = chromium.start(&demo.dir.join("profile")).await;
    let wait = |what: &'static str, expr: &'static str, timeout: Duration| {
        browser.wait_for_reporting(what, expr, ME_REPORT, timeout)
    };
    browser.open(&demo.url("/login")).await;
    browser
        .run(
            "document.querySelector('[name=user]').value = 'alice';
             document.querySelector('form button').click();",
            vec![],
        )
        .await;
    wait(
        "/me with its stream open",
        "location.pathname === '/me' && window.meStatus && meStatus.state === 'open'",
        Duration::from_secs(10),
    )
    .await;

    let http = common::client();
    let mut published = Vec::new();
    loop {
        let text = format!("note {}", published.len());
        let id = common::publish_with(
            &http,
            &demo,
            "user.alice",
            &json!({ "data": text }),
            Some(common::PUBLISH_TOKEN),
        )
        .await;
        published.push((id, text));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if published.len() % 5 == 0 && browser.eval("meStatus.renewed").await.as_u64() >= Some(2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not two renewals in 30 s: {:#}",
            browser.eval(ME_REPORT).await
        );
    }
    // And after the last renewal's reconnect.
    for _ in 0..3 {
        let text = format!("note {}", published.len());
        let id = common::publish_with(
            &http,
            &demo,
            "user.alice",
            &json!({ "data": text }),
            Some(common::PUBLISH_TOKEN),
        )
        .await;
        published.push((id, text));
    }
    let expect = format!(
        "document.querySelectorAll('#me-feed .items li').length >= {}",
        published.len()
    );
    browser
        .wait_for_reporting("every note", &expect, ME_REPORT, WAIT)
        .await;
    let shown = browser
        .eval("[...document.querySelectorAll('#me-feed .items li')].map(li => [li.dataset.id, li.textContent]).reverse()")
        .await;
    let shown: Vec<(String, String)> = serde_json::from_value(shown.clone())
        .unwrap_or_else(|err| panic!("the feed {shown}: {err}"));
    assert_eq!(shown, published, "oldest first, each once");
    let status = browser.eval("meStatus").await;
    assert_eq!(status["state"], "open", "never CLOSED: {status}");
    // Each once from the server too, not only on the page (which hides a repeat).
    assert_eq!(status["delivered"], published.len(), "{status}");
    assert!(status["reauths"].as_u64() >= Some(2), "{status}");
    let metrics = common::get_json(&http, &demo.url("/api/hub/metrics")).await;
    assert!(
        metrics["closed"]["reauth"].as_u64() >= Some(2),
        "{metrics:#}"
    );
    println!(
        "{store:?}: {} notes across {} renewals, in {:?}",
        published.len(),
        status["renewed"],
        started.elapsed()
    );
    let _ = browser.close().await;
}
