//! The crate's errors answer for themselves in a poem handler: the README's publish line, with
//! `?` on every step, inside a `#[handler]` returning `poem::Result`.

use poem::{
    handler,
    http::{header, StatusCode},
    test::TestClient,
    web::{Data, Json, Path},
    EndpointExt, Route,
};
use poem_sse_ext::{Event, Hub};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Tick {
    eur: f64,
}

#[handler]
async fn publish(
    Data(hub): Data<&Hub>,
    Path((channel, name)): Path<(String, String)>,
    Json(tick): Json<Tick>,
) -> poem::Result<String> {
    let id = hub
        .publish(&channel, Event::json(&tick)?.event(name)?)
        .await?;
    Ok(id.to_string())
}

#[handler]
async fn recent(Data(hub): Data<&Hub>, Path(channel): Path<String>) -> poem::Result<Json<usize>> {
    Ok(Json(hub.recent(&channel, 10).await?.events.len()))
}

fn app(hub: &Hub) -> TestClient<impl poem::Endpoint> {
    TestClient::new(
        Route::new()
            .at("/publish/:channel/:name", poem::post(publish))
            .at("/recent/:channel", poem::get(recent))
            .data(hub.clone()),
    )
}

#[tokio::test]
async fn each_failure_is_the_status_a_handler_would_choose_with_its_message() {
    let hub = Hub::new();
    let client = app(&hub);
    let tick = Tick { eur: 1.08 };

    let ok = client
        .post("/publish/prices/tick")
        .body_json(&tick)
        .send()
        .await;
    ok.assert_status_is_ok();
    let id = ok.0.into_body().into_string().await.expect("body");
    assert_eq!(hub.head("prices").await.map(|h| h.to_string()), Ok(id));

    let bad_event = client
        .post("/publish/prices/sse-x")
        .body_json(&tick)
        .send()
        .await;
    bad_event.assert_status(StatusCode::BAD_REQUEST);
    bad_event
        .assert_text(
            "event name `sse-x` is reserved: names starting with `sse-` are the hub's own signals",
        )
        .await;

    let bad_channel = client
        .post("/publish/bad!name/tick")
        .body_json(&tick)
        .send()
        .await;
    bad_channel.assert_status(StatusCode::NOT_FOUND);
    let read = client.get("/recent/bad!name").send().await;
    read.assert_status(StatusCode::NOT_FOUND);

    hub.shutdown();
    let down = client
        .post("/publish/prices/tick")
        .body_json(&tick)
        .send()
        .await;
    down.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    down.assert_header(header::RETRY_AFTER, "2");
    assert_eq!(
        hub.recent("prices", 10).await.map(|r| r.events.len()),
        Ok(1)
    );
}

#[tokio::test]
async fn a_full_hub_and_a_store_timeout_are_temporary_with_retry_after() {
    use poem::error::ResponseError;
    use poem_sse_ext::{store::StoreError, PublishError};

    let hub = Hub::builder().max_channels(1).build();
    let client = app(&hub);
    let tick = Tick { eur: 1.0 };
    client
        .post("/publish/a/tick")
        .body_json(&tick)
        .send()
        .await
        .assert_status_is_ok();
    let full = client.post("/publish/b/tick").body_json(&tick).send().await;
    full.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    full.assert_header(header::RETRY_AFTER, "2");

    let timeout = PublishError::Store(StoreError::Timeout {
        operation: "append",
        timeout: std::time::Duration::from_secs(1),
    });
    assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    let answer = timeout.as_response();
    assert_eq!(
        answer
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
}
