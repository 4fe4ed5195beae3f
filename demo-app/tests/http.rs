//! Every route and error answer of the demo, against the real binary on a loopback port.

mod common;

use std::time::Duration;

use common::{client, get_json, run_to_exit, test_dir, Demo};
use reqwest::{StatusCode, Version};
use serde_json::{json, Value};
use testkit::{free_port, SseConnection};

const TOKEN: &str = "s3cret";
const ALLOWED: &str = "https://dash.example";
const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_assets_state_and_metrics() {
    let dir = test_dir("pages");
    let demo = Demo::start(&dir, free_port(), &[]).await;
    let http = client();

    let health = http.get(demo.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.version(),
        Version::HTTP_2,
        "TLS negotiates h2 by ALPN"
    );
    assert_eq!(health.text().await.unwrap(), "ok");
    assert!(dir.join("certs/cert.pem").exists() && dir.join("certs/key.pem").exists());

    // Let the publisher produce a few samples, so pages have state to render.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let page = http.get(demo.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.matches("data-channel=\"sys.").count() >= 8, "{html}");
    assert!(html.contains("<script type=\"application/json\" id=\"state\">"));
    assert!(html.contains("/assets/client.js"));
    assert!(
        html.contains(" %</div>"),
        "CPU figure rendered on the server: {html}"
    );
    for path in ["/notifications", "/hub"] {
        let page = http.get(demo.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert!(
            page.text().await.unwrap().contains("data-channel="),
            "{path}"
        );
    }
    for (path, kind) in [
        ("/assets/client.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let asset = http.get(demo.url(path)).send().await.unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert!(asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }

    let state: Value = get_json(&http, &demo.url("/api/state/dashboard")).await;
    let cpu = &state["channels"]["sys.cpu"];
    let items = cpu["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{state}");
    assert_eq!(items.last().unwrap()["id"], cpu["id"], "state is at its id");
    let missing = http.get(demo.url("/api/state/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The metrics route answers `Hub::metrics()`, with a top-level `open_streams`.
    let mut stream = SseConnection::connect(&http, &demo.url("/events/sys.cpu"), None)
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    stream.next_event(WAIT).await.unwrap();
    let metrics: Value = get_json(&http, &demo.url("/api/hub/metrics")).await;
    assert!(metrics["open_streams"].as_u64().unwrap() >= 1, "{metrics}");
    assert!(
        metrics["channels"]["sys.cpu"]["published"]
            .as_u64()
            .unwrap()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_answers_and_errors() {
    let dir = test_dir("publish");
    let demo = Demo::start(
        &dir,
        free_port(),
        &[
            "--publish-token",
            TOKEN,
            "--heartbeat",
            "300ms",
            "--allow-origin",
            ALLOWED,
        ],
    )
    .await;
    let http = client();
    let url = demo.url("/api/channels/notifications/events");
    let post = |url: String, body: Value, token: Option<&str>| {
        let mut req = http.post(url).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let error = |response: reqwest::Response| async move {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    };

    // The page renders the feed at this id; a client resuming after it sees exactly what follows.
    let state: Value = get_json(&http, &demo.url("/api/state/notifications")).await;
    let rendered_at = state["channels"]["notifications"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let body = json!({"event": "notification", "data": {"text": "hello"}});
    let (status, message) = error(post(url.clone(), body.clone(), None).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("bearer token"), "{message}");
    let (status, _) = error(
        post(url.clone(), body.clone(), Some("wrong"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let bad_channel = demo.url("/api/channels/not%20valid/events");
    let (status, message) =
        error(post(bad_channel, body.clone(), Some(TOKEN)).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message.contains("invalid channel name"), "{message}");

    let huge = json!({"data": "x".repeat(70 * 1024)});
    let (status, message) = error(post(url.clone(), huge, Some(TOKEN)).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("65536"), "{message}");

    for (name, expected) in [
        ("two\nlines", "CR or LF"),
        ("", "must not be empty"),
        ("sse-reset", "reserved"),
        // EventSource would dispatch these to a page's connection listeners.
        ("error", "collides with EventSource"),
        ("open", "collides with EventSource"),
    ] {
        let (status, message) = error(
            post(url.clone(), json!({"event": name, "data": 1}), Some(TOKEN))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
        assert!(message.contains(expected), "{name:?}: {message}");
    }
    let not_json = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, message) = error(not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("must be JSON"), "{message}");

    // A plain-text post (what a cross-site form or `fetch` can send without a preflight).
    let plain_text = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, message) = error(plain_text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(message.contains("application/json"), "{message}");

    // A browser's post from a page of another origin, even with the token; an allowed origin
    // and the server's own may.
    let pages_url = demo.url("/api/channels/from-pages/events");
    let from = |origin: &str| {
        http.post(&pages_url)
            .bearer_auth(TOKEN)
            .header("origin", origin)
            .json(&json!({"data": "from a page"}))
            .send()
    };
    let (status, message) = error(from("https://evil.example").await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains("--allow-origin https://evil.example"),
        "{message}"
    );
    let own = demo.base.clone();
    for origin in [ALLOWED, own.as_str()] {
        let created = from(origin).await.unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "{origin}");
    }

    let mut ids = Vec::new();
    for data in [
        json!({"text": "one"}),
        json!("two, sent as it is"),
        json!([3]),
    ] {
        let created = post(
            url.clone(),
            json!({"event": "notification", "data": data}),
            Some(TOKEN),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let body: Value = created.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // JSON data is sent as it was written: no digit lost, no key moved, no space removed.
    let exact = r#"{"z": 0.1000000000000000055511151231257827, "a": 18446744073709551616}"#;
    let created = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(format!(r#"{{"event": "notification", "data": {exact}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    ids.push(body["id"].as_str().unwrap().to_owned());

    let stream_url = demo.url(&format!("/events/notifications?lastEventId={rendered_at}"));
    let mut stream = SseConnection::connect(&http, &stream_url, None)
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let events = stream.next_events(4, WAIT).await.unwrap();
    // A notification object gets the time it was published as its first field; every other
    // byte is as it was sent.
    let data: Vec<String> = events.iter().map(|e| without_stamp(&e.data)).collect();
    assert_eq!(
        data,
        [r#"{"text":"one"}"#, "two, sent as it is", "[3]", exact]
    );
    assert!(
        events[0].data.starts_with(r#"{"at":"20"#),
        "{}",
        events[0].data
    );
    assert!(
        !events[1].data.contains("\"at\""),
        "a string is never stamped"
    );
    let got: Vec<&str> = events.iter().map(|e| e.last_event_id.as_str()).collect();
    assert_eq!(got, ids);
    assert!(events.iter().all(|e| e.event_type == "notification"));
    // Idle: heartbeats only, no event.
    stream
        .expect_no_event(Duration::from_millis(800))
        .await
        .unwrap();
    assert!(stream.comments() >= 1, "a heartbeat every 300 ms");

    let invalid = SseConnection::connect(&http, &demo.url("/events/no%20such"), None)
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::NOT_FOUND);
    let long = "x".repeat(65);
    let invalid = SseConnection::connect(&http, &demo.url(&format!("/events/{long}")), None)
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_serves_http1_and_h2_prior_knowledge() {
    let dir = test_dir("plain");
    let demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    assert!(demo.base.starts_with("http://"));
    assert!(!dir.join("certs").exists(), "no certificate needed");
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let response = h1.get(demo.url("/")).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = SseConnection::connect(&h1, &demo.url("/events/sys.mem"), None)
        .await
        .unwrap();
    assert_eq!(stream.version(), Version::HTTP_11);
    assert_eq!(stream.header("connection"), Some("keep-alive"));
    stream.next_event(WAIT).await.unwrap();

    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut stream = SseConnection::connect(&h2c, &demo.url("/events/sys.mem"), None)
        .await
        .unwrap();
    assert_eq!(stream.version(), Version::HTTP_2);
    assert_eq!(stream.header("connection"), None, "RFC 9113 8.2.2");
    stream.next_event(WAIT).await.unwrap();
}

/// `--max-connections-per-ip 2`: a third connection from 127.0.0.2 is closed at once, while
/// 127.0.0.1 is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_per_ip_closes_the_extra_connections() {
    use tokio::{io::AsyncReadExt, net::TcpSocket};

    let dir = test_dir("per-ip");
    let demo = Demo::start(
        &dir,
        free_port(),
        &["--plain", "--max-connections-per-ip", "2"],
    )
    .await;
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], demo.port));
    let connect_from_second = || async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
        socket.connect(server).await.unwrap()
    };
    let _held = [connect_from_second().await, connect_from_second().await];
    let mut over = connect_from_second().await;
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        let mut buf = [0u8; 64];
        while over.read(&mut buf).await.unwrap_or(0) > 0 {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the third connection from 127.0.0.2 is still open"
    );
    let health = client().get(demo.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// SIGTERM with streams open over HTTP/2 and HTTP/1.1: each stream ends, the process exits
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_every_stream_and_exits_within_a_second() {
    let dir = test_dir("sigterm");
    let mut demo = Demo::start(&dir, free_port(), &[]).await;
    let h2 = client();
    let h1 = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .http1_only()
        .build()
        .unwrap();
    let mut streams = Vec::new();
    for i in 0..60 {
        let (http, channel) = if i % 6 == 0 {
            (&h1, "sys.mem")
        } else {
            (&h2, "sys.cpu")
        };
        let stream = SseConnection::connect(http, &demo.url(&format!("/events/{channel}")), None)
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        streams.push(stream);
    }
    let metrics: Value = get_json(&h2, &demo.url("/api/hub/metrics")).await;
    assert_eq!(metrics["open_streams"], 60, "{metrics}");

    let (status, took) = demo.stop().await;
    println!("exit {status} {took:?} after SIGTERM with 60 open streams");
    assert!(status.success(), "{status}:\n{}", demo.log());
    assert!(
        took < Duration::from_secs(1),
        "took {took:?}:\n{}",
        demo.log()
    );
    for stream in &mut streams {
        stream.wait_for_end(Duration::from_secs(1)).await.unwrap();
    }
}

/// After a restart (in-memory store: a new epoch), a client resuming with an old id gets the
/// reset signal with the id to continue from, then live events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_sends_an_epoch_reset() {
    let dir = test_dir("restart");
    let mut demo = Demo::start(&dir, free_port(), &["--plain"]).await;
    let http = client();
    let mut stream = SseConnection::connect(&http, &demo.url("/events/sys.cpu"), None)
        .await
        .unwrap();
    let old = stream
        .next_event(WAIT)
        .await
        .unwrap()
        .unwrap()
        .last_event_id;
    drop(stream);
    demo.restart().await;
    let mut stream = SseConnection::connect(&http, &demo.url("/events/sys.cpu"), Some(&old))
        .await
        .unwrap();
    let reset = stream.next_event(WAIT).await.unwrap().unwrap();
    assert_eq!(reset.event_type, "sse-reset");
    let data: Value = reset.json().unwrap();
    assert_eq!(data["reason"], "epoch");
    assert_eq!(
        data["resume_from"].as_str(),
        Some(reset.last_event_id.as_str())
    );
    let next = stream.next_event(WAIT).await.unwrap().unwrap();
    assert_eq!(next.event_type, "sample");
}

/// A store that can not be reached: the demo starts, and `/healthz` says why it is not healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_a_degraded_store() {
    let dir = test_dir("degraded");
    let nothing_there = format!("redis://127.0.0.1:{}", free_port());
    let demo =
        Demo::start_degraded(&dir, free_port(), &["--plain", "--store", &nothing_there]).await;
    let health = client().get(demo.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let reason = health.text().await.unwrap();
    assert!(reason.starts_with("store degraded: "), "{reason}");
}

#[test]
fn start_up_errors_are_clear() {
    let dir = test_dir("startup");
    let (status, stderr) = run_to_exit(&dir, &["--plain", "--store", "memcached://x"]);
    assert!(!status.success());
    assert!(
        stderr.contains("expected `memory`, a redis:// URL or redis-cluster://"),
        "{stderr}"
    );

    let (status, stderr) = run_to_exit(
        &dir,
        &["--cert", "missing/cert.pem", "--key", "missing/key.pem"],
    );
    assert!(!status.success());
    assert!(stderr.contains("can not read missing/cert.pem"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (status, stderr) = run_to_exit(&dir, &["--heartbeat", "soon"]);
    assert!(!status.success());
    assert!(stderr.contains("--heartbeat"), "{stderr}");

    // Publishing open to the network: refused, with how to set a token.
    let listen = format!("0.0.0.0:{}", free_port());
    let (status, stderr) = run_to_exit(&dir, &["--plain", "--listen", &listen]);
    assert!(!status.success());
    assert!(stderr.contains("without a publish token"), "{stderr}");
    assert!(stderr.contains("--publish-token TOKEN"), "{stderr}");
    let (status, stderr) = run_to_exit(&dir, &["--plain", "--publish-token", ""]);
    assert!(!status.success());
    assert!(stderr.contains("the publish token is empty"), "{stderr}");

    let (status, stderr) = run_to_exit(&dir, &["--allow-origin", "dash.example"]);
    assert!(!status.success());
    assert!(stderr.contains("expected an origin like"), "{stderr}");
}

/// `data` without the `"at":"<time>",` the demo puts first in a notification object.
fn without_stamp(data: &str) -> String {
    match data.strip_prefix(r#"{"at":""#) {
        Some(rest) => match rest.split_once(r#"","#) {
            Some((at, fields)) => {
                assert!(
                    at.ends_with('Z') && at.len() == 24,
                    "not an RFC 3339 UTC time: {at}"
                );
                format!("{{{fields}")
            }
            None => data.to_owned(),
        },
        None => data.to_owned(),
    }
}
