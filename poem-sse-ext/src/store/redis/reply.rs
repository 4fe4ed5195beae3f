//! Stream ids and the replies of the stream commands, parsed strictly (RESP2 and RESP3).

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{RedisError, RedisResult, Value};
use bytes::Bytes;

use crate::store::EventId;

/// The stream field that holds the encoded frame.
pub(super) const FIELD: &str = "f";

/// A Redis stream id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct StreamId {
    pub(super) ms: u64,
    pub(super) seq: u64,
}

impl StreamId {
    /// `0-0`: before the first entry of any stream.
    pub(super) const ZERO: Self = Self { ms: 0, seq: 0 };

    /// Parses `<ms>-<seq>` strictly: ASCII digits only, both parts fit in `u64`.
    pub(super) fn parse(text: &str) -> Option<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    pub(super) fn parse_bytes(text: &[u8]) -> Option<Self> {
        fn number(digits: &[u8]) -> Option<u64> {
            if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        let dash = text.iter().position(|&b| b == b'-')?;
        Some(Self {
            ms: number(&text[..dash])?,
            seq: number(&text[dash + 1..])?,
        })
    }

    /// The log key: `ms` in the high 64 bits, `seq` in the low ones, so keys order as ids do and
    /// every id is its own key (a client's id means the same position in every instance's log).
    pub(super) fn key(self) -> u128 {
        (u128::from(self.ms) << 64) | u128::from(self.seq)
    }

    /// The id whose key is `key`.
    pub(super) fn from_key(key: u128) -> Self {
        Self {
            // Both halves fit by construction: the shift and the mask leave 64 bits each.
            ms: u64::try_from(key >> 64).unwrap_or(u64::MAX),
            seq: u64::try_from(key & u128::from(u64::MAX)).unwrap_or(u64::MAX),
        }
    }

    pub(super) fn event_id(self) -> EventId {
        EventId::new(self.to_string())
    }

    /// How long ago the Redis server stamped this id, by this instance's clock (zero for an id
    /// from the future).
    pub(super) fn age(self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        now.saturating_sub(Duration::from_millis(self.ms))
    }

    /// The oldest id the age bound keeps, or `None` when nothing can be that old.
    pub(super) fn min_for_age(max_age: Duration) -> Option<Self> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        let cutoff = now.checked_sub(max_age)?;
        let ms = u64::try_from(cutoff.as_millis()).ok()?;
        (ms > 0).then_some(Self { ms, seq: 0 })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The fields of `XINFO STREAM` the store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamInfo {
    pub(super) length: u64,
    pub(super) last_generated: StreamId,
    pub(super) max_deleted: StreamId,
    pub(super) entries_added: u64,
    pub(super) first_entry: Option<StreamId>,
    /// The size of the newest entry's frame body, if it is one this store wrote.
    pub(super) last_entry_size: Option<usize>,
}

impl StreamInfo {
    /// `None` for a stream that does not exist ("no such key").
    pub(super) fn from_reply(reply: RedisResult<Value>) -> RedisResult<Option<Self>> {
        let value = match reply {
            Ok(value) => value,
            Err(err) if is_no_such_key(&err) => return Ok(None),
            Err(err) => return Err(err),
        };
        let Some(fields) = pairs(value) else {
            return Err(protocol_error("XINFO STREAM: not a map"));
        };
        let mut length = None;
        let mut last_generated = None;
        let mut max_deleted = StreamId::ZERO;
        let mut entries_added = None;
        let mut first_entry = None;
        let mut last_entry_size = None;
        for (name, value) in fields {
            match value_bytes(&name) {
                Some(b"length") => length = value_u64(&value),
                Some(b"last-generated-id") => {
                    last_generated = value_bytes(&value).and_then(StreamId::parse_bytes);
                }
                Some(b"max-deleted-entry-id") => {
                    max_deleted = value_bytes(&value)
                        .and_then(StreamId::parse_bytes)
                        .unwrap_or(StreamId::ZERO);
                }
                Some(b"entries-added") => entries_added = value_u64(&value),
                Some(b"first-entry") => {
                    first_entry = parse_entry(value).ok().map(|(id, _)| id);
                }
                Some(b"last-entry") => {
                    last_entry_size = parse_entry(value)
                        .ok()
                        .and_then(|(_, body)| body)
                        .map(|body| body.len());
                }
                _ => {}
            }
        }
        let (Some(length), Some(last_generated)) = (length, last_generated) else {
            return Err(protocol_error("XINFO STREAM: missing fields"));
        };
        Ok(Some(Self {
            length,
            last_generated,
            max_deleted,
            // Redis before 7.0 does not count; then assume nothing was trimmed.
            entries_added: entries_added.unwrap_or(length).max(length),
            first_entry,
            last_entry_size,
        }))
    }
}

/// Stream entries in order: id, and the frame body (`None` for an entry this store did not
/// write).
pub(super) type Entries = Vec<(StreamId, Option<Bytes>)>;

/// The entries of an `XRANGE`/`XREVRANGE` reply (or of one stream of an `XREAD` reply).
pub(super) fn parse_entries(value: Value) -> RedisResult<Entries> {
    let items = match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Nil => return Ok(Vec::new()),
        _ => return Err(protocol_error("stream entries: not an array")),
    };
    items.into_iter().map(parse_entry).collect()
}

/// One `[id, [field, value, ...]]` entry.
fn parse_entry(item: Value) -> RedisResult<(StreamId, Option<Bytes>)> {
    let Value::Array(mut parts) = item else {
        return Err(protocol_error("stream entry: not an array"));
    };
    if parts.len() != 2 {
        return Err(protocol_error("stream entry: not [id, fields]"));
    }
    let fields = parts.pop().and_then(pairs).unwrap_or_default();
    let id = parts
        .pop()
        .as_ref()
        .and_then(value_bytes)
        .and_then(StreamId::parse_bytes)
        .ok_or_else(|| protocol_error("stream entry: bad id"))?;
    // An entry without our field was not written by this store: nothing to deliver, but it
    // still counts in the stream's numbering.
    let body = fields
        .into_iter()
        .find(|(name, _)| value_bytes(name) == Some(FIELD.as_bytes()))
        .and_then(|(_, value)| match value {
            Value::BulkString(bytes) => Some(Bytes::from(bytes)),
            _ => None,
        });
    Ok((id, body))
}

/// An `XREAD` reply: stream key → entries. Nil (timeout or `CLIENT UNBLOCK`) is empty.
pub(super) fn parse_read_reply(value: Value) -> RedisResult<HashMap<String, Entries>> {
    let streams: Vec<(Value, Value)> = match value {
        Value::Nil => return Ok(HashMap::new()),
        Value::Map(streams) => streams,
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut parts) if parts.len() == 2 => {
                    let entries = parts.pop()?;
                    let key = parts.pop()?;
                    Some((key, entries))
                }
                _ => None,
            })
            .collect(),
        _ => return Err(protocol_error("XREAD: unexpected reply")),
    };
    let mut batches = HashMap::with_capacity(streams.len());
    for (key, entries) in streams {
        let Some(key) = value_bytes(&key).and_then(|key| std::str::from_utf8(key).ok()) else {
            continue;
        };
        batches.insert(key.to_owned(), parse_entries(entries)?);
    }
    Ok(batches)
}

/// The stream id `XADD` answered.
pub(super) fn parse_added_id(value: &Value) -> Option<StreamId> {
    value_bytes(value).and_then(StreamId::parse_bytes)
}

/// A map reply as pairs: a RESP3 map, or a RESP2 flat array of name, value, ...
fn pairs(value: Value) -> Option<Vec<(Value, Value)>> {
    match value {
        Value::Map(pairs) => Some(pairs),
        Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((name, value));
            }
            Some(pairs)
        }
        _ => None,
    }
}

fn value_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(value_bytes(other)?).ok()?.parse().ok(),
    }
}

fn is_no_such_key(err: &RedisError) -> bool {
    err.detail()
        .is_some_and(|detail| detail.contains("no such key"))
        || err.to_string().contains("no such key")
}

pub(super) fn protocol_error(what: &'static str) -> RedisError {
    RedisError::from((
        ::redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from Redis",
        what.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_ids_parse_strictly_and_are_their_own_keys() {
        assert_eq!(StreamId::parse("0-0"), Some(StreamId::ZERO));
        let id = StreamId {
            ms: 1_700_000_000_000,
            seq: 3,
        };
        assert_eq!(StreamId::parse("1700000000000-3"), Some(id));
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "1-2-3",
            "a-1",
            "1-+2",
            " 1-2",
            "1-2 ",
            "%00",
            "18446744073709551616-0",
            "0-18446744073709551616",
            "1.5-2",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
        let max = StreamId::parse("18446744073709551615-18446744073709551615");
        assert_eq!(max.map(StreamId::key), Some(u128::MAX));
        let edge = StreamId {
            ms: 1,
            seq: u64::MAX,
        };
        assert!(edge.key() < StreamId { ms: 2, seq: 0 }.key());
        for id in [StreamId::ZERO, id, edge] {
            assert_eq!(StreamId::from_key(id.key()), id);
        }
        assert_eq!(
            StreamId::from_key(StreamId { ms: 2, seq: 0 }.key() - 1),
            edge
        );
        assert_eq!(id.to_string(), "1700000000000-3");
    }

    #[test]
    fn xinfo_replies_parse_in_resp2_form_and_missing_keys_are_none() {
        let reply = Value::Array(vec![
            bulk("length"),
            Value::Int(2),
            bulk("last-generated-id"),
            bulk("5-1"),
            bulk("max-deleted-entry-id"),
            bulk("0-0"),
            bulk("entries-added"),
            Value::Int(4),
            bulk("first-entry"),
            Value::Array(vec![bulk("5-0"), Value::Array(vec![bulk("f"), bulk("x")])]),
            bulk("last-entry"),
            Value::Array(vec![
                bulk("5-1"),
                Value::Array(vec![bulk("f"), bulk("data: y\n\n")]),
            ]),
        ]);
        assert_eq!(
            StreamInfo::from_reply(Ok(reply)).ok().flatten(),
            Some(StreamInfo {
                length: 2,
                last_generated: StreamId { ms: 5, seq: 1 },
                max_deleted: StreamId::ZERO,
                entries_added: 4,
                first_entry: Some(StreamId { ms: 5, seq: 0 }),
                last_entry_size: Some(9),
            })
        );
        let missing = RedisError::from((
            ::redis::ErrorKind::Server(::redis::ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "no such key".to_owned(),
        ));
        assert_eq!(StreamInfo::from_reply(Err(missing)).ok(), Some(None));
    }

    #[test]
    fn entries_of_other_writers_are_kept_without_a_frame() {
        let reply = Value::Array(vec![
            Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("f"), bulk("a")])]),
            Value::Array(vec![bulk("2-0"), Value::Array(vec![bulk("g"), bulk("b")])]),
        ]);
        let entries = parse_entries(reply).ok();
        assert_eq!(
            entries,
            Some(vec![
                (StreamId { ms: 1, seq: 0 }, Some(Bytes::from_static(b"a"))),
                (StreamId { ms: 2, seq: 0 }, None),
            ])
        );
        assert!(parse_entries(bulk("x")).is_err());
    }
}
