//! A tiny reverse proxy that sends each request to the next of several instances in turn, so
//! that a client writes through one instance and reads through another.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::TryStreamExt;
use poem::{http::StatusCode, Body, Endpoint, Request, Response};

/// Forwards request `n` to `targets[n % len]` (base URLs), streaming the answer back.
pub struct Alternating {
    targets: Vec<String>,
    next: AtomicUsize,
    client: reqwest::Client,
}

impl Alternating {
    pub fn new(targets: Vec<String>) -> Self {
        Self {
            targets,
            next: AtomicUsize::new(0),
            client: reqwest::Client::new(),
        }
    }

    /// How many requests went through.
    pub fn forwarded(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }
}

impl Endpoint for Alternating {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        let path = req
            .original_uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|e| poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST))?;
        let mut out = self
            .client
            .request(method, format!("{}{path}", self.targets[n]));
        for (name, value) in req.headers() {
            if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                out = out.header(name.as_str(), value.as_bytes());
            }
        }
        let body = req.take_body().into_bytes().await?;
        let answer = match out.body(body.to_vec()).send().await {
            Ok(answer) => answer,
            Err(e) => {
                return Ok(Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(e.to_string()))
            }
        };
        let status = StatusCode::from_u16(answer.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::builder().status(status);
        for (name, value) in answer.headers() {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                response = response.header(name.as_str(), value.as_bytes());
            }
        }
        let stream = answer.bytes_stream().map_err(std::io::Error::other);
        Ok(response.body(Body::from_bytes_stream(stream)))
    }
}
