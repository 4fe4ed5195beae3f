//! [`StreamOptions`]: what every endpoint of the crate does the same way, set once and shared.

use std::{fmt, net::IpAddr, sync::Arc};

use poem::{Request, Result};

use super::authorize::{Authorizer, Check};
use crate::hub::admission::{Grant, Opener};

/// How an endpoint reads its request and answers a refusal: the path parameter that names what it
/// serves, who may open it, which proxies may name the client, and whether a temporary refusal is
/// a soft one or a status.
///
/// One value serves every endpoint of an app (a channel's, a set's, a run's and a run's cancel),
/// so a policy is written once:
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use poem::{http::StatusCode, Error, Route};
/// use poem_sse_ext::{http::StreamOptions, run::Runs, Hub};
///
/// let options = StreamOptions::new()
///     .authorize(|req, _channel| match req.header("authorization") {
///         Some(_) => Ok(()),
///         None => Err(Error::from_status(StatusCode::UNAUTHORIZED)),
///     })
///     .trusted_proxies([IpAddr::V4(Ipv4Addr::LOCALHOST)]);
/// let hub = Hub::new();
/// let runs = Runs::builder().build();
/// let app = Route::new()
///     .at("/events/:channel", hub.endpoint().options(options.clone()))
///     .at("/events", hub.set_endpoint().options(options.clone()))
///     .at("/runs/:id/events", runs.endpoint().options(options));
/// ```
#[derive(Clone, Default)]
#[must_use = "options do nothing until given to an endpoint"]
pub struct StreamOptions {
    param: Option<Arc<str>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    trusted_proxies: Arc<[IpAddr]>,
    refuse_with_status: bool,
}

impl StreamOptions {
    /// The defaults: each endpoint's own parameter name, no authorization, no trusted proxy, soft
    /// refusals.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads what the endpoint serves from the path parameter `name`. The default is the
    /// endpoint's own: `channel` for a channel's stream, `id` for a run's endpoints. A set's
    /// endpoint reads its channels from the `channels` query parameter and ignores this.
    pub fn param(mut self, name: &str) -> Self {
        self.param = Some(Arc::from(name));
        self
    }

    /// Checks every request before anything is sent: `check(req, name)` returns `Err` to refuse,
    /// and its error becomes the response. `name` is the channel (for a run, `run.<id>`). Replay
    /// respects it: a refused client receives nothing, history included.
    pub fn authorize(
        self,
        check: impl Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.authorize_with(Check(check))
    }

    /// Authorizes every request with `authorizer`: async, and it returns a [`Grant`] whose
    /// principal the per-principal cap and [`Hub::revoke`](crate::Hub::revoke) go by, and whose
    /// expiry ends the stream mid-way. Runs before anything is replayed, on every connect and
    /// reconnect, and for each channel of a set.
    pub fn authorize_with(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// Proxies whose `X-Forwarded-For` names the client: for a connection from one of them, the
    /// client address (for
    /// [`HubBuilder::max_streams_per_client`](crate::HubBuilder::max_streams_per_client) and the
    /// connect rate) is the rightmost forwarded address that is not a trusted proxy. From anyone
    /// else the header is ignored, so a client can not pose as another. Default: none.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Answers a temporary refusal with `503` and `Retry-After` instead of the default soft
    /// refusal (a `200` stream with a retry hint and an `sse-busy` event). Only for clients that
    /// read statuses: a native `EventSource` never reconnects after a `503`.
    pub fn refuse_with_status(mut self) -> Self {
        self.refuse_with_status = true;
        self
    }

    /// The path parameter to read, `default` unless set.
    pub(crate) fn param_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.param.as_deref().unwrap_or(default)
    }

    /// Whether temporary refusals are soft (a `200` stream saying why).
    pub(crate) fn soft_refusals(&self) -> bool {
        !self.refuse_with_status
    }

    /// The grant of the authorizer for `name`, `None` without one.
    pub(crate) async fn grant(&self, req: &Request, name: &str) -> Result<Option<Grant>> {
        match &self.authorizer {
            Some(authorizer) => Ok(Some(authorizer.authorize(req, name).await?)),
            None => Ok(None),
        }
    }

    /// Who opens a stream with `req`: its client address, and `grant`.
    pub(crate) fn opener(&self, req: &Request, grant: Option<Grant>) -> Opener {
        Opener {
            client: self.client_address(req),
            grant,
        }
    }

    /// The peer's address, or the client a trusted proxy forwarded for.
    fn client_address(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr()?.ip();
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|hop| !self.trusted_proxies.contains(hop))
                .unwrap_or(peer),
        )
    }
}

impl fmt::Debug for StreamOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOptions")
            .field("param", &self.param)
            .field("authorizer", &self.authorizer.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("refuse_with_status", &self.refuse_with_status)
            .finish()
    }
}
