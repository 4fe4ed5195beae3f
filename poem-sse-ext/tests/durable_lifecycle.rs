//! A durable stream's life as its users see it: the authorizer judging every operation, an SSE
//! follower that gets every byte live and stops after the close, closure visible to caches,
//! and shutdown ending live reads.
#![cfg(feature = "durable-streams")]

mod common;
mod durable_support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use durable_support::*;
use futures_util::StreamExt;
use poem_sse_ext::durable::{Access, Denied, DurableStreams, Operation};
use reqwest::StatusCode;
use testkit::parser::{ParsedEvent, Parser};

/// Reads SSE events from `response` until `stop` says so (or the body ends).
async fn events_until(
    response: reqwest::Response,
    stop: impl Fn(&ParsedEvent) -> bool,
) -> (Vec<ParsedEvent>, bool) {
    let mut body = response.bytes_stream();
    let mut parser = Parser::new();
    let mut events = Vec::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("an event within 5 s");
        let Some(chunk) = chunk else {
            return (events, true);
        };
        for event in parser.feed(&chunk.expect("body chunk")) {
            let last = stop(&event);
            events.push(event);
            if last {
                let ended = tokio::time::timeout(Duration::from_secs(5), body.next())
                    .await
                    .expect("the end")
                    .is_none();
                return (events, ended);
            }
        }
    }
}

#[tokio::test]
async fn the_authorizer_judges_every_operation_before_anything_happens() {
    let seen: Arc<Mutex<Vec<(Operation, String)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let streams = DurableStreams::builder()
        .authorizer(move |access: &Access<'_>| {
            log.lock()
                .unwrap()
                .push((access.operation, access.stream.to_owned()));
            let token = access.request.header("authorization");
            match access.operation {
                Operation::Read => Ok(()),
                Operation::Delete if access.stream == "kept" => {
                    Err(Denied::forbidden("kept is kept"))
                }
                _ if token == Some("Bearer ok") => Ok(()),
                _ => Err(Denied::unauthorized("writes need the bearer token")),
            }
        })
        .build();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/kept");

    let anonymous = client.put(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&anonymous, "www-authenticate").as_deref(),
        Some("Bearer")
    );
    assert_eq!(
        client.head(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "a refused create creates nothing"
    );

    let put = |body: &'static str| {
        client
            .put(&url)
            .bearer_auth("ok")
            .header("Content-Type", "text/plain")
            .body(body)
    };
    assert_eq!(put("a").send().await.unwrap().status(), StatusCode::CREATED);
    let anonymous = append(&client, &url, "text/plain", "b").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let post = client
        .post(&url)
        .bearer_auth("ok")
        .header("Content-Type", "text/plain")
        .body("b");
    assert_eq!(post.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        client
            .post(&url)
            .header("Stream-Closed", "true")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let close = client
        .post(&url)
        .bearer_auth("ok")
        .header("Stream-Closed", "true");
    assert_eq!(close.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "ab"
    );
    let denied = client.delete(&url).bearer_auth("ok").send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(denied.text().await.unwrap().trim(), "kept is kept");
    assert_eq!(
        client.head(&url).send().await.unwrap().status(),
        StatusCode::OK,
        "a refused delete deletes nothing"
    );

    let operations: Vec<Operation> = seen.lock().unwrap().iter().map(|(op, _)| *op).collect();
    for op in [
        Operation::Create,
        Operation::Append,
        Operation::Close,
        Operation::Delete,
        Operation::Read,
    ] {
        assert!(
            operations.contains(&op),
            "{op:?} was judged: {operations:?}"
        );
    }
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|(_, stream)| stream == "kept"));
}

#[tokio::test]
async fn an_sse_follower_gets_every_byte_live_and_ends_after_the_close() {
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/binary-follow");
    let every_byte: Vec<u8> = (0..=255).collect();
    client
        .put(&url)
        .header("Content-Type", "application/octet-stream")
        .body(every_byte[..100].to_vec())
        .send()
        .await
        .unwrap();

    let follower = client
        .get(format!("{url}?offset=-1&live=sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&follower, "content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(
        header(&follower, "stream-sse-data-encoding").as_deref(),
        Some("base64")
    );
    let writer = {
        let (client, url, rest) = (client.clone(), url.clone(), every_byte[100..].to_vec());
        tokio::spawn(async move {
            for part in rest.chunks(52) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert_eq!(
                    append(&client, &url, "application/octet-stream", part.to_vec())
                        .await
                        .status(),
                    StatusCode::NO_CONTENT
                );
            }
            let close = client
                .post(&url)
                .header("Stream-Closed", "true")
                .send()
                .await
                .unwrap();
            assert_eq!(close.status(), StatusCode::NO_CONTENT);
        })
    };
    let (events, ended) = events_until(follower, |e| {
        e.event_type == "control" && e.data.contains("streamClosed")
    })
    .await;
    writer.await.unwrap();
    assert!(ended, "the response ends after streamClosed");

    let mut received = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if event.event_type == "data" {
            assert_eq!(
                events.get(i + 1).map(|e| e.event_type.as_str()),
                Some("control"),
                "a control after every data event"
            );
            received.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(event.data.replace('\n', ""))
                    .unwrap(),
            );
        }
    }
    assert_eq!(received, every_byte);
    let last: serde_json::Value = events.last().unwrap().json().unwrap();
    assert_eq!(last["streamClosed"], true);
    assert!(last.get("streamCursor").is_none());
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(
        header(&head, "Stream-Next-Offset").as_deref(),
        last["streamNextOffset"].as_str()
    );
}

#[tokio::test]
async fn closing_changes_the_etag_and_head_does_not_renew_the_ttl() {
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/etag-close");
    create(&client, &url, "text/plain", b"data").await;
    let open = client.get(&url).send().await.unwrap();
    let etag = header(&open, "etag").unwrap();
    assert_eq!(
        client
            .get(&url)
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_MODIFIED
    );
    client
        .post(&url)
        .header("Stream-Closed", "true")
        .send()
        .await
        .unwrap();
    let closed = client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        closed.status(),
        StatusCode::OK,
        "a cached open answer must not hide the close"
    );
    assert_eq!(header(&closed, "Stream-Closed").as_deref(), Some("true"));
    assert_ne!(header(&closed, "etag"), Some(etag));

    // A recreated stream's answers never match the old one's ETags.
    let old = header(&closed, "etag").unwrap();
    assert_eq!(
        client.delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    client
        .put(&url)
        .header("Content-Type", "text/plain")
        .header("Stream-Closed", "true")
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(
        client
            .get(&url)
            .header("If-None-Match", &old)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let ttl = server.url("/v1/stream/ttl-head");
    client
        .put(&ttl)
        .header("Stream-TTL", "1")
        .send()
        .await
        .unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = client.head(&ttl).send().await.unwrap();
    }
    assert_eq!(
        client.head(&ttl).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "HEADs kept nothing alive"
    );
}

#[tokio::test]
async fn shutdown_ends_live_reads_at_once() {
    let streams = DurableStreams::builder()
        .long_poll_timeout(Duration::from_secs(30))
        .build();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/shutdown");
    create(&client, &url, "text/plain", b"").await;
    let follower = client
        .get(format!("{url}?offset=now&live=sse"))
        .send()
        .await
        .unwrap();
    let poll = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(format!("{url}?offset=now&live=long-poll"))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    streams.shutdown();
    let (events, ended) = events_until(follower, |_| false).await;
    assert!(ended && events.iter().all(|e| e.event_type == "control"));
    let poll = poll.await.unwrap();
    assert_eq!(poll.status(), StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let refused = client
        .get(format!("{url}?offset=now&live=sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn followers_at_different_offsets_each_get_exactly_their_data() {
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/many-followers");
    let created = create(&client, &url, "text/plain", b"a").await;
    let after_a = header(&created, "Stream-Next-Offset").unwrap();
    append(&client, &url, "text/plain", "b").await;
    // Followers from the start, from after "a", and from the tail, several of each: those at one
    // position share frames, those at another must never see them.
    let mut followers = Vec::new();
    for (offset, expected) in [("-1", "abcde"), (after_a.as_str(), "bcde"), ("now", "cde")] {
        for _ in 0..3 {
            let response = client
                .get(format!("{url}?offset={offset}&live=sse"))
                .send()
                .await
                .unwrap();
            followers.push((
                expected,
                tokio::spawn(events_until(response, |e| e.data.contains("streamClosed"))),
            ));
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for part in ["c", "d"] {
        append(&client, &url, "text/plain", part).await;
    }
    client
        .post(&url)
        .header("Content-Type", "text/plain")
        .header("Stream-Closed", "true")
        .body("e")
        .send()
        .await
        .unwrap();
    for (expected, follower) in followers {
        let (events, ended) = follower.await.unwrap();
        let data: String = events
            .iter()
            .filter(|e| e.event_type == "data")
            .map(|e| e.data.as_str())
            .collect();
        assert_eq!(data, expected);
        assert!(ended);
    }
}
