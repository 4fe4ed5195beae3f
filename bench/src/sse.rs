//! A compact, incremental `text/event-stream` parser that follows the WHATWG HTML
//! "server-sent events" interpretation rules.
//!
//! The load generator feeds it body chunks exactly as hyper hands them over, so a line, a
//! `CRLF` pair or a UTF-8 sequence may be split across chunks. Dispatch happens on the blank
//! line that ends an event; an event without `data` is not dispatched (as in a browser).
//!
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>

/// One dispatched event, as the parser hands it over: borrowed from the parser's buffers, so
/// that reading an event allocates nothing (the load generator must not be the bottleneck of
/// what it measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The event type; `message` when the stream gave none.
    pub event_type: &'a str,
    /// The data buffer with its last line feed removed.
    pub data: &'a str,
    /// The last event id seen so far on the stream (it persists across events).
    pub last_event_id: &'a str,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_event(self) -> Event {
        Event {
            event_type: self.event_type.to_owned(),
            data: self.data.to_owned(),
            last_event_id: self.last_event_id.to_owned(),
        }
    }
}

/// One dispatched event, owned, as an `EventSource` would fire it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type; `message` when the stream gave none.
    pub event_type: String,
    /// The data buffer with its last line feed removed.
    pub data: String,
    /// The last event id seen so far on the stream (it persists across events).
    pub last_event_id: String,
}

/// Incremental parser state for one stream.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF at the start of the next one belongs to it.
    pending_cr: bool,
    /// Whether the stream's first bytes (and a possible BOM) were seen.
    started: bool,
    data: String,
    event_type: String,
    last_event_id: String,
    /// Last accepted `retry:` value in milliseconds.
    pub retry: Option<u64>,
    /// Comment lines seen (heartbeats).
    pub comments: u64,
}

impl Parser {
    /// A parser for a fresh stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk of the body and calls `on_event` for every event it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(EventRef<'_>)) {
        if !self.started {
            // A UTF-8 BOM is only skipped at the very start of the stream; it may arrive split.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let need = BOM.len() - have;
            let take = need.min(chunk.len());
            if BOM[have..have + take] == chunk[..take] {
                self.line.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.line.len() < BOM.len() {
                    return;
                }
                self.line.clear();
            }
            // Not a BOM after all: the bytes kept so far are line content.
            self.started = true;
        }
        if self.pending_cr {
            self.pending_cr = false;
            if let [b'\n', rest @ ..] = chunk {
                chunk = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            let line = &chunk[..pos];
            let was_cr = chunk[pos] == b'\r';
            chunk = &chunk[pos + 1..];
            if was_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            if self.line.is_empty() {
                // A whole line inside this chunk is read where it is, not copied.
                self.process_line(line, &mut on_event);
            } else {
                self.line.extend_from_slice(line);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, &mut on_event);
                self.line = line;
                self.line.clear();
            }
        }
        self.line.extend_from_slice(chunk);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(EventRef<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.event_type.clear();
                push_lossy(&mut self.event_type, value);
            }
            b"data" => {
                push_lossy(&mut self.data, value);
                self.data.push('\n');
            }
            b"id" if !value.contains(&0) => {
                self.last_event_id.clear();
                push_lossy(&mut self.last_event_id, value);
            }
            // Digits only, so parsing can only fail on overflow: the field is ignored then.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Some(ms) = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(EventRef<'_>)) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event_type = match self.event_type.as_str() {
            "" => "message",
            t => t,
        };
        on_event(EventRef {
            event_type,
            data: &self.data,
            last_event_id: &self.last_event_id,
        });
        // The buffers stay, with their capacity, for the next event.
        self.data.clear();
        self.event_type.clear();
    }
}

/// Appends `bytes` decoded as UTF-8, invalid sequences replaced by U+FFFD (as a browser decodes a
/// stream). Valid text, the usual case, takes the fast validation path.
fn push_lossy(dst: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => dst.push_str(text),
        Err(_) => dst.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            parser.feed(c, |e| out.push(e.to_event()));
        }
        (out, parser)
    }

    fn ev(t: &str, d: &str, id: &str) -> Event {
        Event {
            event_type: t.into(),
            data: d.into(),
            last_event_id: id.into(),
        }
    }

    #[test]
    fn data_lines_join_with_lf_and_the_last_lf_is_dropped() {
        let (events, _) = parse_chunks(&[b"data: a\ndata:b\ndata\n\n"]);
        assert_eq!(events, vec![ev("message", "a\nb\n", "")]);
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines_even_split_across_chunks() {
        let whole: &[u8] = b"id: 1\r\ndata: x\r\rdata: y\n\nevent: t\rdata: z\r\n\r\n";
        let (expected, _) = parse_chunks(&[whole]);
        assert_eq!(
            expected,
            vec![
                ev("message", "x", "1"),
                ev("message", "y", "1"),
                ev("t", "z", "1")
            ]
        );
        for split in 0..whole.len() {
            let (events, _) = parse_chunks(&[&whole[..split], &whole[split..]]);
            assert_eq!(events, expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes).0, expected);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_and_split_characters_survive() {
        let (events, _) = parse_chunks(&[b"data: a\xFFb\n\n"]);
        assert_eq!(events, vec![ev("message", "a\u{FFFD}b", "")]);
        // "é" is two bytes; a chunk boundary between them is not an invalid sequence.
        let (events, _) = parse_chunks(&[b"id: \xC3", b"\xA9\ndata: \xC3", b"\xA9\n\n"]);
        assert_eq!(events, vec![ev("message", "\u{E9}", "\u{E9}")]);
    }

    #[test]
    fn bom_is_skipped_once_even_when_split() {
        let (events, _) = parse_chunks(&[b"\xEF", b"\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n"]);
        assert_eq!(events, vec![ev("message", "a", "")]);
    }

    #[test]
    fn comments_retry_and_ids_follow_the_rules() {
        let (events, parser) = parse_chunks(&[
            b": hb\n\nretry: 1500\nretry: 1x\nid: a\0b\nid: 7\ndata:  two spaces\n\nid\ndata: n\n\n",
        ]);
        assert_eq!(
            events,
            vec![ev("message", " two spaces", "7"), ev("message", "n", "")]
        );
        assert_eq!(parser.retry, Some(1500));
        assert_eq!(parser.comments, 1);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_type_resets() {
        let (events, _) = parse_chunks(&[b"event: x\n\ndata: d\n\n"]);
        assert_eq!(events, vec![ev("message", "d", "")]);
    }

    #[test]
    fn an_unterminated_event_at_eof_is_not_dispatched() {
        let (events, _) = parse_chunks(&[b"data: a\n"]);
        assert!(events.is_empty());
    }

    /// Runs the conformance vectors kept in the repository (testkit/tests/data); every wire text
    /// is also fed one byte at a time.
    #[test]
    fn conformance_vectors() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testkit/tests/data/sse-vectors.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let vectors: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
        let vectors = vectors.as_array().expect("vectors are an array");
        assert!(!vectors.is_empty());
        for v in vectors {
            let name = v["name"].as_str().unwrap_or("?");
            let wire = v["wire"].as_str().expect("wire is a string").as_bytes();
            let expected: Vec<Event> = v["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| {
                    ev(
                        e["type"].as_str().expect("type"),
                        e["data"].as_str().expect("data"),
                        e["lastEventId"].as_str().expect("lastEventId"),
                    )
                })
                .collect();
            let (whole, parser) = parse_chunks(&[wire]);
            assert_eq!(whole, expected, "vector {name}");
            assert_eq!(parser.retry, v["retry"].as_u64(), "vector {name} retry");
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            assert_eq!(parse_chunks(&bytes).0, expected, "vector {name} bytewise");
        }
    }
}
