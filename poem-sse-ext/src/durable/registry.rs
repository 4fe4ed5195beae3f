//! The streams by name and their lifecycle: create (and fork), delete (soft while forks
//! reference a stream), expiry.
//!
//! Lock order: the registry's map, then a stream's state, then the budget. A request that holds
//! one stream (an append, a read) takes only that stream's lock; only creation, deletion and
//! expiry take the map.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{
    budget::{Budget, ClientKey},
    error::Failure,
    log::{Log, Payload},
    producer::Producers,
    stream::{media_type, Config, Expiry, ForkSpec, Life, State, Stream, DEFAULT_CONTENT_TYPE},
    time,
};

/// A `PUT`, parsed.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub(crate) name: String,
    pub(crate) content_type: Option<String>,
    pub(crate) ttl: Option<u64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) closed: bool,
    pub(crate) fork: Option<ForkSpec>,
    /// The initial data, already split into messages when `json` is set.
    pub(crate) payload: Option<Payload>,
    /// Whether `payload` was parsed as JSON (checked against the stream's type).
    pub(crate) json: bool,
    pub(crate) client: ClientKey,
}

/// The streams of one server.
#[derive(Debug)]
pub(crate) struct Registry {
    map: Mutex<HashMap<String, Arc<Stream>>>,
    next_id: AtomicU64,
    next_sweep: AtomicI64,
    pub(crate) budget: Budget,
}

impl Registry {
    pub(crate) fn new(budget: Budget) -> Self {
        Self {
            map: Mutex::default(),
            next_id: AtomicU64::new(1),
            next_sweep: AtomicI64::new(0),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live stream called `name`.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Stream>, Failure> {
        let mut map = self.lock();
        self.sweep_if_due(&mut map);
        self.expire(&mut map, name);
        let stream = map.get(name).cloned().ok_or(Failure::NotFound)?;
        stream.lock().check_live()?;
        Ok(stream)
    }

    /// The content type a fork of `source` would inherit (`None` when there is no such stream).
    pub(crate) fn content_type_of(&self, source: &str) -> Option<String> {
        self.lock().get(source).map(|s| s.content_type.clone())
    }

    /// Creates a stream (`Ok(true)`), or confirms an identical one (`Ok(false)`).
    pub(crate) fn create(&self, request: CreateRequest) -> Result<(Arc<Stream>, bool), Failure> {
        let mut map = self.lock();
        self.sweep_if_due(&mut map);
        self.expire(&mut map, &request.name);
        if let Some(existing) = map.get(&request.name) {
            let state = existing.lock();
            if state.life != Life::Live {
                return Err(Failure::Conflict(
                    "this path belongs to a deleted stream that forks still use".into(),
                ));
            }
            let requested_media = match &request.content_type {
                Some(ct) => media_type(ct),
                None if request.fork.is_some() => state.config.media_type.clone(),
                None => DEFAULT_CONTENT_TYPE.to_owned(),
            };
            let wanted = Config {
                media_type: requested_media,
                ttl: request.ttl,
                expires_at: request.expires_at,
                closed: request.closed,
                fork: request.fork.clone(),
            };
            let current = Config {
                closed: state.closed,
                ..state.config.clone()
            };
            if wanted != current {
                return Err(Failure::Conflict(
                    "a stream exists at this path with another configuration (content type, TTL, expiry, closure or fork)".into(),
                ));
            }
            drop(state);
            return Ok((Arc::clone(existing), false));
        }

        // The fork's source: checked, and its reference taken, under its lock.
        let mut inherited = Log::default();
        let mut expiry = Expiry::new(request.ttl, request.expires_at);
        let mut source_handle = None;
        let content_type = match &request.fork {
            None => request
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            Some(fork) => {
                self.expire(&mut map, &fork.source);
                let source = map.get(&fork.source).cloned().ok_or(Failure::NotFound)?;
                let state = source.lock();
                match state.life {
                    Life::Live => {}
                    Life::SoftDeleted => {
                        return Err(Failure::Conflict(
                            "the source stream was deleted: it can not be forked".into(),
                        ))
                    }
                    Life::Removed => return Err(Failure::NotFound),
                }
                if let Some(ct) = &request.content_type {
                    if media_type(ct) != media_type(&source.content_type) {
                        return Err(Failure::Conflict(format!(
                            "Content-Type {ct} does not match the source stream's {}",
                            source.content_type
                        )));
                    }
                }
                let at = fork.offset.map_or(state.log.tail(), |o| o.0);
                inherited = state.log.prefix(at, fork.sub)?;
                if request.ttl.is_none() && request.expires_at.is_none() {
                    expiry = Expiry::new(state.expiry.ttl, state.expiry.expires_at);
                }
                drop(state);
                source_handle = Some(source);
                request.content_type.clone().unwrap_or_else(|| {
                    source_handle
                        .as_ref()
                        .map_or_else(String::new, |s| s.content_type.clone())
                })
            }
        };
        let media = media_type(&content_type);
        let json = media == "application/json";
        if json != request.json {
            return Err(Failure::Conflict(
                "the source stream changed while the fork was created: retry".into(),
            ));
        }
        self.budget.open_stream(request.client)?;
        let mut state = State {
            log: inherited,
            closed: request.closed,
            life: Life::Live,
            expiry,
            producers: Producers::default(),
            stream_seq: None,
            config: Config {
                media_type: media,
                ttl: request.ttl,
                expires_at: request.expires_at,
                closed: false,
                fork: request.fork.clone(),
            },
            forks: 0,
            source: None,
            owner: request.client,
            charges: Vec::new(),
        };
        // A fork shares its source's bytes but holds a handle per inherited entry: those are
        // its creator's to pay for, or a loop of forks would cost nobody anything.
        let handles = state.log.entries() as u64 * Log::HANDLE_BYTES;
        if let Err(refusal) = state.charge_bytes(&self.budget, request.client, handles) {
            self.budget.close_stream(request.client);
            return Err(refusal.into());
        }
        if let Some(payload) = request.payload {
            if let Err(refusal) = state.charge(&self.budget, request.client, &payload) {
                for (client, bytes) in state.charges.drain(..) {
                    self.budget.refund(client, bytes);
                }
                self.budget.close_stream(request.client);
                return Err(refusal.into());
            }
            state.log.append(payload);
        }
        if let Some(source) = source_handle {
            source.lock().forks += 1;
            state.source = Some(source);
        }
        let stream = Arc::new(Stream {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            name: request.name.clone(),
            content_type,
            json,
            state: Mutex::new(state),
            changed: Notify::new(),
            last_frame: Mutex::new(None),
        });
        map.insert(request.name, Arc::clone(&stream));
        Ok((stream, true))
    }

    /// Deletes a stream: removed when no fork references it, soft-deleted otherwise.
    pub(crate) fn delete(&self, name: &str) -> Result<(), Failure> {
        let mut map = self.lock();
        self.expire(&mut map, name);
        let stream = map.get(name).cloned().ok_or(Failure::NotFound)?;
        let mut state = stream.lock();
        state.check_live()?;
        if state.forks > 0 {
            state.life = Life::SoftDeleted;
            drop(state);
            stream.changed.notify_waiters();
            return Ok(());
        }
        drop(state);
        self.remove(&mut map, name);
        Ok(())
    }

    /// Removes `name` and, up the fork chain, every soft-deleted source that no fork needs now.
    fn remove(&self, map: &mut HashMap<String, Arc<Stream>>, name: &str) {
        let mut next = Some(name.to_owned());
        while let Some(name) = next.take() {
            let Some(stream) = map.remove(&name) else {
                break;
            };
            let source = {
                let mut state = stream.lock();
                state.life = Life::Removed;
                for (client, bytes) in state.charges.drain(..) {
                    self.budget.refund(client, bytes);
                }
                self.budget.close_stream(state.owner);
                state.log = Log::default();
                state.source.take()
            };
            stream.changed.notify_waiters();
            if let Some(source) = source {
                let mut state = source.lock();
                state.forks = state.forks.saturating_sub(1);
                let still_registered = map
                    .get(&source.name)
                    .is_some_and(|s| Arc::ptr_eq(s, &source));
                if state.forks == 0 && state.life == Life::SoftDeleted && still_registered {
                    next = Some(source.name.clone());
                }
            }
        }
    }

    /// Ends `name` if its TTL or expiry time has passed.
    fn expire(&self, map: &mut HashMap<String, Arc<Stream>>, name: &str) {
        let Some(stream) = map.get(name).cloned() else {
            return;
        };
        let mut state = stream.lock();
        if state.life != Life::Live || !state.expiry.expired() {
            return;
        }
        if state.forks > 0 {
            state.life = Life::SoftDeleted;
            drop(state);
            stream.changed.notify_waiters();
        } else {
            drop(state);
            self.remove(map, name);
        }
    }

    /// Expires every stream past its time, at most once a second, so that streams nobody asks
    /// for again still free their memory.
    fn sweep_if_due(&self, map: &mut HashMap<String, Arc<Stream>>) {
        let now = time::now_millis();
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(due, now + 1_000, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, s)| {
                let state = s.lock();
                state.life == Life::Live && state.expiry.expired()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            self.expire(map, &name);
        }
    }
}

/// Splits a body into a payload for a stream of the given kind (`None` for an empty body).
pub(crate) fn payload(body: Bytes, json: bool, creating: bool) -> Result<Option<Payload>, Failure> {
    if body.is_empty() {
        return Ok(None);
    }
    if json {
        let messages = super::json::messages(&body, creating)?;
        Ok((!messages.is_empty()).then(|| Payload::messages(messages)))
    } else {
        Ok((!body.is_empty()).then_some(Payload::Bytes(body)))
    }
}
