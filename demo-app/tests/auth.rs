//! Private `user.<name>` channels against the real binary: sign in, read your own channel, and
//! be refused another user's, a forged or an expired cookie, at connect and at reconnect.

mod common;

use std::time::Duration;

use common::{test_dir, Demo};
use reqwest::{header, redirect, StatusCode};
use testkit::{free_port, SseConnection};

const WAIT: Duration = Duration::from_secs(5);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_channel_only_and_stolen_forged_or_missing_cookies_are_refused() {
    let dir = test_dir("auth-http");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
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
    common::publish(
        &anonymous,
        &demo,
        "user.alice",
        &serde_json::json!({"data": "hi"}),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_the_stream_with_reauth_and_a_renewed_cookie_resumes_it() {
    let dir = test_dir("auth-expiry");
    let demo = Demo::start(&dir, free_port(), &["--plain", "--session-ttl", "2s"]).await;
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
    let first = common::publish(
        &anonymous,
        &demo,
        "user.alice",
        &serde_json::json!({"data": "one"}),
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
    let second = common::publish(
        &anonymous,
        &demo,
        "user.alice",
        &serde_json::json!({"data": "two"}),
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
