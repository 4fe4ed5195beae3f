//! A Durable Streams server on a loopback port, and small helpers for the protocol's headers.
#![allow(dead_code)] // each test binary uses a different part

use std::net::IpAddr;

use poem::Route;
use poem_sse_ext::durable::DurableStreams;
use reqwest::{Client, Response, StatusCode};

pub use crate::common::TestServer;

#[cfg(feature = "redis")]
pub mod proxy;

/// `streams` mounted at `/v1/stream` on a fresh loopback port.
pub async fn serve(streams: &DurableStreams) -> TestServer {
    TestServer::start(Route::new().nest("/v1/stream", streams.endpoint())).await
}

/// A client whose connections leave from `ip` (any of 127.0.0.0/8), so that tests can play
/// several clients on one machine.
pub fn client_from(ip: [u8; 4]) -> Client {
    Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A header as text (`None` when absent).
pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `PUT` a stream of `content_type` with `body`; asserts `201`.
pub async fn create(
    client: &Client,
    url: &str,
    content_type: &str,
    body: &'static [u8],
) -> Response {
    let response = client
        .put(url)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    assert_eq!(response.status(), StatusCode::CREATED, "PUT {url}");
    response
}

/// `POST` `body` as `content_type`; returns the response.
pub async fn append(
    client: &Client,
    url: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Response {
    client
        .post(url)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// The whole stream, read by following `Stream-Next-Offset` until `Stream-Up-To-Date`.
pub async fn read_all(client: &Client, url: &str) -> Vec<u8> {
    let mut data = Vec::new();
    let mut offset = "-1".to_owned();
    for _ in 0..10_000 {
        let response = client
            .get(format!("{url}?offset={offset}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "GET {url}?offset={offset}"
        );
        let up_to_date = header(&response, "Stream-Up-To-Date").is_some();
        offset =
            header(&response, "Stream-Next-Offset").unwrap_or_else(|| panic!("Stream-Next-Offset"));
        let chunk = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"));
        data.extend_from_slice(&chunk);
        if up_to_date {
            return data;
        }
    }
    panic!("{url} never reached its tail");
}
