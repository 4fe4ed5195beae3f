//! Why a stream was not opened now: [`Refusal`] and its [`RefusalReason`], one type from the
//! admission to the `sse-busy` event, the metrics and the log.

use std::fmt;

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

    pub(super) fn with_streak(mut self, streak: u32) -> Self {
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
