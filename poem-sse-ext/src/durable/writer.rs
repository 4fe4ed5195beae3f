//! Writing streams from the server itself: [`DurableStreams::create`], [`append`] and
//! [`close`] do what `PUT`, `POST` and `POST` + `Stream-Closed` do over HTTP, on the same
//! backend (memory or Redis), so that a producer in the process (a generation, a job) writes a
//! stream that any Durable Streams client then reads at the endpoint, on this instance or on
//! another one on the same Redis.
//!
//! These writes skip the authorizer and the per-client write rate (see
//! [`DurableStreams::create`]).
//!
//! [`append`]: DurableStreams::append
//! [`close`]: DurableStreams::close

use std::time::Duration;

use bytes::Bytes;

use super::{
    backend::AppendInput, error::Failure, registry::CreateRequest, stream::media_type,
    DurableStreams,
};

/// Why a server-side write failed: no such stream, a closed one, another stream's
/// configuration at the name, a cap, or the storage out of reach.
#[derive(Debug, thiserror::Error)]
#[error("durable stream {name}: {failure}")]
pub struct WriteError {
    name: String,
    failure: Failure,
}

impl WriteError {
    /// Whether retrying may succeed (the storage was out of reach or too slow; the write may
    /// or may not have been stored).
    pub fn is_unavailable(&self) -> bool {
        matches!(self.failure, Failure::Unavailable(_))
    }

    /// Whether the stream was already closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.failure, Failure::Closed { .. })
    }
}

impl DurableStreams {
    /// Creates the stream `name` (a path below the endpoint, such as `runs/42`) with
    /// `content_type` and an optional sliding TTL (renewed by reads and writes, in whole
    /// seconds); like `PUT`. `Ok(true)` when it was created, `Ok(false)` when an identical one
    /// exists. With `application/json`, appends are JSON messages.
    ///
    /// # Errors
    /// An invalid name, another stream at `name` (a `409` over HTTP), the stream caps, or the
    /// storage out of reach.
    ///
    /// ```
    /// use poem_sse_ext::durable::DurableStreams;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), poem_sse_ext::durable::WriteError> {
    /// let streams = DurableStreams::new();
    /// streams.create("runs/1", "application/json", None).await?;
    /// streams.append("runs/1", r#"{"type":"text-delta","id":"t","delta":"Hi"}"#).await?;
    /// streams.close("runs/1").await?;
    /// // Closed: a client reading `GET /v1/stream/runs/1?offset=-1` gets the message and the end.
    /// assert!(streams.append("runs/1", "{}").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// These server-side writes (create, [`append`](Self::append), [`close`](Self::close)) do
    /// not pass the [`StreamAuthorizer`](super::StreamAuthorizer) nor the per-client
    /// write rate: they are the server's own writes. The size caps apply as they do to a client.
    pub async fn create(
        &self,
        name: &str,
        content_type: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, WriteError> {
        check_name(name)?;
        let request = CreateRequest {
            name: name.to_owned(),
            content_type: Some(content_type.to_owned()),
            ttl: ttl.map(|ttl| ttl.as_secs().max(1)),
            expires_at: None,
            closed: false,
            fork: None,
            payload: None,
            json: media_type(content_type) == "application/json",
            client: None,
        };
        let created = self.shared.backend.create(request).await;
        created.map(|c| c.created).map_err(|f| failed(name, f))
    }

    /// Appends `data` to `name`; like `POST`. On a JSON stream `data` is one JSON value (one
    /// message), or an array whose elements are messages, as over HTTP.
    ///
    /// # Errors
    /// No such stream, a closed one, data that is not JSON on a JSON stream, the size caps, or
    /// the storage out of reach ([`WriteError::is_unavailable`]).
    pub async fn append(&self, name: &str, data: impl Into<Bytes>) -> Result<(), WriteError> {
        self.write(name, data.into(), false).await
    }

    /// Closes `name`: readers get what it holds, then its end; appends are refused from now
    /// on. Like `POST` + `Stream-Closed: true`; closing a closed stream is not an error.
    ///
    /// # Errors
    /// No such stream, or the storage out of reach.
    pub async fn close(&self, name: &str) -> Result<(), WriteError> {
        self.write(name, Bytes::new(), true).await
    }

    async fn write(&self, name: &str, body: Bytes, close: bool) -> Result<(), WriteError> {
        check_name(name)?;
        let backend = &self.shared.backend;
        // The stream's own type: the backend parses JSON only when a body claims it.
        let media = backend
            .head(name)
            .await
            .map_err(|f| failed(name, f))?
            .content_type;
        if !close && body.is_empty() {
            return Err(failed(
                name,
                Failure::BadRequest("an append needs data".into()),
            ));
        }
        let input = AppendInput {
            body,
            media_type: Some(media_type(&media)),
            close,
            producer: None,
            stream_seq: None,
            client: None,
        };
        backend
            .append(name, input)
            .await
            .map(|_| ())
            .map_err(|f| failed(name, f))
    }
}

fn failed(name: &str, failure: Failure) -> WriteError {
    WriteError {
        name: name.to_owned(),
        failure,
    }
}

/// The names the endpoint could serve: non-empty segments, none `.` or `..`.
fn check_name(name: &str) -> Result<(), WriteError> {
    let bad = name.is_empty()
        || name.len() > 1_024
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(failed(
            name,
            Failure::BadRequest(
                "a stream name is a path of non-empty segments, none `.` or `..`".into(),
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_json_stream_takes_messages_until_closed() {
        let streams = DurableStreams::new();
        assert!(streams
            .create("a/b", "application/json", None)
            .await
            .unwrap());
        assert!(!streams
            .create("a/b", "application/json", None)
            .await
            .unwrap());
        streams.append("a/b", r#"{"n":1}"#).await.unwrap();
        streams.append("a/b", r#"[{"n":2},{"n":3}]"#).await.unwrap();
        let not_json = streams.append("a/b", "nope").await.unwrap_err();
        assert!(!not_json.is_closed() && !not_json.is_unavailable());
        streams.close("a/b").await.unwrap();
        streams.close("a/b").await.unwrap();
        assert!(streams.append("a/b", "{}").await.unwrap_err().is_closed());
        let meta = streams.shared.backend.head("a/b").await.unwrap();
        assert!(meta.closed);
        assert_eq!(meta.content_type, "application/json");
    }

    #[tokio::test]
    async fn unknown_and_invalid_names_are_errors() {
        let streams = DurableStreams::new();
        let missing = streams.append("nobody", "x").await.unwrap_err();
        assert!(missing.to_string().contains("no stream"), "{missing}");
        for name in ["", "a//b", "../x", "a/./b"] {
            assert!(streams.create(name, "text/plain", None).await.is_err());
        }
    }
}
