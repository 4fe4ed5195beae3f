//! What goes to a script and comes back: the arguments, the replies, a payload as an entry,
//! and the keys of a stream.

use ::redis::Value;
use bytes::{Bytes, BytesMut};

use super::super::{
    budget::Refusal, error::Failure, log::Payload, offset::Offset, producer::MAX_PRODUCERS,
};

/// A script argument.
pub(super) enum Arg {
    Bytes(Bytes),
    Text(String),
    /// Passed on from another script's reply.
    Value(Value),
}

impl From<String> for Arg {
    fn from(text: String) -> Self {
        Arg::Text(text)
    }
}

impl From<&str> for Arg {
    fn from(text: &str) -> Self {
        Arg::Text(text.to_owned())
    }
}

pub(super) fn flag(on: bool) -> Arg {
    Arg::Text(if on { "1" } else { "0" }.to_owned())
}

/// A script's reply: status, the source to release, values.
pub(super) struct Reply {
    pub(super) items: Vec<Value>,
    /// The stream size cap the script compared with.
    pub(super) limit: u64,
}

impl Reply {
    pub(super) fn status(&self) -> String {
        self.text(0)
    }

    pub(super) fn text_of(value: &Value) -> String {
        match value {
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::SimpleString(text) => text.clone(),
            Value::Int(n) => n.to_string(),
            _ => String::new(),
        }
    }

    pub(super) fn bytes_of(value: &Value) -> Bytes {
        match value {
            Value::BulkString(bytes) => Bytes::copy_from_slice(bytes),
            other => Bytes::from(Self::text_of(other)),
        }
    }

    pub(super) fn text(&self, i: usize) -> String {
        self.items.get(i).map(Self::text_of).unwrap_or_default()
    }

    pub(super) fn num(&self, i: usize) -> u64 {
        match self.items.get(i) {
            Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => self.text(i).parse().unwrap_or(0),
        }
    }

    /// `Err` for a refusal status; `received` is the request's `Producer-Seq`.
    pub(super) fn refusal(&self, received: Option<u64>) -> Result<(), Failure> {
        let message = || self.text(2);
        Err(match self.status().as_str() {
            "ok" | "created" | "exists" => return Ok(()),
            "notfound" => Failure::NotFound,
            "gone" => Failure::Gone,
            "conflict" => Failure::Conflict(message()),
            "bad" => Failure::BadRequest(message()),
            "closed" => Failure::Closed {
                tail: Offset(self.num(2)),
            },
            "stale" => Failure::StaleEpoch {
                current: self.num(2),
            },
            "gap" => Failure::SequenceGap {
                expected: self.num(2),
                received: received.unwrap_or(0),
            },
            "needzero" => {
                Failure::BadRequest("a new Producer-Epoch must start at Producer-Seq 0".into())
            }
            "producers" => Refusal::Producers(MAX_PRODUCERS).into(),
            "toolarge" => Failure::Budget(Refusal::StreamBytes(self.limit)),
            other => Failure::Unavailable(format!("a durable stream script answered {other:?}")),
        })
    }
}

/// A payload as an entry: its bytes and, for JSON, its messages' lengths.
pub(super) fn encode(payload: &Payload) -> (Bytes, String) {
    match payload {
        Payload::Bytes(bytes) => (bytes.clone(), String::new()),
        Payload::Messages(all, from, to) => {
            let messages = &all[*from..*to];
            let mut data = BytesMut::with_capacity(messages.iter().map(Bytes::len).sum());
            let mut lengths = String::with_capacity(messages.len() * 4);
            for (i, message) in messages.iter().enumerate() {
                data.extend_from_slice(message);
                if i > 0 {
                    lengths.push(',');
                }
                lengths.push_str(&message.len().to_string());
            }
            (data.freeze(), lengths)
        }
    }
}

/// The keys of stream `name`: metadata, entries, producers, in the slot of a hash of the name.
pub(super) fn keys(name: &str) -> [String; 3] {
    // FNV-1a: fixed across versions and processes, unlike the standard library's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let base = format!("ds:{{{hash:016x}}}:{name}");
    [
        format!("{base}:m"),
        format!("{base}:d"),
        format!("{base}:p"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot is decided by the first `{...}` of a key: it must be the hash, whatever the
    /// name holds.
    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("a tag");
        let close = open + key[open..].find('}').expect("a closed tag");
        &key[open + 1..close]
    }

    #[test]
    fn a_streams_keys_share_one_hash_tag_whatever_its_name_holds() {
        for name in ["chat/answer-1", "a}b", "{x}", "}{", "über/straße"] {
            let [meta, data, producers] = keys(name);
            assert_eq!(tag(&meta).len(), 16, "{meta}");
            assert_eq!(tag(&meta), tag(&data));
            assert_eq!(tag(&meta), tag(&producers));
            assert!(meta.ends_with(&format!("}}:{name}:m")), "{meta}");
        }
        assert_ne!(keys("a")[0], keys("b")[0]);
        assert_eq!(keys("a"), keys("a"), "fixed across calls (and processes)");
    }

    #[test]
    fn a_json_append_keeps_its_messages_and_their_lengths() {
        let batch = vec![
            Bytes::from_static(b"{\"a\":1}"),
            Bytes::from_static(b"[2,3]"),
        ];
        let (data, lengths) = encode(&Payload::messages(batch));
        assert_eq!(data, "{\"a\":1}[2,3]");
        assert_eq!(lengths, "7,5");
        let (data, lengths) = encode(&Payload::Bytes(Bytes::from_static(b"raw")));
        assert_eq!((data, lengths), (Bytes::from_static(b"raw"), String::new()));
    }
}
