//! The generate page: a run that writes a long text token by token (the [`babble`] generator,
//! tens of tokens per second), followed live by any number of tabs, continued exactly after a
//! reload, and stopped only by its Stop button. The routes are in the demo's one table
//! (`main.rs`).
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /generate` | the form |
//! | `GET /generate/{id}` | the run's text so far and the id it corresponds to, then live; `404` unknown or expired |
//! | `POST /api/runs` | JSON `{"prompt"?, "tokens"?, "rate"?}` (or an AI SDK chat request: the last user message is the prompt) → `201 {"id", "events": "/runs/{id}/events", "streamUrl": "/v1/stream/runs/{id}"}`; `400` out of range, `503` too many runs |
//! | `GET /runs/{id}/events` | the run's SSE stream ([`Runs::endpoint`]) |
//! | `POST /api/runs/{id}/cancel` | `202 {"id", "reason"}`; `404` unknown or expired ([`Runs::cancel_endpoint`]) |
//! | `GET /v1/stream/runs/{id}` | the same run as a Durable Stream of AI SDK chunks ([`crate::run_stream`]) |

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use askama::Template;
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Html, Json, Path},
    Body, IntoResponse, Response,
};
use poem_sse_ext::{
    durable::DurableStreams,
    run::{EndReason, RunError, RunHandle, RunSnapshot, Runs},
    Event, Hub,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    babble,
    run_stream::{self, RunStream},
};

/// Most runs the demo holds at once (running, or ended and readable).
const MAX_RUNS: usize = 100;
/// How long an ended run stays readable.
const RUN_TTL: Duration = Duration::from_secs(600);

/// The demo's runs, on the hub's store (Redis under a prefix of their own), following the hub's
/// heartbeat, retry hint and shutdown.
///
/// # Errors
/// When the Redis store can not be set up.
pub fn runs(
    hub: &Hub,
    redis: Option<poem_sse_ext::store::RedisStoreBuilder>,
    heartbeat: Duration,
    retry: Duration,
) -> Result<Runs, String> {
    let builder = Runs::builder()
        .max_runs(MAX_RUNS)
        .max_events(20_000)
        .max_bytes(1 << 20)
        .max_duration(Some(Duration::from_secs(600)))
        .ttl(RUN_TTL)
        .hub(
            Hub::builder()
                .heartbeat(heartbeat)
                .retry(retry)
                .retry_jitter(retry),
        )
        .shutdown_with(hub.shutdown_token());
    let builder = match redis {
        None => builder,
        Some(redis) => {
            let store = redis
                .prefix("sse:runs")
                .retention(builder.retention())
                .connect_lazy()
                .map_err(|err| err.to_string())?;
            builder.store(store)
        }
    };
    Ok(builder.build())
}

/// The prompts of the newest runs, for their pages. The run's log holds its text alone (a
/// follower's events are the text, token by token), so the prompt is kept beside it, by the
/// instance that started the run: a run page served by another instance shows none.
#[derive(Debug, Clone, Default)]
pub struct Prompts(Arc<Mutex<VecDeque<(String, String)>>>);

impl Prompts {
    fn insert(&self, run: String, prompt: String) {
        let mut prompts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if prompts.len() >= 2 * MAX_RUNS {
            prompts.pop_front();
        }
        prompts.push_back((run, prompt));
    }

    fn of(&self, run: &str) -> Option<String> {
        let prompts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        prompts
            .iter()
            .find(|(id, _)| id == run)
            .map(|(_, p)| p.clone())
    }
}

/// What `POST /api/runs` takes; an empty body takes the defaults. The AI SDK transports post
/// a chat (`id`, `messages`, `trigger`, `messageId` and the caller's own fields): its last user
/// message's text is the prompt.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    /// The text's seed: the same prompt gives the same text.
    #[serde(default)]
    prompt: String,
    /// An AI SDK chat's messages.
    #[serde(default)]
    messages: Vec<ChatMessage>,
    /// An AI SDK chat's id, trigger and message id: accepted, not used.
    #[serde(default, rename = "id")]
    _chat: Option<serde_json::Value>,
    #[serde(default, rename = "trigger")]
    _trigger: Option<serde_json::Value>,
    #[serde(default, rename = "messageId")]
    _message: Option<serde_json::Value>,
    /// How many tokens (1 to 20,000; default 240).
    tokens: Option<usize>,
    /// Tokens per second (1 to 200; default 40).
    rate: Option<u32>,
}

/// One message of an AI SDK chat (`UIMessage`): only its role and text parts matter here.
#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    parts: Vec<serde_json::Value>,
}

impl StartRun {
    /// The prompt, or the text of the chat's last user message.
    fn prompt(&self) -> String {
        if !self.prompt.is_empty() {
            return self.prompt.clone();
        }
        let last_user = self.messages.iter().rev().find(|m| m.role == "user");
        last_user.map_or_else(String::new, |message| {
            message
                .parts
                .iter()
                .filter(|part| part["type"] == "text")
                .filter_map(|part| part["text"].as_str())
                .collect()
        })
    }
}

/// `POST /api/runs`: starts a run whose producer outlives this request, and its durable
/// stream.
#[handler]
pub async fn start_run(
    Data(runs): Data<&Runs>,
    Data(prompts): Data<&Prompts>,
    Data(streams): Data<&DurableStreams>,
    body: Body,
) -> Response {
    let bad_request = |message: String| {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
    };
    // An AI SDK chat posts its whole history; only the last user message is used.
    let request = match body.into_bytes_limit(64 << 10).await {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => StartRun::default(),
        Ok(bytes) => match serde_json::from_slice::<StartRun>(&bytes) {
            Ok(request) => request,
            Err(err) => return bad_request(format!("invalid JSON: {err}")),
        },
        Err(err) => return bad_request(err.to_string()),
    };
    let tokens = request.tokens.unwrap_or(240);
    let rate = request.rate.unwrap_or(40);
    let prompt = request.prompt();
    if !(1..=20_000).contains(&tokens) || !(1..=200).contains(&rate) || prompt.len() > 500 {
        return bad_request(
            "tokens must be 1 to 20000, rate 1 to 200 per second, prompt at most 500 bytes".into(),
        );
    }
    let run = match runs.start().await {
        Ok(run) => run,
        Err(err) => return error_response(&err),
    };
    let id = run.id().to_string();
    // Created before the answer, so that a client reading it at once finds it.
    let stream = match RunStream::create(streams, &id, RUN_TTL).await {
        Ok(stream) => stream,
        Err(err) => {
            let _ = run.fail(format!("its durable stream: {err}")).await;
            let body = json!({ "error": format!("the run's stream could not be created: {err}") });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    prompts.insert(id.clone(), prompt.clone());
    tokio::spawn(produce(run, stream, prompt, tokens, rate));
    let body = json!({
        "id": id,
        "events": format!("/runs/{id}/events"),
        "streamUrl": run_stream::path(&id),
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// Writes `tokens` tokens of the prompt's text at `rate` per second to the run and its
/// durable stream, unless it is cancelled.
async fn produce(run: RunHandle, mut stream: RunStream, prompt: String, tokens: usize, rate: u32) {
    let id = run.id().clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    for token in babble::tokens(&prompt).take(tokens) {
        tokio::select! {
            () = run.cancelled() => {
                tracing::info!(run = %id, "generate: producer stopped: the run was cancelled");
                stream.cancelled().await;
                return;
            }
            _ = tick.tick() => {}
        }
        if let Err(err) = run.append(Event::text(token.clone())).await {
            tracing::info!(run = %id, %err, "generate: producer stopped");
            stream.failed(&err.to_string()).await;
            return;
        }
        stream.token(&token).await;
    }
    match run.finish(EndReason::Done).await {
        Ok(_) => tracing::info!(run = %id, tokens, "generate: run done"),
        Err(err) => tracing::info!(run = %id, %err, "generate: run not finished"),
    }
    stream.done().await;
}

/// The run as the page shows it.
struct RunView {
    id: String,
    /// The prompt, when this instance started the run.
    prompt: Option<String>,
    text: String,
    status: String,
}

#[derive(Template)]
#[template(path = "generate.html")]
struct GeneratePage {
    page: &'static str,
    title: &'static str,
    state_json: String,
    run: Option<RunView>,
    error: Option<String>,
}

/// `GET /generate`: the form.
#[handler]
pub fn form_page() -> Response {
    render(StatusCode::OK, None, None)
}

/// `GET /generate/{id}`: the run's text so far, and the id it corresponds to for the page's
/// stream to resume after.
#[handler]
pub async fn run_page(
    Data(runs): Data<&Runs>,
    Data(prompts): Data<&Prompts>,
    Path(id): Path<String>,
) -> Response {
    match runs.snapshot(&id).await {
        Ok(snapshot) => {
            let prompt = prompts.of(&id);
            render(StatusCode::OK, Some((&snapshot, prompt)), None)
        }
        Err(err) => {
            let status = poem::error::ResponseError::status(&err);
            render(status, None, Some(err.to_string()))
        }
    }
}

fn render(
    status: StatusCode,
    run: Option<(&RunSnapshot, Option<String>)>,
    error: Option<String>,
) -> Response {
    let prompt = run.as_ref().and_then(|(_, prompt)| prompt.clone());
    let run = run.map(|(run, _)| run);
    let state = run.map(|run| {
        json!({
            "run": {
                "id": run.id,
                "events": format!("/runs/{}/events", run.id),
                "head": run.head,
                "text": run.text(),
                "prompt": prompt,
                "end": run.end,
            }
        })
    });
    let page = GeneratePage {
        page: "generate",
        title: "Generate",
        // JSON safe inside `<script type="application/json">`, as pages.rs embeds it.
        state_json: state
            .unwrap_or_else(|| json!({}))
            .to_string()
            .replace('<', "\\u003c"),
        run: run.map(|run| RunView {
            id: run.id.to_string(),
            prompt: prompt.clone(),
            text: run.text(),
            status: run
                .end
                .as_ref()
                .map_or("running".to_owned(), |end| end.reason.to_string()),
        }),
        error,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(%err, "rendering the generate page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed").into_response()
        }
    }
}

fn error_response(err: &RunError) -> Response {
    let status = poem::error::ResponseError::status(err);
    (status, Json(json!({ "error": err.to_string() }))).into_response()
}
