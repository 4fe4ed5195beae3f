//! The demo serves Durable Streams at `/v1/stream/`, over HTTP/2 + TLS like every route, with
//! writes guarded by the publish token and reads open.

mod common;

use common::{client, test_dir, Demo};
use reqwest::StatusCode;
use testkit::free_port;

const TOKEN: &str = "s3cret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_streams_writes_need_the_publish_token_and_reads_do_not() {
    let dir = test_dir("durable-streams");
    let mut demo = Demo::start(&dir, free_port(), &["--publish-token", TOKEN]).await;
    let http = client();
    let url = demo.url("/v1/stream/chat/answer-1");

    let anonymous = http
        .put(&url)
        .header("Content-Type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["x-content-type-options"], "nosniff");
    let wrong = http.put(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        http.head(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "nothing was created"
    );

    let created = http
        .put(&url)
        .bearer_auth(TOKEN)
        .header("Content-Type", "text/plain")
        .body("Hello")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.version(), reqwest::Version::HTTP_2);
    assert!(created.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/v1/stream/chat/answer-1"));
    let offset = created.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();

    let anonymous = http
        .post(&url)
        .header("Content-Type", "text/plain")
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for (body, close) in [(", world", false), ("!", true)] {
        let mut post = http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("Content-Type", "text/plain")
            .body(body);
        if close {
            post = post.header("Stream-Closed", "true");
        }
        assert_eq!(post.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(
        http.delete(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Anyone reads: catch-up from the start, and SSE from an offset to the close.
    let read = http.get(&url).send().await.unwrap();
    assert_eq!(read.headers()["stream-closed"], "true");
    assert_eq!(read.text().await.unwrap(), "Hello, world!");
    let sse = http
        .get(format!("{url}?offset={offset}&live=sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(std::time::Duration::from_secs(5), sse.text())
        .await
        .expect("the SSE answer ends")
        .unwrap();
    assert!(text.contains("event: data\ndata:, world!\n"), "{text}");
    assert!(text.contains("\"streamClosed\":true"), "{text}");

    assert_eq!(
        http.delete(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    demo.stop().await;
}

/// `--store redis://`: a durable stream survives a restart of the demo (same bytes, same
/// offsets); on the memory store the restarted demo answers `404` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_stream_survives_a_restart_on_redis_and_not_in_memory() {
    let Some(redis) = testkit::redis::RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = test_dir("durable-restart");
    let http = client();
    let store = redis.url();
    for (args, survives) in [
        (vec!["--store", store.as_str()], true),
        (vec!["--store", "memory"], false),
    ] {
        let mut demo = Demo::start(&dir, free_port(), &args).await;
        let url = demo.url("/v1/stream/chat/restart");
        let created = http
            .put(&url)
            .header("Content-Type", "text/plain")
            .body("kept ")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "{args:?}");
        let offset = created.headers()["stream-next-offset"]
            .to_str()
            .unwrap()
            .to_owned();
        let appended = http
            .post(&url)
            .header("Content-Type", "text/plain")
            .body("across restarts")
            .send()
            .await
            .unwrap();
        assert_eq!(appended.status(), StatusCode::NO_CONTENT);

        demo.restart().await;
        let read = http.get(format!("{url}?offset=-1")).send().await.unwrap();
        if !survives {
            assert_eq!(read.status(), StatusCode::NOT_FOUND, "memory forgets");
            continue;
        }
        assert_eq!(read.status(), StatusCode::OK);
        assert_eq!(read.text().await.unwrap(), "kept across restarts");
        let rest = http
            .get(format!("{url}?offset={offset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            rest.text().await.unwrap(),
            "across restarts",
            "the same offsets"
        );
    }
}
