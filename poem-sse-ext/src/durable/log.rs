//! A stream's data: the appends in order, each kept as the `Bytes` it arrived in (a JSON
//! append as its messages). Positions are bytes for a byte stream and messages for a JSON
//! stream, so an offset always lands on something a client can address.
//!
//! A fork copies the entries' handles, not their bytes: `Bytes` and `Arc` share the source's
//! buffers, so forking a large stream costs one handle per append and reading a fork needs no
//! stitching. This is the durable counterpart of the hub's channel log, kept apart because it
//! never evicts, addresses bytes rather than frames, and forks.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// One append, or the part of one a fork inherited.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    /// Raw bytes (any content type but JSON).
    Bytes(Bytes),
    /// JSON messages `from..to` of a shared batch.
    Messages(Arc<[Bytes]>, usize, usize),
}

impl Payload {
    /// A JSON batch.
    pub(crate) fn messages(messages: Vec<Bytes>) -> Self {
        let len = messages.len();
        Payload::Messages(messages.into(), 0, len)
    }

    /// Its length in positions (bytes or messages).
    pub(crate) fn len(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::Messages(_, from, to) => (to - from) as u64,
        }
    }

    /// What it costs in memory, for the byte budgets.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::Messages(all, from, to) => {
                all[*from..*to].iter().map(|m| m.len() as u64 + 1).sum()
            }
        }
    }

    /// Positions `from..to` of it (relative to its own start).
    fn slice(&self, from: u64, to: u64) -> Payload {
        // Both bounds are at most `len()`, which fits in usize.
        let (from, to) = (from as usize, to as usize);
        match self {
            Payload::Bytes(b) => Payload::Bytes(b.slice(from..to)),
            Payload::Messages(all, start, _) => {
                Payload::Messages(Arc::clone(all), start + from, start + to)
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    start: u64,
    data: Payload,
}

impl Entry {
    fn end(&self) -> u64 {
        self.start + self.data.len()
    }
}

/// The appends of one stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    entries: Vec<Entry>,
    tail: u64,
}

/// A fork point the log can not honour.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ForkPointError {
    /// The offset is past the source's tail.
    #[error("Stream-Fork-Offset is beyond the source stream's tail")]
    BeyondTail,
    /// The sub-offset goes past the end of the append at the fork offset.
    #[error("Stream-Fork-Sub-Offset goes past the end of the append at Stream-Fork-Offset")]
    SubOffsetOvershoot,
}

/// Data read from a position, in pieces that share the log's buffers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chunk {
    pub(crate) parts: Vec<Payload>,
    /// The position after the last piece.
    pub(crate) next: u64,
}

impl Log {
    /// What one entry's handle costs in memory (its start, and a `Bytes` or `Arc` slice).
    pub(crate) const HANDLE_BYTES: u64 = std::mem::size_of::<Entry>() as u64;

    /// The entries held, each one handle.
    pub(crate) fn entries(&self) -> usize {
        self.entries.len()
    }

    /// The position after the last append.
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// Appends; empty payloads add nothing.
    pub(crate) fn append(&mut self, data: Payload) {
        let len = data.len();
        if len == 0 {
            return;
        }
        self.entries.push(Entry {
            start: self.tail,
            data,
        });
        self.tail += len;
    }

    /// Up to `max_bytes` (at least one position when there is data) from `from`, which must be
    /// at most the tail.
    pub(crate) fn read(&self, from: u64, max_bytes: u64) -> Chunk {
        let mut chunk = Chunk {
            parts: Vec::new(),
            next: from.min(self.tail),
        };
        let mut budget = max_bytes.max(1);
        let first = self.entries.partition_point(|e| e.end() <= from);
        for entry in &self.entries[first..] {
            let skip = chunk.next - entry.start;
            let mut take = entry.data.len() - skip;
            match &entry.data {
                Payload::Bytes(_) => take = take.min(budget),
                Payload::Messages(all, start, _) => {
                    // Whole messages only; the first one even when it alone is over budget.
                    let mut used = 0;
                    let mut count = 0;
                    for m in &all[start + skip as usize..start + (skip + take) as usize] {
                        used += m.len() as u64 + 1;
                        if count > 0 && used > budget {
                            break;
                        }
                        count += 1;
                    }
                    take = count;
                }
            }
            let part = entry.data.slice(skip, skip + take);
            budget = budget.saturating_sub(part.size());
            chunk.next += take;
            chunk.parts.push(part);
            if budget == 0 || take < entry.data.len() - skip {
                break;
            }
        }
        chunk
    }

    /// The log a fork at `position` (plus `sub` positions into the append there) inherits.
    pub(crate) fn prefix(&self, position: u64, sub: u64) -> Result<Log, ForkPointError> {
        if position > self.tail {
            return Err(ForkPointError::BeyondTail);
        }
        let end = if sub == 0 {
            position
        } else {
            let at = self.entries.partition_point(|e| e.end() <= position);
            match self.entries.get(at) {
                Some(entry) if position + sub <= entry.end() => position + sub,
                _ => return Err(ForkPointError::SubOffsetOvershoot),
            }
        };
        let mut log = Log::default();
        for entry in &self.entries {
            if entry.start >= end {
                break;
            }
            let take = entry.data.len().min(end - entry.start);
            log.append(entry.data.slice(0, take));
        }
        Ok(log)
    }
}

impl Chunk {
    /// Whether nothing was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The bytes of a byte stream's chunk, joined.
    pub(crate) fn bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [Payload::Bytes(only)] => only.clone(),
            parts => {
                let mut out = BytesMut::new();
                for part in parts {
                    if let Payload::Bytes(b) = part {
                        out.extend_from_slice(b);
                    }
                }
                out.freeze()
            }
        }
    }

    /// A JSON stream's chunk as one array: `[m1,m2,...]`.
    pub(crate) fn json_array(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            2 + self.parts.iter().map(|p| p.size() as usize).sum::<usize>(),
        );
        out.extend_from_slice(b"[");
        let mut first = true;
        for part in &self.parts {
            if let Payload::Messages(all, from, to) = part {
                for m in &all[*from..*to] {
                    if !first {
                        out.extend_from_slice(b",");
                    }
                    first = false;
                    out.extend_from_slice(m);
                }
            }
        }
        out.extend_from_slice(b"]");
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_log(parts: &[&'static str]) -> Log {
        let mut log = Log::default();
        for p in parts {
            log.append(Payload::Bytes(Bytes::from_static(p.as_bytes())));
        }
        log
    }

    #[test]
    fn reads_from_any_position_in_pages() {
        let log = bytes_log(&["hello", " ", "world"]);
        assert_eq!(log.tail(), 11);
        assert_eq!(log.read(0, 100).bytes(), "hello world");
        assert_eq!(log.read(3, 100).bytes(), "lo world");
        let page = log.read(0, 4);
        assert_eq!((page.bytes(), page.next), (Bytes::from("hell"), 4));
        assert!(log.read(11, 100).is_empty());
    }

    #[test]
    fn forks_share_a_prefix_and_check_the_sub_offset() {
        let log = bytes_log(&["first", "second"]);
        assert_eq!(log.prefix(5, 3).unwrap().read(0, 100).bytes(), "firstsec");
        assert_eq!(log.prefix(5, 6).unwrap().tail(), 11);
        assert_eq!(
            log.prefix(5, 7).unwrap_err(),
            ForkPointError::SubOffsetOvershoot
        );
        assert_eq!(
            log.prefix(11, 1).unwrap_err(),
            ForkPointError::SubOffsetOvershoot
        );
        assert_eq!(log.prefix(12, 0).unwrap_err(), ForkPointError::BeyondTail);
        // A fork of a fork at a sub-offset: the anchor is mid-append in the source.
        let fork = log.prefix(0, 4).unwrap();
        assert_eq!(fork.prefix(0, 2).unwrap().read(0, 100).bytes(), "fi");
    }

    #[test]
    fn json_messages_are_whole() {
        let mut log = Log::default();
        let batch =
            ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"].map(|m| Bytes::from_static(m.as_bytes()));
        log.append(Payload::messages(batch.to_vec()));
        assert_eq!(log.tail(), 3);
        assert_eq!(
            log.read(0, 100).json_array(),
            r#"[{"a":1},{"b":2},{"c":3}]"#
        );
        assert_eq!(log.read(1, 10).json_array(), r#"[{"b":2}]"#);
        assert_eq!(
            log.prefix(0, 2).unwrap().read(0, 100).json_array(),
            r#"[{"a":1},{"b":2}]"#
        );
        assert_eq!(Log::default().read(0, 10).json_array(), "[]");
    }
}
