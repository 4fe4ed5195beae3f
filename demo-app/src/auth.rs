//! Sign-in and the private page: `POST /login` (a user name, no password), `POST /logout`,
//! `POST /session/renew` (a fresh cookie for a session whose signature holds and that ended less
//! than a session length ago), and `GET /me`, the user's own `user.<name>` feed.

use std::time::SystemTime;

use askama::Template;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Form, Html},
    IntoResponse, Request, Response,
};
use poem_sse_ext::Hub;
use serde::Deserialize;

use crate::{
    pages::{feed_view, FeedItemView},
    session::{SessionError, Sessions, USER_PREFIX},
    state::ChannelState,
};

/// Notifications shown on `/me` when it is rendered.
const ME_ITEMS: usize = 50;

/// Notifications the open page keeps as more arrive.
const ME_KEEP: usize = 500;

/// The login form.
#[derive(Debug, Deserialize)]
pub struct Login {
    /// Absent counts as empty: the form comes back saying what a name is.
    #[serde(default)]
    user: String,
}

#[derive(Template)]
#[template(path = "me.html")]
struct MePage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    user: String,
    channel: String,
    keep: usize,
    items: Vec<FeedItemView>,
    digits: usize,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    /// The name typed, when the form comes back refused.
    user: String,
    /// Why the name was refused.
    error: Option<String>,
}

impl LoginPage {
    fn new(user: String, error: Option<String>) -> Self {
        Self {
            page: "login",
            title: "Sign in",
            state_json: "{}".to_owned(),
            user,
            error,
        }
    }
}

fn refusal(status: StatusCode, message: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(message.into())
}

fn see_other(to: &str, cookie: String) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(header::SET_COOKIE, cookie)
        .finish()
}

/// `POST /login` (form `user=<name>`): signs in, `303` to `/me`; for an invalid name, `400`
/// with the form again, the name and the reason in it.
#[handler]
pub fn login(Data(sessions): Data<&Sessions>, Form(form): Form<Login>) -> Response {
    match sessions.issue(&form.user, SystemTime::now()) {
        Ok(cookie) => see_other("/me", cookie),
        Err(err) => {
            let form = page(LoginPage::new(form.user, Some(err.to_string())));
            (StatusCode::BAD_REQUEST, form).into_response()
        }
    }
}

/// `POST /logout`: clears the cookie, `303` to `/login`.
#[handler]
pub fn logout(Data(sessions): Data<&Sessions>) -> Response {
    see_other("/login", sessions.clear())
}

/// `POST /session/renew`: `204` with a fresh cookie; `401` with the reason otherwise.
#[handler]
pub fn renew(req: &Request, Data(sessions): Data<&Sessions>) -> Response {
    let now = SystemTime::now();
    let renewed = sessions.signed(req).and_then(|session| {
        // A session that ended within the last session length may be renewed: the page renews
        // when its stream ends at the expiry, so the cookie is just past it then.
        if session.expires + sessions.ttl() < now {
            return Err(SessionError::Expired);
        }
        sessions.issue(&session.user, now)
    });
    match renewed {
        Ok(cookie) => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::SET_COOKIE, cookie)
            .finish(),
        Err(err) => refusal(StatusCode::UNAUTHORIZED, err.to_string()),
    }
}

/// `GET /login`: the sign-in form.
#[handler]
pub fn login_page() -> Response {
    page(LoginPage::new(String::new(), None))
}

/// `GET /me`: the signed-in user's own feed; `303` to `/login` when not signed in.
#[handler]
pub async fn me(req: &Request, Data(sessions): Data<&Sessions>, Data(hub): Data<&Hub>) -> Response {
    let session = match sessions.verify(req, SystemTime::now()) {
        Ok(session) => session,
        Err(_) => {
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, "/login")
                .finish()
        }
    };
    let channel = format!("{USER_PREFIX}{}", session.user);
    let feed = match ChannelState::read(hub, &channel, ME_ITEMS).await {
        Ok(feed) => feed,
        Err(err) => return refusal(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    };
    let (items, digits) = feed_view(&feed);
    // The state `me.js` starts from, as `/api/state/{page}` answers a channel's, with its name.
    let state = serde_json::json!({ "channel": channel, "id": feed.id, "items": feed.items });
    page(MePage {
        page: "me",
        title: "Me",
        // JSON safe inside `<script type="application/json">` (see `PageState::embedded`).
        state_json: state.to_string().replace('<', "\\u003c"),
        user: session.user,
        channel,
        keep: ME_KEEP,
        items,
        digits,
    })
}

fn page(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(%err, "rendering a page failed");
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the page failed",
            )
        }
    }
}
