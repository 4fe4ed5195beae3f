//! [`DurableStreamsEndpoint`]: the HTTP side. It parses a request, asks the authorizer, and
//! hands the operation to the backend (writes) or to [`read`](super::read) (reads).

use std::sync::Arc;

use poem::{
    http::{header, HeaderValue, Method, StatusCode},
    Endpoint, Request, Response,
};

use super::{
    backend::AppendInput,
    error::Failure,
    guard::{Access, Operation},
    read,
    registry::{self, CreateRequest},
    request,
    stream::{media_type, ForkSpec, DEFAULT_CONTENT_TYPE},
    Shared,
};

/// The protocol's request headers, for CORS preflights.
const ALLOW_HEADERS: &str = "content-type, authorization, if-none-match, stream-seq, stream-ttl, \
    stream-expires-at, stream-closed, stream-forked-from, stream-fork-offset, \
    stream-fork-sub-offset, producer-id, producer-epoch, producer-seq";
/// The protocol's response headers, exposed to cross-origin scripts.
const EXPOSE_HEADERS: &str =
    "stream-next-offset, stream-cursor, stream-up-to-date, stream-closed, \
    stream-ttl, stream-expires-at, stream-sse-data-encoding, producer-epoch, producer-seq, \
    producer-expected-seq, producer-received-seq, etag, location";

/// The endpoint of a [`DurableStreams`](super::DurableStreams) server; mount it with `nest`.
pub struct DurableStreamsEndpoint {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for DurableStreamsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStreamsEndpoint")
            .finish_non_exhaustive()
    }
}

impl Endpoint for DurableStreamsEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let mut response = match self.handle(&mut req).await {
            Ok(response) => response,
            Err(failure) => failure.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(
            "X-Content-Type-Options",
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            "Cross-Origin-Resource-Policy",
            HeaderValue::from_static("cross-origin"),
        );
        if let Some(origin) = self.shared.options.allow_origin.as_deref() {
            if let Ok(origin) = HeaderValue::from_str(origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                );
            }
        }
        Ok(response)
    }
}

impl DurableStreamsEndpoint {
    async fn handle(&self, req: &mut Request) -> Result<Response, Failure> {
        if req.method() == Method::OPTIONS {
            return Ok(preflight());
        }
        let name = request::stream_name(req)?;
        match *req.method() {
            Method::PUT => self.create(req, name).await,
            Method::POST => self.append(req, name).await,
            Method::DELETE => self.delete(req, &name).await,
            Method::HEAD => self.head(req, &name).await,
            Method::GET => {
                self.authorize(req, Operation::Read, &name, None)?;
                read::get(&self.shared, req, &name).await
            }
            _ => Ok(Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, HEAD, PUT, POST, DELETE, OPTIONS")
                .body("use GET, HEAD, PUT, POST or DELETE\n")),
        }
    }

    fn authorize(
        &self,
        req: &Request,
        operation: Operation,
        stream: &str,
        forked_from: Option<&str>,
    ) -> Result<(), Failure> {
        if let Some(authorizer) = &self.shared.authorizer {
            let access = Access {
                operation,
                stream,
                forked_from,
                request: req,
            };
            authorizer.authorize(&access).map_err(Failure::Denied)?;
        }
        if operation.is_write() {
            self.shared.backend.budget().write(request::client(req))?;
        }
        Ok(())
    }

    async fn create(&self, req: &mut Request, name: String) -> Result<Response, Failure> {
        let fork = request::fork(req)?;
        self.authorize(
            req,
            Operation::Create,
            &name,
            fork.as_ref().map(|f| f.0.as_str()),
        )?;
        let (ttl, expires_at) = request::expiry(req)?;
        let content_type = request::content_type(req)?;
        let closed = request::closes(req);
        let backend = &self.shared.backend;
        let body = request::body(req, backend.budget().limits.max_append_bytes).await?;
        let effective = match (&content_type, &fork) {
            (Some(ct), _) => ct.clone(),
            (None, Some((source, _, _))) => backend
                .content_type_of(source)
                .await?
                .ok_or(Failure::NotFound)?,
            (None, None) => DEFAULT_CONTENT_TYPE.to_owned(),
        };
        let json = media_type(&effective) == "application/json";
        let payload = registry::payload(body, json, true)?;
        let created = backend
            .create(CreateRequest {
                name,
                content_type,
                ttl,
                expires_at,
                closed,
                fork: fork.map(|(source, offset, sub)| ForkSpec {
                    source,
                    offset,
                    sub,
                }),
                payload,
                json,
                client: request::client(req),
            })
            .await?;
        let mut response = Response::builder()
            .status(if created.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            })
            .content_type(created.content_type.as_str())
            .header("Stream-Next-Offset", created.tail.to_string());
        if created.created {
            response = response.header(header::LOCATION, location(req));
        }
        if created.closed {
            response = response.header("Stream-Closed", "true");
        }
        Ok(response.finish())
    }

    async fn append(&self, req: &mut Request, name: String) -> Result<Response, Failure> {
        let close = request::closes(req);
        let producer = request::producer(req)?;
        let stream_seq = request::stream_seq(req)?;
        let media = request::content_type(req)?.map(|ct| media_type(&ct));
        let limit = self.shared.backend.budget().limits.max_append_bytes;
        // Judged before the body is read: a body the transport declares empty is a close.
        let body = req.take_body();
        let operation = if close && body.is_empty() {
            Operation::Close
        } else {
            Operation::Append
        };
        self.authorize(req, operation, &name, None)?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(Failure::TooLarge(limit));
        }
        let body = request::read_body(body, limit).await?;
        if body.is_empty() && !close {
            return Err(Failure::BadRequest(
                "an append needs a body (an empty POST must carry Stream-Closed: true to close)"
                    .into(),
            ));
        }
        let appended = self
            .shared
            .backend
            .append(
                &name,
                AppendInput {
                    body,
                    media_type: media,
                    close,
                    producer,
                    stream_seq,
                    client: request::client(req),
                },
            )
            .await?;
        let status = match appended.producer {
            Some(_) if appended.fresh => StatusCode::OK,
            _ => StatusCode::NO_CONTENT,
        };
        let mut response = Response::builder()
            .status(status)
            .header("Stream-Next-Offset", appended.tail.to_string());
        if appended.closed {
            response = response.header("Stream-Closed", "true");
        }
        if let Some((epoch, seq)) = appended.producer {
            response = response
                .header("Producer-Epoch", epoch.to_string())
                .header("Producer-Seq", seq.to_string());
        }
        Ok(response.finish())
    }

    async fn delete(&self, req: &Request, name: &str) -> Result<Response, Failure> {
        self.authorize(req, Operation::Delete, name, None)?;
        self.shared.backend.delete(name).await?;
        Ok(Response::builder().status(StatusCode::NO_CONTENT).finish())
    }

    async fn head(&self, req: &Request, name: &str) -> Result<Response, Failure> {
        self.authorize(req, Operation::Read, name, None)?;
        let meta = self.shared.backend.head(name).await?;
        let mut response = Response::builder()
            .status(StatusCode::OK)
            .content_type(meta.content_type.as_str())
            .header("Stream-Next-Offset", meta.tail.to_string())
            .header(header::CACHE_CONTROL, "no-store");
        if let Some(ttl) = meta.ttl {
            response = response.header("Stream-TTL", ttl.to_string());
        }
        if let Some(at) = meta.expires_at {
            response = response.header("Stream-Expires-At", super::time::format_rfc3339(at));
        }
        if meta.closed {
            response = response.header("Stream-Closed", "true");
        }
        Ok(response.finish())
    }
}

/// The answer to a CORS preflight.
fn preflight() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, HEAD, PUT, POST, DELETE, OPTIONS",
        )
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
        .finish()
}

/// The absolute URL of the stream a request created.
fn location(req: &Request) -> String {
    let host = req
        .original_uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{}://{}{}", req.scheme(), host, req.original_uri().path())
}
