//! A run as a Durable Stream, for the AI transports (`@durable-streams/aisdk-transport`, the
//! TanStack AI one): the run's producer writes each token to the hub run (the page's
//! `EventSource`) and to `/v1/stream/runs/{id}`, a JSON stream of
//! [AI SDK UI message chunks](https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol), one message
//! per chunk, closed when the run ends.
//!
//! | run | messages |
//! | --- | --- |
//! | starts | `{"type":"start","messageId":"<run id>"}`, `{"type":"text-start","id":"text"}` |
//! | a token | `{"type":"text-delta","id":"text","delta":"<token>"}` |
//! | done | `{"type":"text-end","id":"text"}`, `{"type":"finish"}`, then the close |
//! | cancelled | `{"type":"abort"}`, then the close |
//! | failed (or a token lost on the way) | `{"type":"error","errorText":"..."}`, then the close |
//!
//! The stream lives on the durable streams' backend (the demo's Redis with `--store redis://`),
//! so a reader resumes on any instance and across restarts; it expires with the run.

use std::time::Duration;

use poem_sse_ext::durable::{DurableStreams, WriteError};
use serde_json::json;

/// The one text part a run writes.
const TEXT_PART: &str = "text";

/// Where the durable stream of run `id` is read: the path below the demo's root.
pub fn path(id: &str) -> String {
    format!("/v1/stream/{}", name(id))
}

fn name(id: &str) -> String {
    format!("runs/{id}")
}

/// The writer of one run's durable stream.
#[derive(Debug)]
pub struct RunStream {
    streams: DurableStreams,
    name: String,
    /// Why a write failed, once one has: later tokens are not written (a reader would see a
    /// gap), and the end is an `error` chunk.
    broken: Option<String>,
}

impl RunStream {
    /// Creates the stream of run `id`, with the chunks that open a message, readable for `ttl`
    /// after its last read or write.
    ///
    /// # Errors
    /// When the stream can not be created (another stream at that name, storage out of reach).
    pub async fn create(
        streams: &DurableStreams,
        id: &str,
        ttl: Duration,
    ) -> Result<Self, WriteError> {
        let name = name(id);
        streams.create(&name, "application/json", Some(ttl)).await?;
        let opening = json!([
            { "type": "start", "messageId": id },
            { "type": "text-start", "id": TEXT_PART },
        ]);
        streams.append(&name, opening.to_string()).await?;
        Ok(Self {
            streams: streams.clone(),
            name,
            broken: None,
        })
    }

    /// Appends one token.
    pub async fn token(&mut self, token: &str) {
        if self.broken.is_none() {
            let delta = json!({ "type": "text-delta", "id": TEXT_PART, "delta": token });
            self.write(delta).await;
        }
    }

    /// Ends the message: done, then the close.
    pub async fn done(mut self) {
        let end = json!([{ "type": "text-end", "id": TEXT_PART }, { "type": "finish" }]);
        self.end(end).await;
    }

    /// Ends the message as aborted (the run was cancelled), then the close.
    pub async fn cancelled(mut self) {
        self.end(json!({ "type": "abort" })).await;
    }

    /// Ends the message with an error, then the close.
    pub async fn failed(mut self, message: &str) {
        self.end(json!({ "type": "error", "errorText": message }))
            .await;
    }

    async fn end(&mut self, last: serde_json::Value) {
        let last = match self.broken.take() {
            None => last,
            Some(why) => json!({
                "type": "error",
                "errorText": format!("the stream lost a token: {why}"),
            }),
        };
        self.write(last).await;
        if let Err(err) = self.streams.close(&self.name).await {
            tracing::warn!(stream = %self.name, %err, "generate: the durable stream was not closed");
        }
    }

    async fn write(&mut self, message: serde_json::Value) {
        if let Err(err) = self.streams.append(&self.name, message.to_string()).await {
            tracing::warn!(stream = %self.name, %err, "generate: a durable stream write failed");
            self.broken.get_or_insert(err.to_string());
        }
    }
}
