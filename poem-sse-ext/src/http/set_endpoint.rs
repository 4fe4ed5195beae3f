//! [`SetEndpoint`]: several channels on one stream over HTTP, named by the `channels` query
//! parameter.

use poem::{Endpoint, Request, Response, Result};

use super::{
    endpoint::{get_only, resume_point, Streams},
    options::StreamOptions,
    refusal::RefusedStream,
};
use crate::{
    hub::{admission::Grant, Hub},
    wire::MAX_SET_CHANNELS,
};

impl Hub {
    /// A poem endpoint serving the set of channels named by the `channels` query parameter
    /// (`?channels=cpu,mem,load`): mount it as it is, `Route::new().at("/events",
    /// hub.set_endpoint())`. See [`Hub::subscribe_set`].
    pub fn set_endpoint(&self) -> SetEndpoint {
        SetEndpoint {
            streams: Streams::new(self.clone()),
            options: StreamOptions::new(),
        }
    }
}

/// Serves one stream of several channels (at most [`MAX_SET_CHANNELS`]), named by the
/// comma-separated, repeatable `channels` query parameter. Made by [`Hub::set_endpoint`].
///
/// Each event's type names its channel (`<channel>`, or `<channel>:<name>` for a named event) and
/// its `id:` is the set's cursor, which resumes every channel at once (see [`Hub::subscribe_set`]).
/// The authorizer of the options runs for each channel; a set with one forbidden channel is
/// refused, naming it. Answers as [`SseEndpoint`](crate::SseEndpoint) does, and `400` with a
/// message for an empty set or one of more than [`MAX_SET_CHANNELS`] channels.
///
/// ```
/// use poem::Route;
/// use poem_sse_ext::Hub;
///
/// let hub = Hub::new();
/// let app = Route::new()
///     .at("/events", hub.set_endpoint()) // GET /events?channels=cpu,mem
///     .at("/events/:channel", hub.endpoint());
/// ```
#[derive(Clone, Debug)]
pub struct SetEndpoint {
    streams: Streams,
    options: StreamOptions,
}

impl SetEndpoint {
    /// Reads the request and answers refusals as `options` says (see
    /// [`SseEndpoint::options`](crate::SseEndpoint::options); the path parameter does not apply).
    #[must_use]
    pub fn options(mut self, options: StreamOptions) -> Self {
        self.options = options;
        self
    }

    /// Answers `req` with the stream of the set `channels` under `grant`; the authorizer of the
    /// options is not run here.
    ///
    /// # Errors
    /// As [`SseEndpoint::serve`](crate::SseEndpoint::serve), and `400` for an empty set or more
    /// than [`MAX_SET_CHANNELS`] channels.
    pub async fn serve(
        &self,
        req: &Request,
        channels: &[&str],
        grant: Option<Grant>,
    ) -> Result<Response, RefusedStream> {
        let opener = self.options.opener(req, grant);
        let resume = resume_point(req);
        let subscribed = self
            .streams
            .hub
            .subscribe_set(channels, resume.as_deref(), &opener)
            .await;
        self.streams.answer(subscribed, req, &self.options)
    }
}

impl Endpoint for SetEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        get_only(&req)?;
        let channels = set_of(&req);
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        let mut grant: Option<Grant> = None;
        for channel in &channels {
            let granted = self.options.grant(&req, channel).await.map_err(|err| {
                // A set with one forbidden channel is refused, naming it.
                let status = err.status();
                poem::Error::from_string(format!("channel `{channel}`: {err}"), status)
            })?;
            if let Some(granted) = granted {
                grant = Grant::narrowest(grant, granted);
            }
        }
        Ok(self.serve(&req, &channels, grant).await?)
    }
}

/// The channels named by the `channels` query parameter (comma-separated, repeatable); one more
/// than a set may hold, at most, so that an over-long list is refused without being read whole.
fn set_of(req: &Request) -> Vec<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "channels")
        .flat_map(|(_, value)| {
            value
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .take(MAX_SET_CHANNELS + 1)
        .collect()
}
