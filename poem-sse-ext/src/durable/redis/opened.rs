//! A stream opened for reading on Redis: its live reads, shared by the followers of one
//! process that wait at the same offset, and the frames they share.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::watch::Watched;
use super::wire::Reply;
use super::Inner;
use crate::durable::{
    backend::Seen,
    error::Failure,
    log::{Chunk, Payload},
    stream::FrameKey,
};

/// A stream opened for reading.
pub(crate) struct Opened {
    pub(super) inner: Arc<Inner>,
    pub(super) name: String,
    pub(crate) content_type: String,
    pub(crate) json: bool,
    pub(crate) generation: String,
    pub(super) watched: Arc<Watched>,
}

impl Opened {
    pub(crate) fn changed(&self) -> &tokio::sync::Notify {
        &self.watched.changed
    }

    /// A live read (after a wake): shared with the other followers here at `from`.
    pub(crate) async fn look(&self, from: u64, max_bytes: u64) -> Result<Seen, Failure> {
        let watched = &self.watched;
        let _turn = watched.reading.lock().await;
        if let Some(seen) = watched.cached_read(&self.generation, from, max_bytes) {
            return Ok(seen);
        }
        let version = watched.version();
        let reply = self
            .inner
            .read(&self.name, from.to_string(), max_bytes, false)
            .await?;
        let seen = self.seen(&reply)?;
        watched.cache_read(&self.generation, version, from, max_bytes, &seen);
        Ok(seen)
    }

    /// The data of a read reply; `404` when the name now holds another stream.
    pub(super) fn seen(&self, reply: &Reply) -> Result<Seen, Failure> {
        if reply.text(8) != self.generation {
            return Err(Failure::NotFound);
        }
        let (from, next) = (reply.num(9), reply.num(10));
        let mut chunk = Chunk {
            parts: Vec::new(),
            next,
        };
        if next > from {
            let data = reply.items[11..].iter().map(Reply::bytes_of);
            chunk.parts.push(if self.json {
                Payload::messages(data.collect())
            } else {
                Payload::Bytes(
                    data.fold(BytesMut::new(), |mut all, b| {
                        all.extend_from_slice(&b);
                        all
                    })
                    .freeze(),
                )
            });
        }
        Ok(Seen {
            chunk,
            tail: reply.num(2),
            closed: reply.text(3) == "1",
        })
    }

    pub(crate) fn cached_frame(&self, key: FrameKey) -> Option<Bytes> {
        self.watched.cached_frame(&self.generation, key)
    }

    pub(crate) fn cache_frame(&self, key: FrameKey, frame: Bytes) {
        self.watched.cache_frame(&self.generation, key, frame);
    }
}
