//! The hub's own rules: bad input, one registry.

use crate::{hub::registry::ChannelError, Event, Hub, PublishError, ReadError, SubscribeError};

#[tokio::test]
async fn publish_rejects_bad_input_and_keeps_what_is_stored() {
    let hub = Hub::new();
    let first = hub.publish("a", Event::text("1")).await;
    assert!(first.is_ok());
    assert_eq!(
        hub.publish("a/b", Event::text("x")).await,
        Err(PublishError::Channel(ChannelError::invalid("a/b")))
    );
    let with_id = Event::text("x").id("mine").unwrap_or_default();
    assert_eq!(
        hub.publish("a", with_id).await,
        Err(PublishError::HasId("mine".into()))
    );
    assert_eq!(hub.head("a").await.ok(), first.ok());
    assert_eq!(hub.metrics().total.published, 1);
}

#[tokio::test]
async fn one_registry_one_cap_one_error() {
    let hub = Hub::builder().max_channels(1).build();
    assert!(hub.publish("a", Event::text("1")).await.is_ok());
    let refused = crate::hub::registry::TooManyChannels {
        channel: "b".into(),
        limit: 1,
    };
    assert_eq!(
        hub.publish("b", Event::text("1")).await,
        Err(PublishError::TooManyChannels(refused.clone()))
    );
    assert_eq!(
        hub.subscribe("b", None).await.err(),
        Some(SubscribeError::from(refused.clone()))
    );
    assert_eq!(
        hub.head("b").await,
        Err(ReadError::TooManyChannels(refused))
    );
    let refusal = hub.subscribe("c", None).await.err();
    assert_eq!(
        refusal.as_ref().and_then(SubscribeError::reason),
        Some(crate::hub::RefusalReason::MaxChannels)
    );
    assert!(refusal.is_some_and(|r| r.to_string().contains("channel `c`")));
    assert!(hub.subscribe("a", None).await.is_ok());
}
