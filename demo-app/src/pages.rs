//! The server-rendered pages of the dashboards.
//!
//! Each page is rendered from its [`PageState`] (read from the hub's store) and embeds that
//! state, with the id each channel's part of it leads up to, as JSON. The dashboard reads all its
//! channels on one stream: `dashboard.js` connects `/events?channels=<set>&lastEventId=<cursor>`,
//! the state's set cursor; the other pages connect each widget's `EventSource` with
//! `?lastEventId=<its channel's id>` (both through `sse.js`, see [`crate::assets`]).

use askama::Template;
use poem::{
    error::ResponseError,
    handler,
    http::StatusCode,
    web::{Data, Html},
    Response,
};
use poem_sse_ext::Hub;

use crate::{
    notification::Notification,
    sources::{hub::HubSample, system::Sample},
    state::{ChannelState, PageState, StateError},
    widgets::{self, Page, CHART_POINTS, CHART_WINDOW_SECS, FEED_ITEMS, LATEST, NOTIFICATIONS},
};

/// A dashboard widget as the template shows it.
struct WidgetView {
    channel: &'static str,
    title: &'static str,
    text: String,
    /// The series' names, `|`-separated; empty for one unnamed series per value.
    series: String,
    unit: &'static str,
    max: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    keep: usize,
    /// The chart window, in seconds for `client.js` and as the text says it.
    window_secs: u64,
    window: String,
    widgets: Vec<WidgetView>,
    /// The channels of the page's one stream, comma-separated, in page order.
    set: String,
}

/// A notification as a feed (`/notifications`, `/me`) shows it.
pub struct FeedItemView {
    /// Its number in the list: the oldest shown is 1, and a number never changes while the page
    /// is open (`widgets.js` numbers what arrives after it).
    pub n: usize,
    /// Its id.
    pub id: String,
    /// When it was published (RFC 3339), empty when its data does not say.
    pub at: String,
    /// `14:30:05 - text`, or the text alone.
    pub line: String,
}

/// A feed's entries, newest first, and the digits of the largest number (for the room the
/// numbers take).
pub fn feed_view(feed: &ChannelState) -> (Vec<FeedItemView>, usize) {
    let items: Vec<FeedItemView> = feed
        .items
        .iter()
        .enumerate()
        .rev()
        .map(|(at, item)| {
            let shown = Notification::of(item);
            FeedItemView {
                n: at + 1,
                id: item.id.to_string(),
                at: shown.at_attr(),
                line: shown.line(),
            }
        })
        .collect();
    let digits = items.first().map_or(1, |item| item.n.to_string().len());
    (items, digits)
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    channel: &'static str,
    keep: usize,
    items: Vec<FeedItemView>,
    /// Digits of the largest number, for the room the numbers take.
    digits: usize,
}

/// One channel's row on the hub page.
struct HubChannelView {
    /// The name's parts between dots: a narrow table breaks a name after a dot only.
    name_parts: Vec<String>,
    open_streams: usize,
    published: u64,
    head: String,
    /// `head` short (as `format.js` writes it), the full id in its title.
    head_short: String,
}

#[derive(Template)]
#[template(path = "hub.html")]
struct HubPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    totals_channel: &'static str,
    top_channel: &'static str,
    keep: usize,
    window_secs: u64,
    window: String,
    rate_window: String,
    latest: usize,
    top_rows: usize,
    stats: Vec<(&'static str, &'static str, String)>,
    channels: Vec<HubChannelView>,
    more: String,
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Its state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// Its template failed.
    #[error("rendering the page failed: {0}")]
    Render(#[from] askama::Error),
}

impl ResponseError for PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::State(err) => err.status(),
            PageError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        match self {
            PageError::State(err) => err.as_response(),
            PageError::Render(err) => {
                tracing::error!(%err, "rendering a page failed");
                Response::builder()
                    .status(self.status())
                    .content_type("text/plain; charset=utf-8")
                    .body(self.to_string())
            }
        }
    }
}

/// `GET /`: the system dashboard.
///
/// # Errors
/// [`PageError`]: `503` when the store can not be read.
#[handler]
pub async fn dashboard(Data(hub): Data<&Hub>) -> Result<Html<String>, PageError> {
    let state = PageState::read(hub, Page::Dashboard).await?;
    let widgets = widgets::DASHBOARD
        .iter()
        .map(|w| WidgetView {
            channel: w.channel(),
            title: w.title,
            text: state
                .channel(w.channel())
                .and_then(ChannelState::newest::<Sample>)
                .map_or_else(|| "waiting for the first sample".to_owned(), |s| s.text),
            series: w.series.join("|"),
            unit: w.unit,
            max: w.max.map(|m| m.to_string()).unwrap_or_default(),
        })
        .collect();
    render(DashboardPage {
        page: Page::Dashboard.name(),
        title: "System",
        state_json: state.embedded(),
        keep: CHART_POINTS,
        window_secs: CHART_WINDOW_SECS,
        window: window_text(),
        widgets,
        set: Page::Dashboard.set().join(","),
    })
}

/// `GET /notifications`: the live feed and a form to post to it.
///
/// # Errors
/// [`PageError`]: `503` when the store can not be read.
#[handler]
pub async fn notifications(Data(hub): Data<&Hub>) -> Result<Html<String>, PageError> {
    let state = PageState::read(hub, Page::Notifications).await?;
    let (items, digits) = state
        .channel(NOTIFICATIONS)
        .map(feed_view)
        .unwrap_or_default();
    render(NotificationsPage {
        page: Page::Notifications.name(),
        title: "Notifications",
        state_json: state.embedded(),
        channel: NOTIFICATIONS,
        keep: FEED_ITEMS,
        items,
        digits,
    })
}

/// `GET /hub`: the hub's own metrics: totals, and the busiest channels. Its size does not grow
/// with the number of channels.
///
/// # Errors
/// [`PageError`]: `503` when the store can not be read.
#[handler]
pub async fn hub_page(Data(hub): Data<&Hub>) -> Result<Html<String>, PageError> {
    use crate::sources::hub::{self as source, TopChannels};
    let state = PageState::read(hub, Page::Hub).await?;
    let last = state
        .channel(source::CHANNEL)
        .and_then(ChannelState::newest::<HubSample>);
    let figure = |value: &dyn Fn(&HubSample) -> String| last.as_ref().map_or("–".into(), value);
    let stats = vec![
        (
            "open_streams",
            "open streams",
            figure(&|s| s.open_streams.to_string()),
        ),
        (
            "events_per_sec",
            "events / s",
            figure(&|s| s.events_per_sec.to_string()),
        ),
        (
            "published",
            "published",
            figure(&|s| s.published.to_string()),
        ),
        (
            "delivered",
            "delivered",
            figure(&|s| s.delivered.to_string()),
        ),
        ("replayed", "replayed", figure(&|s| s.replayed.to_string())),
        ("resets", "resets", figure(&|s| s.resets.to_string())),
        ("rejected", "rejected", figure(&|s| s.rejected.to_string())),
        ("channels", "channels", figure(&|s| s.channels.to_string())),
    ];
    let top = state
        .channel(source::TOP_CHANNEL)
        .and_then(ChannelState::newest::<TopChannels>)
        .unwrap_or_default();
    let channels = top
        .rows
        .into_iter()
        .map(|row| {
            let head = row.head.unwrap_or_default();
            HubChannelView {
                name_parts: row.name.split('.').map(str::to_owned).collect(),
                open_streams: row.open_streams,
                published: row.published,
                head_short: short_id(&head),
                head,
            }
        })
        .collect();
    render(HubPage {
        page: Page::Hub.name(),
        title: "Hub",
        state_json: state.embedded(),
        totals_channel: source::CHANNEL,
        top_channel: source::TOP_CHANNEL,
        keep: CHART_POINTS,
        window_secs: CHART_WINDOW_SECS,
        window: window_text(),
        rate_window: humantime::format_duration(source::RATE_WINDOW).to_string(),
        latest: LATEST,
        top_rows: source::TOP_ROWS,
        stats,
        channels,
        more: more_channels(top.more),
    })
}

fn render(page: impl Template) -> Result<Html<String>, PageError> {
    Ok(Html(page.render()?))
}

/// An id short enough for a table cell (`s1.3…96.97`), as `format.js` writes it.
fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    match chars.len() {
        0 => "–".to_owned(),
        n if n <= 12 => id.to_owned(),
        n => format!(
            "{}…{}",
            chars[..4].iter().collect::<String>(),
            chars[n - 6..].iter().collect::<String>()
        ),
    }
}

/// The chart window as the charts' labels say it: `2 minutes`.
fn window_text() -> String {
    match CHART_WINDOW_SECS {
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// The line under the busiest channels: how many are not shown (as `client.js` writes it).
fn more_channels(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => "and 1 more channel".to_owned(),
        n => format!("and {n} more channels"),
    }
}

#[cfg(test)]
mod tests {
    use poem::{test::TestClient, EndpointExt, Route};
    use poem_sse_ext::Event;

    use super::*;

    async fn feed_of(data: &[&str]) -> String {
        let hub = Hub::new();
        for text in data {
            let published = hub.publish(NOTIFICATIONS, Event::text(*text)).await;
            published.unwrap_or_else(|e| panic!("{e}"));
        }
        let app = Route::new().at("/", notifications).data(hub);
        let response = TestClient::new(app).get("/").send().await;
        response.assert_status_is_ok();
        response
            .0
            .into_body()
            .into_string()
            .await
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_feed_shows_what_the_store_holds_newest_first() {
        let html = feed_of(&[
            r#""quoted""#,
            r#"{"text": "yo", "by": "me"}"#,
            "[1]",
            "plain",
        ])
        .await;
        let shown: Vec<&str> = html
            .split("<li value=")
            .skip(1)
            .filter_map(|li| li.split_once('>')?.1.split_once("</li>").map(|(t, _)| t))
            .collect();
        assert_eq!(shown, ["plain", "[1]", "yo", "quoted"]);
    }

    #[tokio::test]
    async fn a_page_whose_state_can_not_be_read_is_a_503_with_the_reason() {
        let hub = Hub::builder().max_channels(0).build();
        let app = Route::new()
            .at("/", dashboard)
            .at("/hub", hub_page)
            .at("/notifications", notifications)
            .data(hub);
        let client = TestClient::new(app);
        for path in ["/", "/hub", "/notifications"] {
            let response = client.get(path).send().await;
            response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
            response.assert_header_exist(poem::http::header::RETRY_AFTER);
            let body = response
                .0
                .into_body()
                .into_string()
                .await
                .unwrap_or_default();
            assert!(body.contains("reading channel"), "{path}: {body}");
        }
    }
}
