//! Property tests: what is published comes back exactly; no name or id can forge an event.

use futures_util::StreamExt;
use poem_sse_ext::{Event, Hub};
use proptest::prelude::*;
use testkit::parse_all;

/// Publishes `events` through a hub and reads back the exact bytes a stream would send.
fn wire_of(events: &[Event]) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let hub = Hub::builder().history(events.len() + 1).build();
        let mut sub = hub.subscribe("p", None).await.expect("subscribe");
        for event in events {
            hub.publish("p", event.clone()).await.expect("publish");
        }
        let mut wire = Vec::new();
        while let Some(Some(chunk)) = futures_util::FutureExt::now_or_never(sub.next()) {
            wire.extend_from_slice(&chunk);
        }
        String::from_utf8(wire).expect("frames are UTF-8")
    })
}

fn lf_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_data_round_trips_through_publish_and_the_wire(
        data in prop::collection::vec(any::<String>(), 1..5),
        crlf in prop::collection::vec("[\r\n]{0,3}[^\r\n]{0,5}", 0..4),
    ) {
        let mut all = data;
        all.push(crlf.concat());
        let events: Vec<Event> = all.iter().map(|d| Event::text(d.as_str())).collect();
        let (parsed, _) = parse_all(&wire_of(&events));
        let got: Vec<&str> = parsed.iter().map(|e| e.data.as_str()).collect();
        // EventSource hands line breaks to scripts as LF, whichever of CR, LF or CRLF was sent.
        let expected: Vec<String> = all.iter().map(|d| lf_line_breaks(d)).collect();
        prop_assert_eq!(got, expected.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert!(parsed.iter().all(|e| e.event_type == "message"));
    }

    #[test]
    fn no_event_name_or_id_can_forge_a_second_event(
        name in "(event|id|data|retry|:| |\r|\n|x|\0|é){0,12}",
        id in "(event|id|data|retry|:| |\r|\n|7|\0|é){0,12}",
        data in any::<String>(),
    ) {
        let built = Event::text(data.clone())
            .event(name.clone())
            .and_then(|event| event.id(id.clone()));
        match built {
            Err(_) => {
                prop_assert!(
                    name.is_empty() || name.contains(['\r', '\n']) || id.contains(['\r', '\n', '\0'])
                );
            }
            Ok(event) => {
                let wire = String::from_utf8(event.encode().to_vec()).expect("utf-8");
                let (parsed, retry) = parse_all(&wire);
                prop_assert_eq!(parsed.len(), 1, "{:?}", wire);
                prop_assert_eq!(&parsed[0].event_type, &name);
                prop_assert_eq!(&parsed[0].last_event_id, &id);
                prop_assert_eq!(&parsed[0].data, &data);
                prop_assert_eq!(retry, None);
            }
        }
    }
}
