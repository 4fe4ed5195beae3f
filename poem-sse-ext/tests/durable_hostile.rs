//! The protocol's MUSTs that the public suite does not check, hostile inputs first: malformed
//! and repeated offsets, a 10 MiB body, a producer racing itself, a client creating streams and
//! appending in a loop, and the headers every answer carries.
#![cfg(feature = "durable-streams")]

mod common;
mod durable_support;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use durable_support::*;
use poem_sse_ext::durable::DurableStreams;
use reqwest::StatusCode;

#[tokio::test]
async fn malformed_and_repeated_offsets_are_refused_and_change_nothing() {
    let streams = DurableStreams::builder()
        .long_poll_timeout(Duration::from_millis(100))
        .build();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/hostile-offsets");
    let created = create(&client, &url, "text/plain", b"payload").await;
    let tail = header(&created, "Stream-Next-Offset").unwrap_or_default();

    let hostile = [
        "0,1",
        "a/b",
        "%00",
        "%0D",
        "%0A",
        "%0D%0A",
        "..%2F..",
        "%2F",
        "",
        "now%20",
        "%20-1",
        "-1%00",
        "0000000000000000_0000000000000000%2C0000000000000000_0000000000000001",
        "0000000000000000_0000000000000000%0A",
        "0000000000000000_000000000000000%2F",
        // A well-formed offset past the tail is no position of this stream either.
        "0000000000000000_0000000000000999",
    ];
    for offset in hostile {
        for live in ["", "&live=long-poll", "&live=sse"] {
            let response = client
                .get(format!("{url}?offset={offset}{live}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "offset={offset}{live}"
            );
            assert_eq!(
                header(&response, "x-content-type-options").as_deref(),
                Some("nosniff")
            );
            assert!(
                !response.text().await.unwrap().trim().is_empty(),
                "a 400 says why"
            );
        }
    }
    for query in [
        "offset=-1&offset=-1".to_owned(),
        format!("offset={tail}&offset=now"),
        "offset=now&live=sse&offset=now".to_owned(),
    ] {
        let response = client.get(format!("{url}?{query}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    // Nothing of that touched the stream.
    assert_eq!(read_all(&client, &url).await, b"payload");
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(
        header(&head, "Stream-Next-Offset").as_deref(),
        Some(tail.as_str())
    );
}

#[tokio::test]
async fn a_10_mib_body_round_trips_byte_exactly_and_a_larger_one_is_refused() {
    let streams = DurableStreams::builder().max_append_bytes(10 << 20).build();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/large");
    create(&client, &url, "application/octet-stream", b"").await;
    let body: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
    let response = append(&client, &url, "application/octet-stream", body.clone()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let tail = header(&response, "Stream-Next-Offset").unwrap();
    assert_eq!(
        read_all(&client, &url).await,
        body,
        "paged catch-up gives back every byte"
    );

    let over = vec![0u8; (10 << 20) + 1];
    let response = append(&client, &url, "application/octet-stream", over).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response.text().await.unwrap().contains("bytes"),
        "the 413 names the limit"
    );
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(
        header(&head, "Stream-Next-Offset"),
        Some(tail),
        "the refused body left no trace"
    );
}

#[tokio::test]
async fn a_producer_racing_itself_appends_each_batch_exactly_once_in_order() {
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = Arc::new(server.url("/v1/stream/racing-producer"));
    create(&client, &url, "text/plain", b"").await;

    // Every batch is sent twice at once, all batches at once: requests arrive in any order. Each
    // sender retries a sequence gap (409) until the batch is taken (200) or known (204).
    const BATCHES: u64 = 25;
    let mut senders = Vec::new();
    for seq in 0..BATCHES {
        for _ in 0..2 {
            let (client, url) = (client.clone(), Arc::clone(&url));
            senders.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    let response = client
                        .post(url.as_str())
                        .header("Content-Type", "text/plain")
                        .header("Producer-Id", "racer")
                        .header("Producer-Epoch", "0")
                        .header("Producer-Seq", seq.to_string())
                        .body(format!("<{seq}>"))
                        .send()
                        .await
                        .unwrap();
                    match response.status() {
                        StatusCode::CONFLICT => {
                            assert_eq!(
                                header(&response, "Producer-Received-Seq"),
                                Some(seq.to_string())
                            );
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        status => return (seq, status),
                    }
                }
                panic!("batch {seq} never got in");
            }));
        }
    }
    let mut outcomes: BTreeMap<u64, Vec<StatusCode>> = BTreeMap::new();
    for sender in senders {
        let (seq, status) = sender.await.unwrap();
        outcomes.entry(seq).or_default().push(status);
    }
    for (seq, mut statuses) in outcomes {
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::NO_CONTENT],
            "batch {seq}: stored once, deduplicated once"
        );
    }
    let expected: String = (0..BATCHES).map(|seq| format!("<{seq}>")).collect();
    assert_eq!(
        String::from_utf8(read_all(&client, &url).await).unwrap(),
        expected
    );
}

#[tokio::test]
async fn a_client_creating_and_appending_in_a_loop_is_refused_and_harms_nobody() {
    let streams = DurableStreams::builder()
        .max_streams_per_client(3)
        .max_bytes_per_client(4_000)
        .max_stream_bytes(3_000)
        .build();
    let server = serve(&streams).await;
    let (greedy, polite) = (client_from([127, 0, 0, 2]), client_from([127, 0, 0, 3]));
    let theirs = server.url("/v1/stream/polite");
    create(&polite, &theirs, "text/plain", b"mine").await;

    // Creating in a loop: the fourth stream is refused with a reason.
    let mut created = Vec::new();
    for i in 0..10 {
        let url = server.url(&format!("/v1/stream/greedy-{i}"));
        let response = greedy
            .put(&url)
            .header("Content-Type", "text/plain")
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::CREATED => created.push(url),
            status => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                assert!(
                    response.text().await.unwrap().contains("streams"),
                    "the 429 says what is full"
                );
            }
        }
    }
    assert_eq!(created.len(), 3);

    // Appending in a loop: refused once a stream (413) or the client's budget (507) is full;
    // every acknowledged append is there.
    let mut acknowledged: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut refusals = Vec::new();
    for round in 0..40 {
        let url = &created[round % created.len()];
        let chunk = vec![b'a' + (round % 26) as u8; 250];
        let response = append(&greedy, url, "text/plain", chunk.clone()).await;
        match response.status() {
            StatusCode::NO_CONTENT => acknowledged
                .entry(url.clone())
                .or_default()
                .extend_from_slice(&chunk),
            status => refusals.push((status, response.text().await.unwrap())),
        }
    }
    assert!(
        refusals
            .iter()
            .any(|(s, m)| *s == StatusCode::INSUFFICIENT_STORAGE && m.contains("budget")),
        "{refusals:?}"
    );
    // Each append costs its bytes and a small handle: the budget took about 4,000 bytes of data.
    let taken = acknowledged.values().map(Vec::len).sum::<usize>();
    assert!(
        (3_000..4_000).contains(&taken),
        "the client's budget was taken: {taken} bytes"
    );
    for (url, data) in &acknowledged {
        assert_eq!(
            &read_all(&greedy, url).await,
            data,
            "nothing acknowledged is lost"
        );
    }

    // The other client's stream and budget are untouched.
    let response = append(&polite, &theirs, "text/plain", " and more").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(read_all(&polite, &theirs).await, b"mine and more");
    let response = polite
        .put(server.url("/v1/stream/polite-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Deleting gives the budget back.
    for url in &created {
        assert_eq!(
            greedy.delete(url).send().await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
    }
    let response = greedy
        .put(server.url("/v1/stream/greedy-again"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_write_rate_cap_refuses_with_retry_after() {
    let streams = DurableStreams::builder()
        .writes_per_second_per_client(5)
        .build();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/rate");
    create(&client, &url, "text/plain", b"").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = append(&client, &url, "text/plain", "x").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(&response, "Retry-After").as_deref(), Some("1"));
        }
        statuses.push(response.status());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        4,
        "{statuses:?}"
    );
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "reads are not writes");
}

#[tokio::test]
async fn every_answer_carries_nosniff_and_corp() {
    let streams = DurableStreams::builder().max_append_bytes(8).build();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/headers");
    let mut answers = vec![create(&client, &url, "text/plain", b"abc").await];
    answers.push(
        client
            .put(&url)
            .header("Content-Type", "text/plain")
            .send()
            .await
            .unwrap(),
    ); // 200
    answers.push(
        client
            .put(&url)
            .header("Content-Type", "image/png")
            .send()
            .await
            .unwrap(),
    ); // 409
    answers.push(append(&client, &url, "text/plain", "d").await); // 204
    answers.push(append(&client, &url, "text/plain", "way too long").await); // 413
    answers.push(
        client
            .get(format!("{url}?offset=bad"))
            .send()
            .await
            .unwrap(),
    ); // 400
    answers.push(
        client
            .get(server.url("/v1/stream/missing"))
            .send()
            .await
            .unwrap(),
    ); // 404
    answers.push(client.patch(&url).send().await.unwrap()); // 405
    answers.push(
        client
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .await
            .unwrap(),
    ); // preflight
    answers.push(client.head(&url).send().await.unwrap());
    let get = client.get(&url).send().await.unwrap();
    let etag = header(&get, "etag").unwrap();
    answers.push(get);
    answers.push(
        client
            .get(&url)
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap(),
    ); // 304
    answers.push(
        client
            .get(format!("{url}?offset=now&live=long-poll"))
            .send()
            .await
            .unwrap(),
    ); // 204
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses,
        [201, 200, 409, 204, 413, 400, 404, 405, 204, 200, 200, 304, 204]
    );
    for answer in &answers {
        assert_eq!(
            header(answer, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{}",
            answer.status()
        );
        assert_eq!(
            header(answer, "cross-origin-resource-policy").as_deref(),
            Some("cross-origin"),
            "{}",
            answer.status()
        );
    }
}

#[tokio::test]
async fn stream_closed_means_exactly_true_in_any_case() {
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/closed-values");
    create(&client, &url, "text/plain", b"").await;
    for value in ["false", "yes", "1", "", "true-ish", "tru"] {
        let response = client
            .post(&url)
            .header("Content-Type", "text/plain")
            .header("Stream-Closed", value)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{value:?}");
        assert_eq!(
            header(&response, "Stream-Closed"),
            None,
            "{value:?} does not close"
        );
    }
    let response = client
        .post(&url)
        .header("Stream-Closed", "TrUe")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&response, "Stream-Closed").as_deref(), Some("true"));
    assert_eq!(read_all(&client, &url).await, b"xxxxxx");
}

#[tokio::test]
async fn a_close_only_post_closes_a_json_stream_whatever_its_content_type() {
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/stream/json-close");
    create(&client, &url, "application/json", b"[1,2]").await;
    for content_type in [
        "application/json",
        "text/plain",
        "application/json; charset=utf-8",
    ] {
        let response = client
            .post(&url)
            .header("Content-Type", content_type)
            .header("Stream-Closed", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{content_type}");
        assert_eq!(header(&response, "Stream-Closed").as_deref(), Some("true"));
    }
    let response = append(&client, &url, "application/json", "3").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(header(&response, "Stream-Closed").as_deref(), Some("true"));
    let read = client.get(&url).send().await.unwrap();
    assert_eq!(header(&read, "Stream-Closed").as_deref(), Some("true"));
    assert_eq!(read.text().await.unwrap(), "[1,2]");
}

#[tokio::test]
async fn forking_in_a_loop_is_charged_to_the_forker() {
    let streams = DurableStreams::builder()
        .max_bytes_per_client(60_000)
        .build();
    let server = serve(&streams).await;
    let (owner, forker) = (client_from([127, 0, 0, 4]), client_from([127, 0, 0, 5]));
    let source = server.url("/v1/stream/fork-source");
    create(&owner, &source, "text/plain", b"").await;
    for _ in 0..200 {
        assert_eq!(
            append(&owner, &source, "text/plain", "x").await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let mut forks = 0;
    let refusal = loop {
        let response = forker
            .put(server.url(&format!("/v1/stream/fork-{forks}")))
            .header("Stream-Forked-From", "/v1/stream/fork-source")
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::CREATED {
            break (response.status(), response.text().await.unwrap());
        }
        forks += 1;
        assert!(
            forks < 1_000,
            "forks of 200 appends cost their creator nothing"
        );
    };
    assert_eq!(refusal.0, StatusCode::INSUFFICIENT_STORAGE, "{refusal:?}");
    assert!(forks > 0, "a fork within the budget is allowed");
    let fork = server.url("/v1/stream/fork-0");
    assert_eq!(read_all(&forker, &fork).await, vec![b'x'; 200]);
    // The owner's budget is the owner's: it still appends.
    assert_eq!(
        append(&owner, &source, "text/plain", "y").await.status(),
        StatusCode::NO_CONTENT
    );
}
