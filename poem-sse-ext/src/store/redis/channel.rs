//! One channel of a [`RedisStore`](super::RedisStore): publishing to its stream, and streams
//! that are cursors into the channel's log in this process.

use std::{sync::Arc, time::Duration};

use ::redis::{Pipeline, RedisResult, Value};

use super::{
    backfill::{self, ID_LINE_MAX},
    catchup,
    follow::{ChannelInner, Current, Follow},
    once,
    reader::ReaderTask,
    reply::{parse_added_id, StreamId, StreamInfo, FIELD},
    shared::Shared,
};
use crate::{
    store::{
        BoxFuture, EventId, Published, Recent, Reset, ResetReason, StoreChannel, StoreError,
        Subscription,
    },
    wire::Event,
};

/// The handle the hub keeps for one channel.
pub(super) struct RedisChannel {
    pub(super) shared: Arc<Shared>,
    pub(super) inner: Arc<ChannelInner>,
    /// Keeps the reader running while the handle lives.
    pub(super) _reader: Arc<ReaderTask>,
}

impl RedisChannel {
    /// The channel as this instance follows it: its log filled with the stream's history (by
    /// one backfill, shared by every subscribe that waits for it), and fed by the reader.
    ///
    /// # Errors
    /// The backfill's failure, or [`StoreError::WrongKeyType`] while the key holds another type.
    async fn follow(&self) -> Result<Arc<Follow>, StoreError> {
        Ok(self.follow_fresh().await?.0)
    }

    /// [`follow`](Self::follow), and whether this call began the backfill (which then read
    /// Redis after the call began).
    async fn follow_fresh(&self) -> Result<(Arc<Follow>, bool), StoreError> {
        let mut fresh = false;
        let current = self.inner.follow_or_fill(|| {
            fresh = true;
            backfill::start(&self.shared, &self.inner)
        });
        let follow = match current {
            Current::Live(follow) => follow,
            Current::Filling(fill) => fill.await?,
        };
        if let Some(bad) = follow.bad() {
            // The reader stopped reading this key: ask it to look again now, so that a repaired
            // key does not wait for the next periodic check.
            self.shared.ask_recheck(self.inner.group);
            return Err(bad);
        }
        Ok((follow, fresh))
    }

    /// The followed channel with its log caught up with Redis, for a read (`operation`) that
    /// must see every publish acknowledged before it began. Where Redis does not answer, the
    /// log answers as the reader left it (the events it lacks arrive with the reader, or a reset
    /// says what was lost): a followed channel stays readable while Redis is away.
    ///
    /// # Errors
    /// As [`follow`](Self::follow), and [`StoreError::WrongKeyType`] found by the catch-up.
    async fn caught_up(&self, operation: &'static str) -> Result<Arc<Follow>, StoreError> {
        let (follow, fresh) = self.follow_fresh().await?;
        if fresh || self.shared.health.commands_failing() {
            return Ok(follow);
        }
        match catchup::catch_up(&self.shared, &follow, operation).await {
            Err(err @ StoreError::WrongKeyType { .. }) => Err(err),
            Err(err) => {
                tracing::debug!(
                    channel = &*follow.name,
                    %err,
                    "redis store: a read could not catch up with Redis; answered from the log"
                );
                Ok(follow)
            }
            Ok(()) => Ok(follow),
        }
    }

    /// `event` encoded once, without its id (Redis gives it), if it fits the byte bound.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] when it could never be retained.
    fn encode(&self, event: &Event) -> Result<bytes::Bytes, StoreError> {
        let limit = self.shared.retention.max_bytes;
        let body = event.encode_with_id(None);
        let size = body.len() + ID_LINE_MAX;
        if size > limit {
            return Err(StoreError::TooLarge { size, limit });
        }
        Ok(body)
    }

    async fn stream_info(&self, operation: &'static str) -> Result<Option<StreamInfo>, StoreError> {
        let key = self.inner.key.as_str();
        let mut pipe = Pipeline::new();
        pipe.cmd("XINFO").arg("STREAM").arg(key);
        let mut connection = self.shared.commands.connection();
        let mut replies: Vec<RedisResult<Value>> = self
            .shared
            .commands
            .run(
                operation,
                Some(key),
                pipe.ignore_errors().query_async(&mut connection),
            )
            .await?;
        let reply = replies.pop().unwrap_or(Ok(Value::Nil));
        StreamInfo::from_reply(reply)
            .map_err(|err| self.shared.commands.error(&err, Some(key), operation))
    }

    /// A subscription after `after`, from the log: exact when the log holds what follows it,
    /// otherwise a reset with the log's reason.
    async fn resume(&self, follow: &Follow, after: StreamId) -> Result<Subscription, StoreError> {
        let (mut cursor, reset) = follow.log.cursor_after(Some(after.key()));
        match reset {
            Some(reset) if reset.reason == ResetReason::Unknown => {
                // Above the log's head: an id Redis issued that the reader has not brought here
                // yet (the client read it through another instance a moment ago), or one from an
                // earlier life of the stream (Redis restarted without persistence, or flushed).
                let (position, _) = follow.position();
                let issued = after <= position
                    || self
                        .stream_info("subscribe")
                        .await?
                        .is_some_and(|info| after <= info.last_generated);
                if issued {
                    // The cursor keeps its place in the log's history: a break of the log
                    // meanwhile still resets it.
                    cursor.skip_to(after.key(), after.event_id());
                    return Ok(Subscription {
                        reset: None,
                        cursor,
                    });
                }
                let reset = Reset {
                    reason: ResetReason::Epoch,
                    resume_from: reset.resume_from,
                };
                Ok(Subscription {
                    reset: Some(reset),
                    cursor,
                })
            }
            None => match follow.log.known_position_below(after.key()) {
                None => Ok(Subscription {
                    reset: None,
                    cursor,
                }),
                Some(below) => {
                    // Within the log's range but no entry of it: an id of an event Redis lost
                    // (a failover promoted a replica that lacked it). The client's events after
                    // `below` are not Redis's: it is told, and continues from there.
                    let below = StreamId::from_key(below);
                    tracing::warn!(
                        channel = &*follow.name,
                        last_event_id = %after,
                        resume_from = %below,
                        "redis store: a client resumed from an event Redis no longer has"
                    );
                    let (cursor, reset) = follow.log.cursor_after(Some(below.key()));
                    let reset = reset.unwrap_or(Reset {
                        reason: ResetReason::Epoch,
                        resume_from: below.event_id(),
                    });
                    Ok(Subscription {
                        reset: Some(reset),
                        cursor,
                    })
                }
            },
            reset => Ok(Subscription { reset, cursor }),
        }
    }
}

impl StoreChannel for RedisChannel {
    fn append<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<EventId, StoreError>> {
        Box::pin(async move {
            let retention = self.shared.retention;
            let body = self.encode(event)?;
            let key = self.inner.key.as_str();
            let mut pipe = Pipeline::new();
            pipe.cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(retention.max_events)
                .arg("*")
                .arg(FIELD)
                .arg(&body[..]);
            if let Some(min_id) = StreamId::min_for_age(retention.max_age) {
                pipe.cmd("XTRIM")
                    .arg(key)
                    .arg("MINID")
                    .arg(min_id.to_string())
                    .ignore();
            }
            let mut connection = self.shared.commands.connection();
            let (id,): (Value,) = self
                .shared
                .commands
                .run("append", Some(key), pipe.query_async(&mut connection))
                .await?;
            let id = parse_added_id(&id).ok_or_else(|| {
                StoreError::Backend("redis: XADD did not answer with a stream id".to_owned())
            })?;
            Ok(id.event_id())
        })
    }

    fn append_once<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        Box::pin(async move {
            let body = self.encode(event)?;
            once::append_once(&self.shared, &self.inner.key, key, window, &body).await
        })
    }

    fn subscribe<'a>(
        &'a self,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>> {
        Box::pin(async move {
            let resume = last_event_id.map(StreamId::parse);
            // A resume is a catch-up read; a stream from now on only needs what comes next.
            let follow = match resume {
                Some(Some(_)) => self.caught_up("subscribe").await?,
                _ => self.follow().await?,
            };
            follow.log.evict_expired();
            match resume {
                None => {
                    let (cursor, _) = follow.log.cursor_after(None);
                    Ok(Subscription {
                        reset: None,
                        cursor,
                    })
                }
                Some(None) => {
                    // Not a stream id: a position above every head, which the log answers with
                    // `Unknown` and its head, in one step.
                    let (cursor, reset) = follow.log.cursor_after(Some(u128::MAX));
                    Ok(Subscription { reset, cursor })
                }
                Some(Some(after)) => self.resume(&follow, after).await,
            }
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<EventId, StoreError>> {
        Box::pin(async move {
            let info = self.stream_info("head").await?;
            Ok(info
                .map_or(StreamId::ZERO, |info| info.last_generated)
                .event_id())
        })
    }

    fn recent(&self, max: usize) -> BoxFuture<'_, Result<Recent, StoreError>> {
        Box::pin(async move {
            let follow = self.caught_up("recent").await?;
            follow.log.evict_expired();
            Ok(follow.log.recent(max))
        })
    }

    fn is_empty(&self) -> bool {
        self.inner.holds_nothing()
    }
}
