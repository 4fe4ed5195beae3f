//! Who may open a stream now: every cap on open streams (in total, per channel, per client, per
//! principal), the connect-rate limit per client, shutdown, and revocation of a principal's
//! streams, in one place that answers with one [`Refusal`]. Knows no HTTP: the endpoint says who
//! the client is ([`Opener`]).

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use super::registry::Channel;
use crate::sync::{
    lock,
    shutdown::{ShutdownSignal, ShutdownTrigger},
};

/// Who opens a stream: what the per-client caps, the rate limit and revocation go by.
///
/// [`SseEndpoint`](crate::SseEndpoint) fills it from the request (the peer address, or the
/// forwarded address when the peer is a trusted proxy) and from the authorization's [`Grant`].
#[derive(Debug, Clone, Default)]
pub struct Opener {
    /// The client's address.
    pub client: Option<IpAddr>,
    /// What authorization granted, if any.
    pub grant: Option<Grant>,
}

/// What authorization granted a stream: who it is for, and until when.
///
/// At `expires_at` the stream sends [`REAUTH_EVENT`](crate::wire::REAUTH_EVENT) and ends with a
/// `retry:` hint; the client reconnects, is authorized afresh and resumes exactly.
/// [`Hub::revoke`](crate::Hub::revoke) ends every open stream of a principal the same way.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use poem_sse_ext::hub::Grant;
///
/// let grant = Grant::new("alice").expires_at(SystemTime::now() + Duration::from_secs(900));
/// assert_eq!(grant.principal(), Some("alice"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    principal: Option<Arc<str>>,
    expires_at: Option<SystemTime>,
}

impl Grant {
    /// A grant for `principal` (a user id, say), without expiry.
    pub fn new(principal: impl Into<Arc<str>>) -> Self {
        Self {
            principal: Some(principal.into()),
            expires_at: None,
        }
    }

    /// A grant for nobody in particular (a public channel).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Ends the stream at `at` (the expiry of the session or token it was granted on).
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Who it was granted to.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// When it expires.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The grant of a stream of several channels, each granted on its own: the first principal,
    /// and the earliest expiry.
    pub(crate) fn narrowest(held: Option<Self>, next: Self) -> Option<Self> {
        let Some(held) = held else {
            return Some(next);
        };
        let expires_at = match (held.expires_at, next.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Self {
            principal: held.principal.or(next.principal),
            expires_at,
        })
    }

    /// The expiry as a tokio deadline (`None`: never; a past expiry: now).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let left = self
            .expires_at?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Some(Instant::now() + left)
    }
}

/// Why a stream was refused: the reason of a [`Refusal`], named in the `sse-busy` event and
/// counted in [`RefusalCounts`](crate::metrics::RefusalCounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusalReason {
    /// [`HubBuilder::max_streams`](crate::HubBuilder::max_streams).
    MaxStreams,
    /// [`HubBuilder::max_streams_per_channel`](crate::HubBuilder::max_streams_per_channel).
    MaxStreamsPerChannel,
    /// [`HubBuilder::max_streams_per_client`](crate::HubBuilder::max_streams_per_client).
    MaxStreamsPerClient,
    /// [`HubBuilder::max_streams_per_principal`](crate::HubBuilder::max_streams_per_principal).
    MaxStreamsPerPrincipal,
    /// [`HubBuilder::connect_rate`](crate::HubBuilder::connect_rate).
    RateLimited,
    /// [`HubBuilder::max_channels`](crate::HubBuilder::max_channels).
    MaxChannels,
    /// [`Hub::shutdown`](crate::Hub::shutdown) was called.
    ShuttingDown,
    /// The store failed.
    Store,
}

impl RefusalReason {
    /// Every reason, in a fixed order.
    pub const ALL: [Self; 8] = [
        Self::MaxStreams,
        Self::MaxStreamsPerChannel,
        Self::MaxStreamsPerClient,
        Self::MaxStreamsPerPrincipal,
        Self::RateLimited,
        Self::MaxChannels,
        Self::ShuttingDown,
        Self::Store,
    ];

    /// The reason as written in the `sse-busy` event, the metrics and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxStreams => "max_streams",
            Self::MaxStreamsPerChannel => "max_streams_per_channel",
            Self::MaxStreamsPerClient => "max_streams_per_client",
            Self::MaxStreamsPerPrincipal => "max_streams_per_principal",
            Self::RateLimited => "rate_limited",
            Self::MaxChannels => "max_channels",
            Self::ShuttingDown => "shutting_down",
            Self::Store => "store",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stream the hub did not open now, and why: a cap, the connect rate or shutdown. It may open
/// later; the endpoint answers it with a retry hint that grows with [`Refusal::streak`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Refusal {
    reason: RefusalReason,
    limit: usize,
    streak: u32,
    channel: Option<Box<str>>,
}

impl Refusal {
    pub(crate) fn new(reason: RefusalReason, limit: usize) -> Self {
        Self {
            reason,
            limit,
            streak: 0,
            channel: None,
        }
    }

    fn with_streak(mut self, streak: u32) -> Self {
        self.streak = streak;
        self
    }

    pub(crate) fn on_channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Why.
    pub fn reason(&self) -> RefusalReason {
        self.reason
    }

    /// The limit that refused it (`0` where none applies: shutdown).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Refusals of this client in a row (`0` when not counted per client): a retry hint should
    /// grow with it, so that a client reconnecting in a tight loop backs off.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// The channel whose cap refused it, for [`RefusalReason::MaxStreamsPerChannel`] and
    /// [`RefusalReason::MaxChannels`].
    pub fn channel(&self) -> Option<&str> {
        self.channel.as_deref()
    }

    fn message(&self) -> String {
        let limit = self.limit;
        let channel = self.channel.as_deref().unwrap_or_default();
        match self.reason {
            RefusalReason::MaxStreams => {
                format!("too many open streams: the server holds at most {limit}")
            }
            RefusalReason::MaxStreamsPerChannel => {
                format!("too many open streams on channel `{channel}`: it holds at most {limit}")
            }
            RefusalReason::MaxStreamsPerClient => {
                format!("too many open streams from this address: at most {limit}")
            }
            RefusalReason::MaxStreamsPerPrincipal => {
                format!("too many open streams for this user: at most {limit}")
            }
            RefusalReason::RateLimited => "too many connects from this address: slow down".into(),
            RefusalReason::MaxChannels => format!(
                "too many channels: the hub holds at most {limit}, so channel `{channel}` can not \
                 be registered now"
            ),
            RefusalReason::ShuttingDown => "the server is shutting down".into(),
            RefusalReason::Store => "the replay store failed".into(),
        }
    }
}

/// A token bucket: `burst` connects at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectRate {
    /// Connects a client may make at once.
    pub burst: u32,
    /// Connects per second it regains.
    pub per_second: f64,
}

/// The limits [`Admission`] enforces; `None` is unlimited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) total: usize,
    pub(crate) per_channel: usize,
    pub(crate) per_client: Option<usize>,
    pub(crate) per_principal: Option<usize>,
    pub(crate) rate: Option<ConnectRate>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            total: usize::MAX,
            per_channel: usize::MAX,
            per_client: None,
            per_principal: None,
            rate: None,
        }
    }
}

/// Every cap on open streams, and the trigger of each principal's revocation.
///
/// Per-client and per-principal counts and buckets sit under one lock; entries exist only while
/// a client has streams or an unrefilled bucket, so the tables are bounded by the open streams
/// plus the clients of the last few seconds. The total and per-channel counts are atomics,
/// incremented first and checked after, so two racing opens can not both take the last place.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    /// Open streams over all channels: incremented before the per-channel counts and decremented
    /// after them, so it is never below their sum.
    open: AtomicUsize,
    state: Mutex<Tables>,
    shutdown: ShutdownTrigger,
}

#[derive(Debug, Default)]
struct Tables {
    clients: HashMap<IpAddr, ClientEntry>,
    principals: HashMap<Arc<str>, PrincipalEntry>,
}

#[derive(Debug)]
struct ClientEntry {
    open: usize,
    tokens: f64,
    refilled: Instant,
    /// Refusals in a row; reset by an admission.
    streak: u32,
}

#[derive(Debug)]
struct PrincipalEntry {
    open: usize,
    revoke: ShutdownTrigger,
}

/// A stream's places in every count, given back when dropped.
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    client: Option<IpAddr>,
    principal: Option<Arc<str>>,
    channels: Box<[Arc<Channel>]>,
    /// Whether the total and the channels' counts hold this stream's place.
    counted: bool,
}

impl Admitted {
    /// A signal that fires when the principal's streams are revoked.
    pub(crate) fn revocation(&self) -> Option<ShutdownSignal> {
        let principal = self.principal.as_ref()?;
        let tables = lock(&self.admission.state);
        tables.principals.get(principal).map(|p| p.revoke.signal())
    }

    /// The channels the stream reads.
    pub(crate) fn channels(&self) -> &[Arc<Channel>] {
        &self.channels
    }

    /// Gives back every place and returns the channels, for the caller to forget the idle ones.
    pub(crate) fn release(mut self) -> Box<[Arc<Channel>]> {
        self.give_back();
        std::mem::take(&mut self.channels)
    }

    /// Gives back the total's and the channels' places (once).
    fn give_back(&mut self) {
        if std::mem::take(&mut self.counted) {
            // The channels' places, then the total's (see `Admission::open`).
            for channel in self.channels.iter() {
                channel.stats.open.fetch_sub(1, Ordering::AcqRel);
            }
            self.admission.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Takes the stream's places in the total and on each of `channels`, or says which cap
    /// refused it (then the client's places are given back when `self` is dropped).
    pub(crate) fn hold(&mut self, channels: Vec<Arc<Channel>>) -> Result<(), Refusal> {
        let admission = &self.admission;
        let total = admission.limits.total;
        if admission.open.fetch_add(1, Ordering::AcqRel) >= total {
            admission.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::new(RefusalReason::MaxStreams, total));
        }
        let per_channel = admission.limits.per_channel;
        for (n, channel) in channels.iter().enumerate() {
            if channel.stats.open.fetch_add(1, Ordering::AcqRel) >= per_channel {
                for taken in &channels[..=n] {
                    taken.stats.open.fetch_sub(1, Ordering::AcqRel);
                }
                admission.open.fetch_sub(1, Ordering::AcqRel);
                return Err(
                    Refusal::new(RefusalReason::MaxStreamsPerChannel, per_channel)
                        .on_channel(&channel.name),
                );
            }
        }
        self.channels = channels.into_boxed_slice();
        self.counted = true;
        Ok(())
    }
}

impl Admission {
    pub(crate) fn new(limits: Limits, shutdown: ShutdownTrigger) -> Self {
        Self {
            limits,
            open: AtomicUsize::new(0),
            state: Mutex::default(),
            shutdown,
        }
    }

    /// Takes a place for a stream of `opener`, or says which limit refused it: shutdown first,
    /// then the client's connect rate and cap, then the principal's cap. The stream's channels
    /// are registered only after this, so a refused client registers none; then
    /// [`Admitted::hold`] checks the total and each channel's cap.
    pub(crate) fn admit(self: &Arc<Self>, opener: &Opener) -> Result<Admitted, Refusal> {
        if self.shutdown.is_fired() {
            return Err(Refusal::new(RefusalReason::ShuttingDown, 0));
        }
        let principal = opener.grant.as_ref().and_then(|g| g.principal.clone());
        if opener.client.is_some() || principal.is_some() {
            self.admit_client(opener.client, principal.as_ref())?;
        }
        Ok(Admitted {
            admission: Arc::clone(self),
            client: opener.client,
            principal,
            channels: Box::default(),
            counted: false,
        })
    }

    /// Takes the client's and the principal's places, after their rate limit and caps.
    fn admit_client(
        &self,
        client: Option<IpAddr>,
        principal: Option<&Arc<str>>,
    ) -> Result<(), Refusal> {
        let mut tables = lock(&self.state);
        let now = Instant::now();
        if let Some(client) = client {
            self.sweep(&mut tables, now);
            let full_bucket = self.limits.rate.map_or(0.0, |rate| f64::from(rate.burst));
            let entry = tables.clients.entry(client).or_insert(ClientEntry {
                open: 0,
                tokens: full_bucket,
                refilled: now,
                streak: 0,
            });
            if let Some(rate) = self.limits.rate {
                let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
                entry.tokens = (entry.tokens + elapsed * rate.per_second).min(full_bucket);
                entry.refilled = now;
                if entry.tokens < 1.0 {
                    entry.streak = entry.streak.saturating_add(1);
                    return Err(
                        Refusal::new(RefusalReason::RateLimited, rate.burst as usize)
                            .with_streak(entry.streak),
                    );
                }
            }
            if let Some(limit) = self.limits.per_client {
                if entry.open >= limit {
                    entry.streak = entry.streak.saturating_add(1);
                    return Err(Refusal::new(RefusalReason::MaxStreamsPerClient, limit)
                        .with_streak(entry.streak));
                }
            }
        }
        if let (Some(principal), Some(limit)) = (principal, self.limits.per_principal) {
            if tables
                .principals
                .get(principal)
                .is_some_and(|p| p.open >= limit)
            {
                return Err(Refusal::new(RefusalReason::MaxStreamsPerPrincipal, limit));
            }
        }
        // Every check passed: take the places.
        if let Some(entry) = client.and_then(|c| tables.clients.get_mut(&c)) {
            entry.open += 1;
            entry.streak = 0;
            if self.limits.rate.is_some() {
                entry.tokens -= 1.0;
            }
        }
        if let Some(principal) = principal {
            tables
                .principals
                .entry(Arc::clone(principal))
                .or_insert_with(|| PrincipalEntry {
                    open: 0,
                    revoke: ShutdownTrigger::new(),
                })
                .open += 1;
        }
        Ok(())
    }

    /// Open streams over all channels.
    pub(crate) fn open_streams(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Ends every open stream of `principal`; returns how many were open.
    pub(crate) fn revoke(&self, principal: &str) -> usize {
        let mut tables = lock(&self.state);
        match tables.principals.get_mut(principal) {
            Some(entry) => {
                entry.revoke.fire();
                // Streams opened from now on are not revoked by the earlier call.
                entry.revoke = ShutdownTrigger::new();
                entry.open
            }
            None => 0,
        }
    }

    /// Open streams of `client`, for tests.
    #[cfg(test)]
    pub(crate) fn open_of(&self, client: IpAddr) -> usize {
        lock(&self.state).clients.get(&client).map_or(0, |c| c.open)
    }

    /// Drops client entries that hold nothing: no stream and a full bucket.
    fn sweep(&self, tables: &mut Tables, now: Instant) {
        // Amortized: only when the table has grown past what the open streams explain.
        if tables.clients.len() < 1_024 {
            return;
        }
        let rate = self.limits.rate;
        tables.clients.retain(|_, entry| {
            let refilled = rate.is_none_or(|rate| {
                let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
                entry.tokens + elapsed * rate.per_second >= f64::from(rate.burst)
            });
            entry.open > 0 || !refilled
        });
    }

    fn release(&self, client: Option<IpAddr>, principal: Option<&Arc<str>>) {
        let mut tables = lock(&self.state);
        if let Some(client) = client {
            if let Some(entry) = tables.clients.get_mut(&client) {
                entry.open = entry.open.saturating_sub(1);
                if entry.open == 0 && self.limits.rate.is_none() {
                    tables.clients.remove(&client);
                }
            }
        }
        if let Some(principal) = principal {
            if let Some(entry) = tables.principals.get_mut(principal) {
                entry.open = entry.open.saturating_sub(1);
                if entry.open == 0 {
                    tables.principals.remove(principal);
                }
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.give_back();
        if self.client.is_some() || self.principal.is_some() {
            self.admission.release(self.client, self.principal.as_ref());
        }
    }
}

impl fmt::Debug for Admitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("client", &self.client)
            .field("principal", &self.principal)
            .field("channels", &self.channels.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn opener(last: u8) -> Opener {
        Opener {
            client: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))),
            grant: None,
        }
    }

    #[test]
    fn per_client_cap_counts_open_streams_of_one_address_only() {
        let admission = Arc::new(Admission::new(
            Limits {
                per_client: Some(2),
                ..Limits::default()
            },
            ShutdownTrigger::new(),
        ));
        let first = admission.admit(&opener(1));
        let second = admission.admit(&opener(1));
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(
            admission
                .admit(&opener(1))
                .map(|_| ())
                .map_err(|r| r.reason()),
            Err(RefusalReason::MaxStreamsPerClient)
        );
        assert!(admission.admit(&opener(2)).is_ok(), "another address");
        drop(first);
        assert!(admission.admit(&opener(1)).is_ok(), "a place came free");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tight_reconnect_loop_is_limited_with_a_growing_streak_and_refills() {
        let admission = Arc::new(Admission::new(
            Limits {
                rate: Some(ConnectRate {
                    burst: 3,
                    per_second: 1.0,
                }),
                ..Limits::default()
            },
            ShutdownTrigger::new(),
        ));
        for _ in 0..3 {
            assert!(admission.admit(&opener(1)).is_ok());
        }
        let streaks: Vec<_> = (0..3)
            .map(|_| {
                admission
                    .admit(&opener(1))
                    .map(|_| ())
                    .map_err(|r| r.streak())
            })
            .collect();
        assert_eq!(streaks, [Err(1), Err(2), Err(3)]);
        assert!(admission.admit(&opener(2)).is_ok(), "others are not slowed");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            admission.admit(&opener(1)).is_ok(),
            "one token back after 1 s"
        );
        assert_eq!(
            admission.open_of(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
            0
        );
    }

    #[test]
    fn per_principal_cap_and_revocation() {
        let admission = Arc::new(Admission::new(
            Limits {
                per_principal: Some(1),
                ..Limits::default()
            },
            ShutdownTrigger::new(),
        ));
        let alice = Opener {
            client: None,
            grant: Some(Grant::new("alice")),
        };
        let held = admission.admit(&alice);
        let held = held.unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(
            admission.admit(&alice).map(|_| ()).map_err(|r| r.reason()),
            Err(RefusalReason::MaxStreamsPerPrincipal)
        );
        let signal = held.revocation();
        assert!(signal.is_some());
        assert_eq!(admission.revoke("alice"), 1);
        assert_eq!(admission.revoke("bob"), 0);
    }
}
