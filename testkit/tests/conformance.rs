//! Runs the conformance vectors (`tests/data/sse-vectors.json`) through the parser, feeding each
//! wire text whole, byte by byte, and in random splits.
//!
//! The vectors are test data of this repository; `tests/data/make_vectors.py` writes them (run it
//! in `tests/data/`).

use std::path::PathBuf;

use serde::Deserialize;
use testkit::parser::{parse_all, ParsedEvent, Parser};

/// Random splits tried per vector; the seeds are fixed so a failure reproduces.
const RANDOM_SPLITS: u64 = 200;

#[derive(Debug, Deserialize)]
struct Vector {
    name: String,
    wire: String,
    events: Vec<ExpectedEvent>,
    retry: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ExpectedEvent {
    #[serde(rename = "type")]
    event_type: String,
    data: String,
    #[serde(rename = "lastEventId")]
    last_event_id: String,
}

impl From<&ExpectedEvent> for ParsedEvent {
    fn from(event: &ExpectedEvent) -> Self {
        ParsedEvent::new(&event.event_type, &event.data, &event.last_event_id)
    }
}

/// The vectors, inside the repository so that every clone runs this test.
fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sse-vectors.json")
}

fn load_vectors() -> Vec<Vector> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "can not read the conformance vectors at {}: {error}; regenerate them with \
             `python3 make_vectors.py` in testkit/tests/data/",
            path.display()
        )
    });
    let vectors: Vec<Vector> = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not a vector list: {error}", path.display()));
    assert!(!vectors.is_empty(), "{} has no vectors", path.display());
    vectors
}

/// Feeds `chunks` in order, then ends the stream.
fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<ParsedEvent>, Option<u64>) {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.feed(chunk));
    }
    parser.finish();
    (events, parser.retry())
}

/// SplitMix64: a tiny seeded generator, enough to pick split points.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Cuts `bytes` into chunks of random lengths (including empty ones).
fn random_split(bytes: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut rng = SplitMix(seed);
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = rng.below(rest.len().min(8) + 1);
        let (chunk, tail) = rest.split_at(len);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[test]
fn every_vector_whole_byte_by_byte_and_in_random_splits() {
    let vectors = load_vectors();
    let mut failures = Vec::new();
    for vector in &vectors {
        let expected: Vec<ParsedEvent> = vector.events.iter().map(ParsedEvent::from).collect();
        let expected = (expected, vector.retry);
        let wire = vector.wire.as_bytes();

        let mut check = |how: String, actual: (Vec<ParsedEvent>, Option<u64>)| {
            if actual != expected {
                failures.push(format!(
                    "{:?} fed {how}: expected {expected:?}, got {actual:?}",
                    vector.name
                ));
            }
        };
        check("with parse_all".into(), parse_all(&vector.wire));
        check("whole".into(), run([wire]));
        check("byte by byte".into(), run(wire.chunks(1)));
        for seed in 0..RANDOM_SPLITS {
            let chunks = random_split(wire, seed);
            let shown: Vec<String> = chunks
                .iter()
                .map(|chunk| format!("\"{}\"", chunk.escape_ascii()))
                .collect();
            let shown = shown.join(" ");
            check(format!("split as {shown} (seed {seed})"), run(chunks));
        }
    }
    assert!(
        failures.is_empty(),
        "{} feedings of the {} vectors failed; the first ones:\n{}",
        failures.len(),
        vectors.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

#[test]
fn every_vector_after_a_reconnect() {
    // A parser that already finished one stream parses the next one as a fresh parser does,
    // apart from the last event id, which carries over.
    for vector in load_vectors() {
        let expected: Vec<ParsedEvent> = vector.events.iter().map(ParsedEvent::from).collect();
        let mut parser = Parser::new();
        parser.feed(b"data: first stream\n\ndata: unterminated");
        parser.finish();
        let events = parser.feed(vector.wire.as_bytes());
        parser.finish();
        assert_eq!(events, expected, "{:?}", vector.name);
    }
}
