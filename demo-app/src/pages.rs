//! The server-rendered pages and the client script they embed.
//!
//! Each page is rendered with its channels' state and embeds that state, with the id it
//! corresponds to, as JSON; `client.js` connects each widget's `EventSource` with
//! `?lastEventId=<that id>`.

use askama::Template;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Html},
    IntoResponse, Response,
};
use serde_json::Value;

use crate::{api, live::Live, widgets};

/// A dashboard widget as the template shows it.
struct WidgetView {
    channel: &'static str,
    title: &'static str,
    text: String,
    legend: String,
    max: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    widgets: Vec<WidgetView>,
}

/// A notification as the feed shows it.
struct FeedItemView {
    id: String,
    text: String,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    channel: &'static str,
    items: Vec<FeedItemView>,
}

/// One channel's row on the hub page.
struct HubChannelView {
    name: String,
    open_streams: String,
    published: String,
    head: String,
}

#[derive(Template)]
#[template(path = "hub.html")]
struct HubPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    channel: &'static str,
    stats: Vec<(&'static str, &'static str, String)>,
    channels: Vec<HubChannelView>,
}

/// `GET /`: the system dashboard.
#[handler]
pub async fn dashboard(Data(live): Data<&Live>) -> Response {
    let state = match api::state_json(live, "dashboard").await {
        Ok(state) => state,
        Err(err) => return poem::error::ResponseError::as_response(&err),
    };
    let widgets = widgets::DASHBOARD
        .iter()
        .map(|w| {
            let last = last_data(&state, w.channel);
            WidgetView {
                channel: w.channel,
                title: w.title,
                text: last
                    .and_then(|d| d["text"].as_str())
                    .unwrap_or("waiting for the first sample")
                    .to_owned(),
                legend: if w.series.is_empty() {
                    "one line per core".to_owned()
                } else {
                    w.series.join(" · ")
                },
                max: w.max.map(|m| m.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    render(DashboardPage {
        page: "dashboard",
        title: "System",
        state_json: embed(&state),
        widgets,
    })
}

/// `GET /notifications`: the live feed and a form to post to it.
#[handler]
pub async fn notifications(Data(live): Data<&Live>) -> Response {
    let state = match api::state_json(live, "notifications").await {
        Ok(state) => state,
        Err(err) => return poem::error::ResponseError::as_response(&err),
    };
    let items = state["channels"][widgets::NOTIFICATIONS]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .rev()
                .map(|item| FeedItemView {
                    id: item["id"].as_str().unwrap_or_default().to_owned(),
                    text: notification_text(&item["data"]),
                })
                .collect()
        })
        .unwrap_or_default();
    render(NotificationsPage {
        page: "notifications",
        title: "Notifications",
        state_json: embed(&state),
        channel: widgets::NOTIFICATIONS,
        items,
    })
}

/// `GET /hub`: the hub's own metrics.
#[handler]
pub async fn hub(Data(live): Data<&Live>) -> Response {
    let state = match api::state_json(live, "hub").await {
        Ok(state) => state,
        Err(err) => return poem::error::ResponseError::as_response(&err),
    };
    let null = Value::Null;
    let last = last_data(&state, widgets::HUB).unwrap_or(&null);
    let figure = |key: &str| match &last[key] {
        Value::Null => "–".to_owned(),
        value => value.to_string(),
    };
    let stats = [
        ("open_streams", "open streams"),
        ("events_per_sec", "events / s"),
        ("published", "published"),
        ("delivered", "delivered"),
        ("replayed", "replayed"),
        ("resets", "resets"),
        ("rejected", "rejected"),
    ]
    .into_iter()
    .map(|(key, label)| (key, label, figure(key)))
    .collect();
    let channels = last["channels"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| HubChannelView {
                    name: row["name"].as_str().unwrap_or_default().to_owned(),
                    open_streams: row["open_streams"].to_string(),
                    published: row["published"].to_string(),
                    head: row["head"].as_str().unwrap_or("–").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    render(HubPage {
        page: "hub",
        title: "Hub",
        state_json: embed(&state),
        channel: widgets::HUB,
        stats,
        channels,
    })
}

/// `GET /assets/client.js`: the one client script, dependency-free.
#[handler]
pub fn client_js() -> Response {
    asset(
        include_str!("../assets/client.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /assets/style.css`.
#[handler]
pub fn style_css() -> Response {
    asset(
        include_str!("../assets/style.css"),
        "text/css; charset=utf-8",
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

fn render(page: impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(%err, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed").into_response()
        }
    }
}

/// The data of the newest item of `channel` in a page state.
fn last_data<'a>(state: &'a Value, channel: &str) -> Option<&'a Value> {
    state["channels"][channel]["items"]
        .as_array()?
        .last()
        .map(|item| &item["data"])
}

/// What the feed shows for a notification's data: its `text` field, the text itself, or JSON.
fn notification_text(data: &Value) -> String {
    match data {
        Value::String(text) => text.clone(),
        Value::Object(fields) => match fields.get("text") {
            Some(Value::String(text)) => text.clone(),
            _ => data.to_string(),
        },
        other => other.to_string(),
    }
}

/// JSON safe to place inside `<script type="application/json">`: no `<` can end the element.
fn embed(state: &Value) -> String {
    state.to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_can_not_close_the_script() {
        let state = serde_json::json!({ "x": "</script><script>alert(1)</script>" });
        let embedded = embed(&state);
        assert!(!embedded.contains('<'));
        assert_eq!(
            serde_json::from_str::<Value>(&embedded).unwrap_or_default(),
            state
        );
    }

    #[test]
    fn notification_texts() {
        assert_eq!(notification_text(&serde_json::json!("hi")), "hi");
        assert_eq!(notification_text(&serde_json::json!({"text": "yo"})), "yo");
        assert_eq!(notification_text(&serde_json::json!([1])), "[1]");
    }
}
