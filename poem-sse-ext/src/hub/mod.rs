//! The hub: channels, publishing and subscribing, and everything a stream is counted against
//! (the caps, the connect rate, authorization's grant and revocation). It knows no HTTP: the
//! [`crate::http`] layer answers requests with what it hands out.
//!
//! A newcomer needs [`crate::Hub`], [`crate::HubBuilder`] and [`crate::Subscriber`] from the
//! crate root; this module holds what configuring and
//! admitting streams names: [`HubConfig`], [`Opener`] and [`Grant`] (who opens a stream),
//! [`Refusal`] and [`RefusalReason`] (why one was not opened), [`ConnectRate`], and the channel
//! name rules ([`validate_channel`], [`ChannelError`], [`TooManyChannels`]).

pub(crate) mod admission;
pub(crate) mod builder;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod handle;
pub(crate) mod registry;
mod set_reader;
mod sets;
pub(crate) mod stats;
pub(crate) mod subscriber;
#[cfg(test)]
mod tests;
pub(crate) mod trace;

pub use admission::{ConnectRate, Grant, Opener, Refusal, RefusalReason};
pub use config::HubConfig;
pub(crate) use handle::Hub;
pub use registry::{validate_channel, ChannelError, TooManyChannels, MAX_CHANNEL_LEN};
