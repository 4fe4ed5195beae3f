//! The OpenAPI description against the wire's reserved names and the run module's frames.

use super::*;

#[test]
fn reserved_and_invalid_names_are_refused() {
    assert_eq!(
        EventStreamDoc::new().text_event("sse-reset").err(),
        Some(EventError::ReservedName("sse-reset".into()))
    );
    assert!(EventStreamDoc::new().text_event("a\nb").is_err());
    assert!(EventStreamDoc::new().text_event("open").is_err());
}

#[test]
fn other_events_exclude_every_known_name() {
    let doc = EventStreamDoc::new()
        .text_event("note")
        .unwrap_or_else(|e| panic!("{e}"))
        .other_events();
    let item = doc.item_schema();
    let entries = item["oneOf"].as_array().cloned().unwrap_or_default();
    let excluded = &entries[entries.len() - 1]["properties"]["event"]["not"]["enum"];
    assert_eq!(
        excluded,
        &json!([
            "message",
            "note",
            "sse-reset",
            "sse-busy",
            "sse-reauth",
            "sse-end"
        ])
    );
}

#[test]
fn every_reserved_event_a_follower_receives_is_described() {
    let item = EventStreamDoc::new().item_schema();
    let entries = item["oneOf"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["properties"]["event"]["const"].as_str())
        .collect();
    assert_eq!(names, [RESET_EVENT, BUSY_EVENT, REAUTH_EVENT, END_EVENT]);
    for name in &names {
        assert!(name.starts_with(crate::wire::RESERVED_PREFIX), "{name}");
    }
    // A run's end as the run module writes it matches its description.
    let end = &entries[3]["properties"]["data"]["contentSchema"];
    assert_eq!(
        end["properties"]["reason"]["enum"],
        json!(["done", "cancelled", "failed"])
    );
    let written = serde_json::to_value(crate::run::RunEnd {
        reason: EndReason::Cancelled,
        message: Some("stopped by a user".into()),
        expires_at: 1,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let fields: Vec<&String> = written
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .collect();
    for field in &fields {
        assert!(
            end["properties"].get(field.as_str()).is_some(),
            "{field} undescribed"
        );
    }
    for required in end["required"].as_array().into_iter().flatten() {
        assert!(
            written.get(required.as_str().unwrap_or("")).is_some(),
            "{required}"
        );
    }
}

#[test]
fn typed_data_is_json_content_with_the_types_schema() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Point {
        x: i32,
        at: Inner,
    }
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        label: String,
    }
    let item = EventStreamDoc::new().message::<Point>().item_schema();
    let data = &item["oneOf"][0]["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json");
    let schema = &data["contentSchema"];
    assert_eq!(schema["required"], json!(["x", "at"]));
    assert!(schema.get("$schema").is_none());
    // Inlined: the description is valid wherever it is put.
    assert_eq!(schema["properties"]["at"]["type"], "object");
    assert!(!schema.to_string().contains("$ref"));
}
