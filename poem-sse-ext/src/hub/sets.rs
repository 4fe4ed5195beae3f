//! [`Hub::subscribe_set`]: several channels on one stream.

use crate::{
    hub::admission::Opener,
    hub::error::SubscribeError,
    hub::set_reader::{Member, SetReader},
    hub::subscriber::{Source, Subscriber},
    wire::{
        set_cursor::{self as cursor},
        MAX_SET_CHANNELS,
    },
};

use super::handle::{Hub, UNKNOWN_RESUME_ID};

impl Hub {
    /// Opens one stream of several `channels` (at most
    /// [`MAX_SET_CHANNELS`](crate::wire::MAX_SET_CHANNELS), duplicates ignored) after `resume`, a set
    /// cursor: each channel's events in publish order, the channels interleaved as events arrive
    /// and read in turn, so that a busy channel can not starve a quiet one.
    ///
    /// On the wire each event's type is prefixed by its channel (`<channel>` for an unnamed
    /// event, `<channel>:<name>` otherwise), and its `id:` is the set's cursor, which resumes
    /// every channel at once: a reconnect gets exactly what each channel missed. A channel whose
    /// resume point is gone gets its own `sse-reset` (naming it in `channel`); the others resume
    /// exactly. A malformed cursor, or one of another set, resets every channel. A page rendered
    /// from several channels' state starts the set from [`set_cursor`](crate::wire::set_cursor).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use poem_sse_ext::{Event, Hub, hub::Opener};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = Hub::new();
    /// let mut both = hub.subscribe_set(&["cpu", "mem"], None, &Opener::default()).await?;
    /// hub.publish("mem", Event::text("42").event("sample")?).await?;
    /// let chunk = both.next().await.unwrap_or_default();
    /// assert!(String::from_utf8_lossy(&chunk).contains("event: mem:sample\ndata: 42\n"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Hub::subscribe_as`]; [`SubscribeError::InvalidSet`] for an empty set or more than
    /// [`MAX_SET_CHANNELS`](crate::wire::MAX_SET_CHANNELS) channels. The stream counts once against
    /// the total and the per-client caps, and once on each channel.
    pub async fn subscribe_set(
        &self,
        channels: &[&str],
        resume: Option<&str>,
        opener: &Opener,
    ) -> Result<Subscriber, SubscribeError> {
        let mut unique: Vec<&str> = Vec::with_capacity(channels.len());
        for &channel in channels {
            if !unique.contains(&channel) {
                unique.push(channel);
            }
        }
        if unique.is_empty() || unique.len() > MAX_SET_CHANNELS {
            return Err(SubscribeError::InvalidSet(format!(
                "name 1 to {MAX_SET_CHANNELS} channels, not {}",
                unique.len()
            )));
        }
        let config = &self.inner.config;
        let (entries, stream, ending) = self.open(&unique, opener)?;
        let ids: Vec<Option<String>> = match resume.filter(|r| !r.is_empty()) {
            None => vec![None; unique.len()],
            Some(cursor) => cursor::decode(&unique, cursor)
                .unwrap_or_else(|| vec![Some(UNKNOWN_RESUME_ID.to_owned()); unique.len()]),
        };
        let mut members = Vec::with_capacity(entries.len());
        for (entry, id) in entries.into_iter().zip(ids) {
            let sub = entry
                .store
                .subscribe(id.as_deref())
                .await
                .map_err(|err| self.refused(err.into()))?;
            let start = sub.cursor.last_id().map(|id| id.to_string());
            members.push(Member::new(entry, sub, start));
        }
        let span = crate::hub::trace::stream_span(&unique.join(","), resume, opener.client);
        tracing::debug!(parent: &span, "sse stream opened");
        let set = SetReader::new(members, config.max_chunk_bytes);
        Ok(Subscriber::new(Source::Set(Box::new(set)), ending, stream).in_span(span))
    }
}
