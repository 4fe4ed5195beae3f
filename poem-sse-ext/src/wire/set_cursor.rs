//! The id of an event on a stream of several channels: one cursor that resumes every channel of
//! the set at once.
//!
//! ```text
//! s1.<set hash>.<id of channel 1>.<id of channel 2>…
//! ```
//!
//! Each channel's id is the id its own store gave its last event (empty: the channel starts at
//! its head). Ids after the first are front-coded: one base-36 digit says how many leading
//! characters it shares with the id before it (at most 35), then the rest follows. Ids from one
//! store share long prefixes (the memory store's epoch, Redis's millisecond clock), so a channel
//! costs about 3 to 8 bytes: a set of [`MAX_SET_CHANNELS`] stays under [`MAX_SET_CURSOR_LEN`].
//! `.` and `%` inside ids are percent-escaped. The set hash (FNV-1a of the channel names in
//! order) makes a cursor from another set a reset, never a wrong resume.

use std::fmt::Write;

/// Most channels on one stream.
pub const MAX_SET_CHANNELS: usize = 64;

/// Longest set cursor accepted as a resume point, in bytes: a set of [`MAX_SET_CHANNELS`]
/// channels whose ids share nothing stays under it only for ids up to ~30 bytes; ids of the
/// built-in stores take far less.
pub const MAX_SET_CURSOR_LEN: usize = 2_048;

const VERSION: &str = "s1";

/// Encodes the cursor of `channels` at `ids` (one per channel, in the same order; `None`: at the
/// head). A server-rendered page passes it as `lastEventId` so that its stream of the set
/// resumes every channel exactly where the page's state was rendered.
///
/// ```
/// use poem_sse_ext::{wire::set_cursor, EventId};
///
/// let cpu = EventId::new("1a2b3c4d-120");
/// let mem = EventId::new("1a2b3c4d-118");
/// let cursor = set_cursor(&["sys.cpu", "sys.mem"], &[Some(&cpu), Some(&mem)]);
/// assert!(cursor.starts_with("s1.") && cursor.ends_with(".1a2b3c4d-120.a18"));
/// ```
pub fn set_cursor(channels: &[&str], ids: &[Option<&crate::wire::EventId>]) -> String {
    let ids: Vec<Option<&str>> = ids.iter().map(|id| id.map(|id| id.as_str())).collect();
    encode(channels, &ids)
}

pub(crate) fn encode(channels: &[&str], ids: &[Option<&str>]) -> String {
    let mut out = String::with_capacity(16 + ids.len() * 8);
    let _ = write!(out, "{VERSION}.{:08x}", set_hash(channels));
    let mut previous = String::new();
    for (n, id) in ids.iter().enumerate() {
        let escaped = escape(id.unwrap_or_default());
        out.push('.');
        if n == 0 {
            out.push_str(&escaped);
        } else {
            let shared = common_prefix(&previous, &escaped).min(35);
            out.push(char::from_digit(shared as u32, 36).unwrap_or('0'));
            out.push_str(&escaped[shared..]);
        }
        previous = escaped;
    }
    out
}

/// The ids of `channels` in `cursor` (`None`: at the head), or `None` when the cursor is
/// malformed or belongs to another set.
pub(crate) fn decode(channels: &[&str], cursor: &str) -> Option<Vec<Option<String>>> {
    if cursor.len() > MAX_SET_CURSOR_LEN {
        return None;
    }
    let mut parts = cursor.split('.');
    if parts.next()? != VERSION {
        return None;
    }
    if u32::from_str_radix(parts.next()?, 16).ok()? != set_hash(channels) {
        return None;
    }
    let mut ids = Vec::with_capacity(channels.len());
    let mut previous = String::new();
    for (n, part) in parts.enumerate() {
        let escaped = if n == 0 {
            part.to_owned()
        } else {
            let mut chars = part.chars();
            let shared = chars.next()?.to_digit(36)? as usize;
            let prefix = previous.get(..shared)?;
            format!("{prefix}{}", chars.as_str())
        };
        let id = unescape(&escaped)?;
        ids.push((!id.is_empty()).then_some(id));
        previous = escaped;
    }
    (ids.len() == channels.len()).then_some(ids)
}

/// FNV-1a over the channel names, each followed by a NUL.
fn set_hash(channels: &[&str]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in channels.iter().flat_map(|c| c.bytes().chain([0])) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

fn escape(id: &str) -> String {
    id.replace('%', "%25").replace('.', "%2E")
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3)? {
            "%25" => out.push('%'),
            "%2E" => out.push('.'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_front_codes() {
        let channels = ["a", "b", "c", "d"];
        let ids = [
            Some("abcd1234-17"),
            Some("abcd1234-20"),
            None,
            Some("we.ird%id"),
        ];
        let cursor = encode(&channels, &ids);
        assert!(cursor.contains(".abcd1234-17.920."), "{cursor}");
        let decoded = decode(&channels, &cursor);
        let expected: Vec<Option<String>> = ids.iter().map(|id| id.map(str::to_owned)).collect();
        assert_eq!(decoded, Some(expected));
    }

    #[test]
    fn another_set_or_garbage_is_none() {
        let cursor = encode(&["a", "b"], &[Some("x-1"), Some("x-2")]);
        assert_eq!(decode(&["b", "a"], &cursor), None, "order matters");
        assert_eq!(decode(&["a"], &cursor), None);
        for garbage in [
            "",
            "s1",
            "s2.00000000.x",
            "s1.zz.x",
            "s1.00000000",
            "%",
            "s1...",
        ] {
            assert_eq!(decode(&["a", "b"], garbage), None, "{garbage:?}");
        }
        let long = format!("{cursor}{}", ".0".repeat(MAX_SET_CURSOR_LEN));
        assert_eq!(decode(&["a", "b"], &long), None);
    }

    #[test]
    fn a_full_set_of_memory_store_ids_stays_short() {
        let names: Vec<String> = (0..MAX_SET_CHANNELS).map(|n| format!("ch{n}")).collect();
        let channels: Vec<&str> = names.iter().map(String::as_str).collect();
        let ids: Vec<String> = (0..MAX_SET_CHANNELS)
            .map(|n| format!("1a2b3c4d-{}", 1_000_000 + n * 7_919))
            .collect();
        let ids: Vec<Option<&str>> = ids.iter().map(|id| Some(id.as_str())).collect();
        let cursor = encode(&channels, &ids);
        assert!(cursor.len() < 600, "{} bytes", cursor.len());
    }
}
