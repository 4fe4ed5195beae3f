//! The floor of an idle stream on hyper: a bare hyper server (HTTP/1.1 and h2c, as the other
//! peers) whose event stream sends one `retry:` frame and then nothing, ever. No routing, no
//! hub, no heartbeat, no replay: what remains per idle stream is hyper's connection or HTTP/2
//! stream state, h2's, the task hyper spawns per HTTP/2 stream, and a body that waits.
//!
//! Only the idle scenario means something against it (`--scenarios idle`): it publishes nothing.

use std::convert::Infallible;

use bytes::Bytes;
use clap::Parser;
use futures_util::{stream, StreamExt};
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: String,
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = if req.uri().path() == "/healthz" {
        Response::new(Full::new(Bytes::from_static(b"ok")).boxed())
    } else if req.uri().path().starts_with("/events/") {
        let frames =
            stream::once(async { Ok(Frame::data(Bytes::from_static(b"retry: 3000\n\n"))) })
                .chain(stream::pending());
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/event-stream"),
        );
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::new()).boxed());
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // As many streams as the load generator opens (each holds one file).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let listener = TcpListener::bind(&args.listen).await?;
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(256);
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = socket.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(answer);
            let _ = builder
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
