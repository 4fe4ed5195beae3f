//! Reading a run: follow it as a stream of frames that ends with the run, or take a snapshot of
//! it to render a page with.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;

use super::{
    end::{end_of_terminal_frame, is_start, RunEnd},
    error::RunError,
    id::RunId,
    Runs,
};
use crate::{
    hub::admission::Opener,
    hub::subscriber::Subscriber,
    wire::{reset_frame, StoredEvent},
    wire::{EventId, Reset},
};

/// What [`Runs::follow`] found.
#[derive(Debug)]
pub enum Follow {
    /// The run from the resume point on: its events, then its end (if it ends), then the
    /// stream's end.
    Stream(Box<RunFollower>),
    /// The resume point is the run's end: the follower has everything (over HTTP: `204`).
    Ended(RunEnd),
}

/// A run's frames from a resume point on, ending after the run's [`END_EVENT`](super::END_EVENT):
/// a [`Subscriber`] of the run's channel that stops where the run stops.
pub struct RunFollower {
    /// A reset to send first: the resume point was not an id of this run, so the stream starts
    /// over from the beginning.
    reset: Option<Bytes>,
    subscriber: Subscriber,
    done: bool,
}

impl Stream for RunFollower {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(reset) = this.reset.take() {
            return Poll::Ready(Some(reset));
        }
        match Pin::new(&mut this.subscriber).poll_next(cx) {
            Poll::Ready(Some(chunk)) => match end_of_terminal_frame(&chunk) {
                Some(end) => {
                    this.done = true;
                    Poll::Ready(Some(chunk.slice(..end)))
                }
                None => Poll::Ready(Some(chunk)),
            },
            other => other,
        }
    }
}

impl fmt::Debug for RunFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunFollower")
            .field("subscriber", &self.subscriber)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// A run as a page renders it: its events so far and the id they lead up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSnapshot {
    /// The run.
    pub id: RunId,
    /// The run's own events, oldest first (without its start and end).
    pub events: Vec<StoredEvent>,
    /// Where a follower continues exactly after `events` (`?lastEventId=<head>`): the id of the
    /// last of them, of the start, or of the end once the run ended.
    pub head: EventId,
    /// How the run ended, once it did.
    pub end: Option<RunEnd>,
}

impl RunSnapshot {
    /// The data of the events joined together: the run's text, when each event carries a piece.
    pub fn text(&self) -> String {
        self.events
            .iter()
            .map(|event| event.data.as_str())
            .collect()
    }
}

/// What a run's log says about it.
pub(crate) struct Record {
    start: EventId,
    events: Vec<StoredEvent>,
    head: EventId,
    pub(crate) end: Option<(EventId, RunEnd)>,
}

/// Where a follower of a run starts, and where the run ends (if it did).
struct Located {
    start: EventId,
    end: Option<(EventId, RunEnd)>,
}

impl Runs {
    /// Follows run `id` after `resume` (an id the follower has seen; `None`: from the start).
    ///
    /// A resume point that is not an id of the run starts the stream over from the beginning,
    /// after a [`RESET_EVENT`](crate::wire::RESET_EVENT) whose `resume_from` is the run's start: the
    /// follower should drop what it has and take the whole run.
    ///
    /// # Errors
    /// [`RunError::NotFound`] for an unknown or expired run; [`RunError::Subscribe`] when the
    /// stream can not be opened (a cap, shutdown, the store).
    pub async fn follow(&self, id: &str, resume: Option<&str>) -> Result<Follow, RunError> {
        self.follow_as(id, resume, &Opener::default()).await
    }

    /// [`Runs::follow`] on behalf of `opener` (see [`Hub::subscribe_as`](crate::Hub::subscribe_as)).
    ///
    /// # Errors
    /// As [`Runs::follow`].
    pub async fn follow_as(
        &self,
        id: &str,
        resume: Option<&str>,
        opener: &Opener,
    ) -> Result<Follow, RunError> {
        let run_id = RunId::parse(id).ok_or_else(|| RunError::not_found(id))?;
        let located = self.locate(&run_id).await?;
        let resume = resume.filter(|resume| !resume.is_empty());
        if let (Some(resume), Some((end_id, end))) = (resume, &located.end) {
            if resume == end_id.as_str() {
                return Ok(Follow::Ended(end.clone()));
            }
        }
        let hub = self.hub();
        let channel = run_id.channel();
        let from = resume.unwrap_or(located.start.as_str());
        let mut subscriber = hub.subscribe_as(&channel, Some(from), opener).await?;
        let mut reset = None;
        if let Some(refused) = subscriber.pending_reset() {
            // Not a point of this run: start over, and say so.
            let reason = refused.reason;
            drop(subscriber);
            subscriber = hub
                .subscribe_as(&channel, Some(located.start.as_str()), opener)
                .await?;
            reset = Some(reset_frame(&Reset {
                reason,
                resume_from: located.start.clone(),
            }));
        }
        Ok(Follow::Stream(Box::new(RunFollower {
            reset,
            subscriber,
            done: false,
        })))
    }

    /// Run `id` as it is now, read from its log: to render a page, which then follows the run
    /// from [`RunSnapshot::head`].
    ///
    /// # Errors
    /// [`RunError::NotFound`] for an unknown or expired run; a store failure.
    pub async fn snapshot(&self, id: &str) -> Result<RunSnapshot, RunError> {
        let run_id = RunId::parse(id).ok_or_else(|| RunError::not_found(id))?;
        let record = self.read(&run_id).await?;
        Ok(RunSnapshot {
            id: run_id,
            events: record.events,
            head: record.head,
            end: record.end.map(|(_, end)| end),
        })
    }

    /// Where run `id` starts and ends: from this process when it holds the run, else from the
    /// store (a run held by another instance).
    async fn locate(&self, id: &RunId) -> Result<Located, RunError> {
        if let Some(run) = self.inner.registry.get(id) {
            let start = run.start.get().cloned();
            let end = run
                .ended()
                .map(|ended| (ended.id.clone(), ended.end.clone()));
            match (start, end) {
                (Some(_), Some((_, end))) if end.is_expired() => {}
                (Some(start), Some((Some(end_id), end))) => {
                    return Ok(Located {
                        start,
                        end: Some((end_id, end)),
                    })
                }
                (Some(start), None) => return Ok(Located { start, end: None }),
                // Its end is not in the store: read what the store has.
                (Some(_), Some((None, _))) => {}
                (None, _) => return Err(RunError::not_found(id.as_str())),
            }
        }
        let record = self.read(id).await?;
        Ok(Located {
            start: record.start,
            end: record.end,
        })
    }

    /// Reads run `id`'s log: its start, its events, its end.
    ///
    /// # Errors
    /// [`RunError::NotFound`] when the log does not begin with a start event (no such run) or
    /// the run's time to live is over.
    pub(crate) async fn read(&self, id: &RunId) -> Result<Record, RunError> {
        // The whole run: its events, its start and end, and room for events that a producer on
        // another instance stored after a cancel there, before it saw the cancel.
        let max = self.inner.limits.max_events.saturating_add(64);
        let channel = id.channel();
        let recent = self.hub().recent(&channel, max).await?;
        let mut events = recent.events.into_iter();
        let start = match events.next() {
            Some(first) if is_start(&first) => first.id,
            _ => {
                // A store shared with other instances keeps the channel a while: not for this.
                self.inner.forget_channel(&channel).await;
                return Err(RunError::not_found(id.as_str()));
            }
        };
        let mut own = Vec::new();
        let mut end = None;
        for event in events {
            if let Some(run_end) = RunEnd::decode(&event) {
                end = Some((event.id, run_end));
                break;
            }
            own.push(event);
        }
        if end.as_ref().is_some_and(|(_, end)| end.is_expired()) {
            self.inner.forget_channel(&channel).await;
            return Err(RunError::not_found(id.as_str()));
        }
        let head = match &end {
            Some((end_id, _)) => end_id.clone(),
            None => recent.head,
        };
        Ok(Record {
            start,
            events: own,
            head,
            end,
        })
    }
}
