//! [`Hub`]: the handle to a set of channels: publish, read, subscribe, revoke, shut down.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::trace;
use crate::{
    hub::admission::{Admission, Grant, Limits, Opener},
    hub::config::HubConfig,
    hub::error::{PublishError, ReadError, SubscribeError},
    hub::registry::{Channel, ChannelFilter, Registry},
    hub::subscriber::{Ending, OpenStream, Source, Subscriber},
    store::{ReplayStore, StoreHealth},
    sync::shutdown::{ShutdownSignal, ShutdownTrigger},
    wire::Event,
    wire::{EventId, Published, Recent},
};

/// A resume id that no store issues (ids never contain NUL): what an over-long resume point
/// becomes, so that the store answers it with [`crate::store::ResetReason::Unknown`].
pub(crate) const UNKNOWN_RESUME_ID: &str = "\0";

/// The publish side and the subscribe side of a set of channels, over one
/// [`ReplayStore`](crate::store::ReplayStore).
///
/// Cheap to clone (an `Arc`); clone it into handlers, publishers and the endpoint.
///
/// ```
/// use std::time::Duration;
/// use poem::Route;
/// use poem_sse_ext::{Event, Hub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::builder().history(1_000).heartbeat(Duration::from_secs(15)).build();
/// let app = Route::new().at("/events/:channel", hub.endpoint());
/// let id = hub.publish("prices", Event::json(&[1, 2, 3])?).await?;
/// assert_eq!(hub.head("prices").await?, id);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(super) inner: Arc<HubInner>,
}

pub(super) struct HubInner {
    registry: Arc<Registry>,
    admission: Arc<Admission>,
    pub(super) config: HubConfig,
    shutdown: ShutdownTrigger,
}

impl Hub {
    pub(crate) fn from_parts(
        store: Arc<dyn ReplayStore>,
        config: HubConfig,
        filter: Option<Arc<ChannelFilter>>,
    ) -> Self {
        let shutdown = ShutdownTrigger::new();
        let limits = Limits {
            total: config.max_streams,
            per_channel: config.max_streams_per_channel,
            per_client: config.max_streams_per_client,
            per_principal: config.max_streams_per_principal,
            rate: config.connect_rate,
        };
        Self {
            inner: Arc::new(HubInner {
                registry: Arc::new(Registry::new(store, config.max_channels, filter)),
                admission: Arc::new(Admission::new(limits, shutdown.clone())),
                config,
                shutdown,
            }),
        }
    }

    /// The settings of this hub.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Publishes `event` on `channel`: encodes it once, appends it to the store and wakes the
    /// channel's streams. Returns the id the store gave it. Costs the same whatever the number of
    /// listeners: nothing is copied per subscriber.
    ///
    /// # Errors
    /// An invalid channel name, an event that carries its own id, a hub that is shutting down or
    /// holds its maximum of channels, or a store failure (nothing is dropped silently).
    pub async fn publish(&self, channel: &str, event: Event) -> Result<EventId, PublishError> {
        let entry = self.publishing(channel, &event)?;
        let appended = entry.store.append(&event).await;
        self.published(entry, appended.is_ok());
        Ok(appended?)
    }

    /// Publishes `event` on `channel` once per idempotency `key`: a publisher that retries with
    /// the same key (after a timeout, say) within [`HubBuilder::idempotency_window`] gets the
    /// first id back with [`Published::duplicate`] set, and nothing is stored twice, on every
    /// store and across instances sharing one.
    ///
    /// ```
    /// use poem_sse_ext::{Event, Hub};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = Hub::new();
    /// let first = hub.publish_once("orders", "order-42", Event::text("paid")).await?;
    /// let retry = hub.publish_once("orders", "order-42", Event::text("paid")).await?;
    /// assert_eq!(retry.id, first.id);
    /// assert!(retry.duplicate && !first.duplicate);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`HubBuilder::idempotency_window`]: crate::HubBuilder::idempotency_window
    ///
    /// # Errors
    /// As [`Hub::publish`], and [`PublishError::InvalidIdempotencyKey`] for a key that is empty,
    /// over 256 bytes or not visible ASCII.
    pub async fn publish_once(
        &self,
        channel: &str,
        key: &str,
        event: Event,
    ) -> Result<Published, PublishError> {
        let valid_key = (1..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if !valid_key {
            return Err(PublishError::InvalidIdempotencyKey);
        }
        let entry = self.publishing(channel, &event)?;
        let window = self.inner.config.idempotency_window;
        let appended = entry.store.append_once(key, window, &event).await;
        let stored = appended.as_ref().is_ok_and(|appended| !appended.duplicate);
        self.published(entry, stored);
        Ok(appended?)
    }

    /// The id of the newest event on `channel`: render a page's state together with it and let
    /// the page's stream resume after it (`?lastEventId=<id>`), so that nothing published between
    /// render and connect is lost or shown twice.
    ///
    /// # Errors
    /// An invalid channel name, a hub at its maximum of channels, or a store failure.
    pub async fn head(&self, channel: &str) -> Result<EventId, ReadError> {
        let entry = self.channel(channel)?;
        let head = entry.store.head().await;
        drop(entry);
        self.inner.registry.forget_if_idle(channel);
        Ok(head?)
    }

    /// The newest events of `channel` still retained, at most `max`, with the head id they lead
    /// up to: a page's state, rendered from the store itself (so from any instance sharing it).
    ///
    /// ```
    /// use poem_sse_ext::{Event, Hub};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = Hub::new();
    /// for note in ["a", "b", "c"] {
    ///     hub.publish("notes", Event::text(note).event("note")?).await?;
    /// }
    /// let recent = hub.recent("notes", 2).await?;
    /// let data: Vec<_> = recent.events.iter().map(|e| e.data.as_str()).collect();
    /// assert_eq!(data, ["b", "c"]);
    /// assert_eq!(recent.head, hub.head("notes").await?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Hub::head`].
    pub async fn recent(&self, channel: &str, max: usize) -> Result<Recent, ReadError> {
        let entry = self.channel(channel)?;
        let recent = entry.store.recent(max).await;
        drop(entry);
        self.inner.registry.forget_if_idle(channel);
        Ok(recent?)
    }

    /// Opens a stream of `channel` after `resume` (an id the client saw; `None` for "from now"):
    /// the reset signal if `resume` can not be honoured, every retained event after it, then live
    /// events. Counted against the caps until the [`Subscriber`] is dropped.
    ///
    /// `resume` is untrusted input: any value gives a subscriber (with a reset where it can not
    /// be honoured); an empty one means none, one longer than
    /// [`HubBuilder::max_last_event_id_len`](crate::HubBuilder::max_last_event_id_len) is unknown.
    ///
    /// # Errors
    /// An invalid channel name, shutdown, a cap (streams in total, per channel, channels), or a
    /// store failure; see [`SubscribeError::is_temporary`].
    pub async fn subscribe(
        &self,
        channel: &str,
        resume: Option<&str>,
    ) -> Result<Subscriber, SubscribeError> {
        self.subscribe_as(channel, resume, &Opener::default()).await
    }

    /// [`Hub::subscribe`] on behalf of `opener`: its client address counts against
    /// [`HubBuilder::max_streams_per_client`](crate::HubBuilder::max_streams_per_client) and
    /// [`HubBuilder::connect_rate`](crate::HubBuilder::connect_rate), its grant's principal
    /// against [`HubBuilder::max_streams_per_principal`](crate::HubBuilder::max_streams_per_principal)
    /// and [`Hub::revoke`], and the grant's expiry ends the stream with
    /// [`REAUTH_EVENT`](crate::wire::REAUTH_EVENT).
    ///
    /// # Errors
    /// As [`Hub::subscribe`], and the per-client and per-principal refusals.
    pub async fn subscribe_as(
        &self,
        channel: &str,
        resume: Option<&str>,
        opener: &Opener,
    ) -> Result<Subscriber, SubscribeError> {
        let config = &self.inner.config;
        let (mut entries, stream, ending) = self.open(&[channel], opener)?;
        let resume = match resume {
            Some("") | None => None,
            Some(id) if id.len() > config.max_last_event_id_len => Some(UNKNOWN_RESUME_ID),
            Some(id) => Some(id),
        };
        let entry = entries.pop().unwrap_or_else(|| unreachable!("one channel"));
        let sub = entry
            .store
            .subscribe(resume)
            .await
            .map_err(|err| self.refused(err.into()))?;
        let span = trace::stream_span(channel, resume, opener.client);
        if let Some(reset) = &sub.reset {
            span.record("reset", reset.reason.as_str());
        }
        tracing::debug!(parent: &span, "sse stream opened");
        Ok(Subscriber::new(Source::one(sub, config.max_chunk_bytes), ending, stream).in_span(span))
    }

    /// Checks, admits and counts a stream of `channels`; returns their entries, the open stream
    /// and how it ends on purpose.
    #[allow(clippy::type_complexity)]
    pub(super) fn open(
        &self,
        channels: &[&str],
        opener: &Opener,
    ) -> Result<(Vec<Arc<Channel>>, OpenStream, Option<Box<Ending>>), SubscribeError> {
        for channel in channels {
            self.inner
                .registry
                .validate(channel)
                .map_err(|err| self.refused(err.into()))?;
        }
        let mut admitted = self
            .inner
            .admission
            .admit(opener)
            .map_err(|refusal| self.refused(refusal.into()))?;
        let revocation = admitted.revocation();
        let mut entries = Vec::with_capacity(channels.len());
        for channel in channels {
            let entry = self
                .inner
                .registry
                .get_or_register(channel)
                .map_err(|err| self.refused(err.into()))?;
            entries.push(entry);
        }
        admitted
            .hold(entries.clone())
            .map_err(|refusal| self.refused(refusal.into()))?;
        let stream = OpenStream::new(&self.inner.registry, admitted, &self.inner.shutdown);
        let config = &self.inner.config;
        let expiry = opener.grant.as_ref().and_then(Grant::deadline);
        let ending = Ending::new(
            config.lifetime_deadline(),
            expiry,
            revocation,
            config.jittered_retry(),
        );
        Ok((entries, stream, ending))
    }

    /// Counts a refusal under its reason.
    pub(super) fn refused(&self, err: SubscribeError) -> SubscribeError {
        if let Some(reason) = err.reason() {
            self.inner.registry.streams.refused(reason);
            trace::log_refused(reason, &err);
        }
        err
    }

    /// Ends every open stream of `principal` now: each sends
    /// [`REAUTH_EVENT`](crate::wire::REAUTH_EVENT) and a retry hint, then ends; the client
    /// reconnects and is authorized afresh. Returns how many streams were open.
    pub fn revoke(&self, principal: &str) -> usize {
        self.inner.admission.revoke(principal)
    }

    /// The channel registry, for the metrics snapshot.
    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Channels registered now: those with open streams, with events retained in this process,
    /// or in use by a publish or read. Others cost nothing.
    pub fn channel_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Open streams over all channels.
    pub fn open_streams(&self) -> usize {
        self.inner.admission.open_streams()
    }

    /// Whether the store can serve right now.
    pub fn health(&self) -> StoreHealth {
        self.inner.registry.store().health()
    }

    /// Ends every open stream now: each gets the configured shutdown event (if any) and a jittered
    /// `retry:` hint, then its response ends. New streams are refused, publishes get an error.
    ///
    /// Call it when shutdown begins, before the server waits for connections to close:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use poem::{listener::TcpListener, Route, Server};
    /// use poem_sse_ext::Hub;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let hub = Hub::new();
    /// let app = Route::new().at("/events/:channel", hub.endpoint());
    /// let signal = {
    ///     let hub = hub.clone();
    ///     async move {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///         hub.shutdown(); // streams end themselves, so the server exits at once
    ///     }
    /// };
    /// Server::new(TcpListener::bind("127.0.0.1:3000"))
    ///     .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(5)))
    ///     .await
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.inner.shutdown.fire();
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_fired()
    }

    /// A token cancelled when the hub shuts down (to stop publishers and other tasks with it).
    /// Cancelling it does not shut the hub down: call [`Hub::shutdown`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.child_token()
    }

    /// The signal a stream's body watches to end itself on shutdown.
    pub(crate) fn shutdown_signal(&self) -> ShutdownSignal {
        self.inner.shutdown.signal()
    }

    /// Checks a publish and registers its channel.
    fn publishing(&self, channel: &str, event: &Event) -> Result<Arc<Channel>, PublishError> {
        self.inner.registry.validate(channel)?;
        if let Some(id) = event.event_id() {
            return Err(PublishError::HasId(id.to_owned()));
        }
        if self.is_shutting_down() {
            return Err(PublishError::ShuttingDown);
        }
        Ok(self.inner.registry.get_or_register(channel)?)
    }

    /// Counts a stored event; a failed first publish leaves no channel behind.
    fn published(&self, entry: Arc<Channel>, stored: bool) {
        if stored {
            super::stats::ChannelStats::add(&entry.stats.published, 1);
        } else {
            let name = entry.name.clone();
            drop(entry);
            self.inner.registry.forget_if_idle(&name);
        }
    }

    fn channel(&self, name: &str) -> Result<Arc<Channel>, ReadError> {
        self.inner.registry.validate(name)?;
        Ok(self.inner.registry.get_or_register(name)?)
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("open_streams", &self.open_streams())
            .field("shutting_down", &self.is_shutting_down())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
