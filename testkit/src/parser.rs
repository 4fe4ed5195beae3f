//! An independent, incremental parser for `text/event-stream`.
//!
//! Written from the WHATWG HTML standard, section 9.2.6 "Interpreting an event stream"
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>),
//! and deliberately sharing no code with the `poem-sse-ext` encoder, so that tests can use it to
//! judge what the encoder puts on the wire. It behaves like the parser inside a browser's
//! `EventSource`: it reports the events that would be dispatched, with the `lastEventId` they
//! would carry, and the last reconnection time the stream set.
//!
//! ```
//! use testkit::parser::{ParsedEvent, Parser};
//!
//! let mut parser = Parser::new();
//! // Chunks may split a frame anywhere: inside a line, a CRLF or a UTF-8 sequence.
//! assert!(parser.feed(b"retry: 1500\r").is_empty());
//! assert!(parser.feed(b"\nid: 7\nevent: tick\ndata: caf\xC3").is_empty());
//! let events = parser.feed(b"\xA9\n\n: heartbeat\n");
//!
//! assert_eq!(events, vec![ParsedEvent::new("tick", "café", "7")]);
//! assert_eq!(parser.retry(), Some(1500));
//! assert_eq!(parser.last_event_id(), "7");
//! assert_eq!(parser.comments(), 1);
//! ```

use std::mem;

/// An event as a conforming `EventSource` dispatches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ParsedEvent {
    /// The event's type: the last `event:` field of its block, or `"message"` when there was none
    /// (or it was empty).
    pub event_type: String,
    /// The `data:` lines of the block joined with LF.
    pub data: String,
    /// The `lastEventId` of the dispatched event: the last valid `id:` field seen so far on the
    /// stream (ids persist across events until changed), or the empty string.
    pub last_event_id: String,
}

impl ParsedEvent {
    /// Builds an event, mainly to compare against in tests.
    pub fn new(
        event_type: impl Into<String>,
        data: impl Into<String>,
        last_event_id: impl Into<String>,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: last_event_id.into(),
        }
    }

    /// Deserializes the event's data as JSON.
    ///
    /// # Errors
    ///
    /// Returns the `serde_json` error when the data is not valid JSON for `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.data)
    }
}

/// An incremental event-stream parser: feed it bytes as they arrive, get the dispatched events.
///
/// One `Parser` models one `EventSource`: [`Parser::finish`] ends the current stream (as a
/// connection closing does) and readies the parser for the next one, keeping the last event id
/// and reconnection time, so a reconnect can be parsed with the same instance.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    /// Bytes at the end of the previous chunk that begin a UTF-8 sequence not yet complete.
    partial_utf8: Vec<u8>,
    /// Whether the start of the stream has been decoded (a leading BOM is only skipped there).
    started: bool,
    /// The previous line ended with CR: an LF right after it belongs to the same line break.
    after_cr: bool,
    /// The current line, not yet terminated.
    line: String,
    data: String,
    event_type: String,
    /// The spec's "last event ID buffer": set by `id:` fields, copied out on dispatch.
    id_buffer: String,
    /// The `EventSource`'s "last event ID string".
    last_event_id: String,
    retry: Option<u64>,
    comments: u64,
}

impl Parser {
    /// A parser at the start of a stream, with no last event id and no reconnection time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the next chunk of the stream and returns the events it completes, in order.
    ///
    /// The chunk may end anywhere; whatever it leaves incomplete (a line, an event, a UTF-8
    /// sequence, a CRLF pair) is kept for the next call. Invalid UTF-8 becomes U+FFFD as the
    /// WHATWG "UTF-8 decode" algorithm specifies.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<ParsedEvent> {
        let mut events = Vec::new();
        if self.partial_utf8.is_empty() {
            self.decode(chunk, &mut events);
        } else {
            let mut bytes = mem::take(&mut self.partial_utf8);
            bytes.extend_from_slice(chunk);
            self.decode(&bytes, &mut events);
        }
        events
    }

    /// Ends the current stream, as when the connection closes.
    ///
    /// Per the spec, a final event that was not terminated by a blank line is discarded, and
    /// so is a final line without a line ending. The last event id and reconnection time are
    /// kept, and the parser is ready to parse the stream of a reconnection (whose leading BOM is
    /// skipped again). Returns whether anything incomplete was discarded.
    pub fn finish(&mut self) -> bool {
        let discarded = !self.partial_utf8.is_empty()
            || !self.line.is_empty()
            || !self.data.is_empty()
            || !self.event_type.is_empty()
            || self.id_buffer != self.last_event_id;
        self.partial_utf8.clear();
        self.started = false;
        self.after_cr = false;
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        // Browsers start a reconnection's parse from the id the EventSource holds.
        self.id_buffer.clone_from(&self.last_event_id);
        discarded
    }

    /// The last reconnection time (the `retry:` field, in milliseconds) that was accepted, if any.
    ///
    /// A `retry:` field takes effect as soon as its line is parsed, not when its block ends.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The `EventSource`'s last event id: what it would send as `Last-Event-ID` on reconnect.
    ///
    /// It is updated when a block ends (even a block without data), not on the `id:` line itself.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// How many comment lines (lines starting with `:`, such as heartbeats) have been parsed.
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Decodes `bytes` as UTF-8, keeping an incomplete sequence at the end for the next chunk.
    fn decode(&mut self, mut bytes: &[u8], events: &mut Vec<ParsedEvent>) {
        loop {
            match std::str::from_utf8(bytes) {
                Ok(text) => {
                    self.text(text, events);
                    return;
                }
                Err(error) => {
                    let (valid, rest) = bytes.split_at(error.valid_up_to());
                    // `valid_up_to` guarantees this prefix is valid UTF-8.
                    self.text(std::str::from_utf8(valid).unwrap_or_default(), events);
                    match error.error_len() {
                        // The input ends inside a sequence that may still be completed.
                        None => {
                            self.partial_utf8.extend_from_slice(rest);
                            return;
                        }
                        // `error_len` is the "maximal subpart" that the Encoding standard
                        // replaces with a single U+FFFD.
                        Some(len) => {
                            self.text("\u{FFFD}", events);
                            bytes = &rest[len..];
                        }
                    }
                }
            }
        }
    }

    /// Splits decoded text into lines; CRLF, LF and CR each end a line.
    fn text(&mut self, mut text: &str, events: &mut Vec<ParsedEvent>) {
        if text.is_empty() {
            return;
        }
        if !self.started {
            self.started = true;
            text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        }
        if self.after_cr {
            self.after_cr = false;
            text = text.strip_prefix('\n').unwrap_or(text);
        }
        while let Some(end) = text.find(['\r', '\n']) {
            self.line.push_str(&text[..end]);
            let ended_with_cr = text.as_bytes()[end] == b'\r';
            text = &text[end + 1..];
            if ended_with_cr {
                match text.strip_prefix('\n') {
                    Some(after_lf) => text = after_lf,
                    // The LF of a CRLF may come in the next chunk.
                    None => self.after_cr = text.is_empty(),
                }
            }
            let line = mem::take(&mut self.line);
            self.process_line(&line, events);
            // Hand the allocation back for the next line.
            self.line = line;
            self.line.clear();
        }
        self.line.push_str(text);
    }

    fn process_line(&mut self, line: &str, events: &mut Vec<ParsedEvent>) {
        if line.is_empty() {
            self.dispatch(events);
        } else if line.starts_with(':') {
            self.comments += 1;
        } else if let Some((field, value)) = line.split_once(':') {
            self.process_field(field, value.strip_prefix(' ').unwrap_or(value));
        } else {
            self.process_field(line, "");
        }
    }

    fn process_field(&mut self, field: &str, value: &str) {
        match field {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id with NUL is ignored, so it can not end up in a `Last-Event-ID` header.
            "id" if !value.contains('\0') => value.clone_into(&mut self.id_buffer),
            // Only ASCII digits are accepted (no sign, no unit, not empty). A value too large
            // for u64 is ignored too: no realistic stream sends one.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(millis) = value.parse() {
                    self.retry = Some(millis);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<ParsedEvent>) {
        self.last_event_id.clone_from(&self.id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = match mem::take(&mut self.event_type) {
            empty if empty.is_empty() => "message".to_owned(),
            event_type => event_type,
        };
        events.push(ParsedEvent {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
        });
    }
}

/// Parses a whole stream at once: the dispatched events and the last accepted `retry:`.
///
/// An unterminated final event is discarded, as at the end of a connection.
pub fn parse_all(wire: &str) -> (Vec<ParsedEvent>, Option<u64>) {
    let mut parser = Parser::new();
    let events = parser.feed(wire.as_bytes());
    parser.finish();
    (events, parser.retry())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &str, id: &str) -> ParsedEvent {
        ParsedEvent::new("message", data, id)
    }

    /// Feeds `wire` split at every single position and at every pair of positions.
    fn assert_all_splits(wire: &[u8], expected: &[ParsedEvent]) {
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let mut parser = Parser::new();
                let mut events = parser.feed(&wire[..i]);
                events.extend(parser.feed(&wire[i..j]));
                events.extend(parser.feed(&wire[j..]));
                parser.finish();
                assert_eq!(events, expected, "split at {i} and {j} of {wire:?}");
            }
        }
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_break() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\r").is_empty());
        assert!(parser.feed(b"\ndata: b\r").is_empty());
        // If the LF were taken for a second line break, the event would end here.
        assert!(parser.feed(b"\n").is_empty());
        assert_eq!(parser.feed(b"\r\n"), vec![message("a\nb", "")]);
    }

    #[test]
    fn cr_at_chunk_end_then_other_text_is_a_line_break() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\r").is_empty());
        assert_eq!(parser.feed(b"\rdata: b\r"), vec![message("a", "")]);
        assert_eq!(parser.feed(b"\r"), vec![message("b", "")]);
    }

    #[test]
    fn empty_chunks_do_not_lose_a_pending_cr() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\r").is_empty());
        assert!(parser.feed(b"").is_empty());
        assert!(parser.feed(b"\n").is_empty());
        assert_eq!(parser.feed(b"\n"), vec![message("a", "")]);
    }

    #[test]
    fn utf8_sequence_split_across_chunks() {
        let wire = "data: é✓😀\n\n".as_bytes();
        assert_all_splits(wire, &[message("é✓😀", "")]);
        let mut parser = Parser::new();
        for byte in wire {
            let events = parser.feed(std::slice::from_ref(byte));
            if !events.is_empty() {
                assert_eq!(events, vec![message("é✓😀", "")]);
                return;
            }
        }
        panic!("no event dispatched");
    }

    #[test]
    fn bom_split_across_chunks_is_ignored_once() {
        let wire = b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n";
        // Only the first BOM is stripped; the second makes the field name "\u{FEFF}data".
        assert_all_splits(wire, &[]);
        assert_all_splits(&wire[3..], &[message("x", "")]);
    }

    #[test]
    fn bom_is_skipped_again_after_finish() {
        let mut parser = Parser::new();
        assert_eq!(parser.feed(b"\xEF\xBB\xBFdata: 1\n\n").len(), 1);
        parser.finish();
        assert_eq!(
            parser.feed(b"\xEF\xBB\xBFdata: 2\n\n"),
            vec![message("2", "")]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        // A lone continuation byte, a truncated 3-byte sequence followed by ASCII, an
        // overlong encoding (each byte replaced) and a surrogate (each byte replaced).
        let wire = b"data: a\x80b\xE2\x82c\xC0\xAFd\xED\xA0\x80e\n\n";
        let expected = "a\u{FFFD}b\u{FFFD}c\u{FFFD}\u{FFFD}d\u{FFFD}\u{FFFD}\u{FFFD}e";
        assert_eq!(String::from_utf8_lossy(&wire[6..wire.len() - 2]), expected);
        assert_all_splits(wire, &[message(expected, "")]);
    }

    #[test]
    fn truncated_sequence_before_line_end_is_replaced() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: \xF0\x9F").is_empty());
        assert_eq!(parser.feed(b"\n\n"), vec![message("\u{FFFD}", "")]);
    }

    #[test]
    fn finish_discards_the_unterminated_event_but_keeps_id_and_retry() {
        let mut parser = Parser::new();
        let events = parser.feed(b"retry: 10\nid: 1\ndata: a\n\nid: 2\ndata: b\n");
        assert_eq!(events, vec![message("a", "1")]);
        assert!(parser.finish());
        assert_eq!(parser.last_event_id(), "1");
        assert_eq!(parser.retry(), Some(10));
        // The next stream starts clean: no leftover data, event type or id.
        assert_eq!(parser.feed(b"data: c\n\n"), vec![message("c", "1")]);
        assert!(!parser.finish());
    }

    #[test]
    fn last_event_id_updates_at_block_end_not_at_the_id_line() {
        let mut parser = Parser::new();
        parser.feed(b"id: 3\n");
        assert_eq!(parser.last_event_id(), "");
        parser.feed(b"\n");
        assert_eq!(parser.last_event_id(), "3");
    }

    #[test]
    fn retry_takes_effect_on_its_line_and_last_value_wins() {
        let mut parser = Parser::new();
        parser.feed(b"retry: 100\n");
        assert_eq!(parser.retry(), Some(100));
        parser.feed(b"retry: 20x\nretry:\nretry: 99999999999999999999999\n");
        assert_eq!(parser.retry(), Some(100));
        parser.feed(b"retry: 0\n\n");
        assert_eq!(parser.retry(), Some(0));
    }

    #[test]
    fn comments_are_counted() {
        let mut parser = Parser::new();
        parser.feed(b":\n: ping\r\n:hb\r");
        assert_eq!(parser.comments(), 3);
        // An unterminated comment line is not counted until it ends.
        parser.feed(b":x");
        assert_eq!(parser.comments(), 3);
        parser.feed(b"\n");
        assert_eq!(parser.comments(), 4);
    }

    #[test]
    fn parse_all_discards_the_unterminated_event() {
        let (events, retry) = parse_all("retry: 5\ndata: a\n\ndata: b");
        assert_eq!(events, vec![message("a", "")]);
        assert_eq!(retry, Some(5));
    }

    #[test]
    fn json_data() {
        let (events, _) = parse_all("data: {\"n\":\ndata: 1}\n\n");
        let value: serde_json::Value = events[0].json().unwrap();
        assert_eq!(value["n"], 1);
    }
}
