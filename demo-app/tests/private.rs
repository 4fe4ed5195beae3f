//! A private `user.<name>` channel is private for writing and for listing too, against the real
//! binary: only its owner's session (or the publish token, when one is set) publishes to it, and
//! no page, state, metrics answer or scrape names it to anyone but its owner.

mod common;

use std::time::{Duration, Instant};

use common::{client, test_dir, Demo};
use reqwest::{header, redirect, StatusCode};
use serde_json::{json, Value};
use testkit::free_port;

/// Signs `user` in: the `sid=...` pair of the answer's cookie.
async fn sign_in(demo: &Demo, user: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http
        .post(demo.url("/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("user={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "login {user}");
    let set = answer.headers()[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// `POST /api/channels/{channel}/events` with `headers`: the status and the answer's JSON.
async fn post(demo: &Demo, channel: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = client()
        .post(demo.url(&format!("/api/channels/{channel}/events")))
        .json(&json!({"event": "notification", "data": {"text": "hi"}}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let answer = req.send().await.unwrap();
    let status = answer.status();
    (status, answer.json().await.unwrap_or_default())
}

async fn get_text(demo: &Demo, path: &str, cookie: Option<&str>) -> String {
    let mut req = client().get(demo.url(path));
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let answer = req.send().await.unwrap();
    assert!(
        answer.status().is_success(),
        "GET {path}: {}",
        answer.status()
    );
    answer.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_writes_a_private_channel_and_nobody_else_sees_it_listed() {
    let dir = test_dir("private");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let alice = sign_in(&demo, "alice").await;
    let bob = sign_in(&demo, "bob").await;

    // Writing: nobody without a session, not alice, but bob.
    let (status, answer) = post(&demo, "user.bob", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("not signed in"),
        "{answer}"
    );
    let (status, answer) = post(&demo, "user.bob", &[("cookie", &alice)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("signed in as `alice`"),
        "{answer}"
    );
    let (status, answer) = post(&demo, "user.bob", &[("cookie", &bob)]).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        post(&demo, "user.alice", &[("cookie", &alice)]).await.0,
        StatusCode::CREATED
    );
    // Public channels stay open to anyone (no token set).
    assert_eq!(
        post(&demo, "notifications", &[]).await.0,
        StatusCode::CREATED
    );

    // Listing: the hub page's busiest channels are read by everyone, so they name no private
    // channel. Wait for a sample taken after a channel made after bob's.
    assert_eq!(
        post(&demo, "made-after-bob", &[]).await.0,
        StatusCode::CREATED
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = get_text(&demo, "/api/state/hub", None).await;
        if state.contains("made-after-bob") {
            assert!(
                !state.contains("user."),
                "/api/state/hub lists private channels: {state}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hub sample names the new channel: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for cookie in [None, Some(alice.as_str())] {
        let page = get_text(&demo, "/hub", cookie).await;
        assert!(page.contains("made-after-bob"), "{page}");
        assert!(
            !page.contains("user.bob"),
            "/hub as {cookie:?} lists user.bob"
        );
        let scrape = get_text(&demo, "/metrics", cookie).await;
        assert!(scrape.contains("channel=\"made-after-bob\""), "{scrape}");
        assert!(
            !scrape.contains("user."),
            "/metrics names a private channel:\n{scrape}"
        );
    }
    // The metrics API lists the caller's own private channel, and no other.
    let listed = |metrics: &Value| -> Vec<String> {
        let channels = metrics["channels"].as_object().unwrap();
        channels
            .keys()
            .filter(|c| c.starts_with("user."))
            .cloned()
            .collect()
    };
    let anonymous: Value =
        serde_json::from_str(&get_text(&demo, "/api/hub/metrics", None).await).unwrap();
    assert_eq!(listed(&anonymous), Vec::<String>::new());
    assert_eq!(anonymous["channels"]["made-after-bob"]["published"], 1);
    let as_alice: Value =
        serde_json::from_str(&get_text(&demo, "/api/hub/metrics", Some(&alice)).await).unwrap();
    assert_eq!(listed(&as_alice), ["user.alice"]);
    let as_bob: Value =
        serde_json::from_str(&get_text(&demo, "/api/hub/metrics", Some(&bob)).await).unwrap();
    assert_eq!(listed(&as_bob), ["user.bob"]);
    assert_eq!(
        as_bob["channels"]["user.bob"]["published"], 1,
        "bob's channel holds bob's post only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_publish_token_a_private_channel_takes_the_token_or_its_owners_session() {
    let dir = test_dir("private-token");
    let demo = Demo::start(&dir, free_port(), &["--plain", "--publish-token", "s3cret"]).await;
    let bob = sign_in(&demo, "bob").await;
    let alice = sign_in(&demo, "alice").await;
    let bearer = ("authorization", "Bearer s3cret");
    assert_eq!(
        post(&demo, "user.bob", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&demo, "user.bob", &[("cookie", &alice)]).await.0,
        StatusCode::FORBIDDEN
    );
    let wrong = ("authorization", "Bearer guess");
    assert_eq!(
        post(&demo, "user.bob", &[wrong]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&demo, "user.bob", &[bearer]).await.0,
        StatusCode::CREATED
    );
    // The /me page posts with its session alone: it knows no token.
    assert_eq!(
        post(&demo, "user.bob", &[("cookie", &bob)]).await.0,
        StatusCode::CREATED
    );
    // A public channel still takes the token, whoever is signed in.
    assert_eq!(
        post(&demo, "notifications", &[("cookie", &bob)]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&demo, "notifications", &[bearer]).await.0,
        StatusCode::CREATED
    );
}
