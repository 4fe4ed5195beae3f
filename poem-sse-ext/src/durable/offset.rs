//! Offsets on the wire: `<16 digits>_<16 digits>`, fixed width so that byte-wise order is stream
//! order, plus the two sentinels `-1` (the start) and `now` (the tail).
//!
//! The first field is reserved (always zero); the second is the position in the stream: a byte
//! count for byte streams, a message count for JSON streams. A fork shares its source's offsets
//! up to the fork point, so a position means the same thing in both.

use std::fmt;

/// Digits in each field of an offset.
const FIELD: usize = 16;
/// The largest position an offset can carry (16 decimal digits).
pub(crate) const MAX_POSITION: u64 = 9_999_999_999_999_999;

/// A position in a stream, as the protocol's opaque offset token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Offset(pub(crate) u64);

/// Where a read starts, as the `offset` query parameter says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// `-1`, or no parameter: the beginning.
    Beginning,
    /// `now`: the tail at the time of the request.
    Now,
    /// A position the server issued.
    At(Offset),
}

/// Why an offset token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OffsetError {
    /// Not `-1`, `now`, nor `<16 digits>_<16 digits>` with a zero first field.
    #[error("malformed offset: use -1, now, or a Stream-Next-Offset value this server returned")]
    Malformed,
}

impl Offset {
    /// The start of every stream.
    pub(crate) const ZERO: Offset = Offset(0);

    /// Parses a token this server issued (no sentinels).
    pub(crate) fn parse(token: &str) -> Result<Self, OffsetError> {
        let bytes = token.as_bytes();
        if bytes.len() != 2 * FIELD + 1 || bytes[FIELD] != b'_' {
            return Err(OffsetError::Malformed);
        }
        let (reserved, position) = (&bytes[..FIELD], &bytes[FIELD + 1..]);
        if !reserved.iter().all(|b| *b == b'0') || !position.iter().all(u8::is_ascii_digit) {
            return Err(OffsetError::Malformed);
        }
        let value = position
            .iter()
            .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
        Ok(Offset(value))
    }
}

impl Start {
    /// Parses the `offset` query parameter.
    pub(crate) fn parse(token: &str) -> Result<Self, OffsetError> {
        match token {
            "-1" => Ok(Start::Beginning),
            "now" => Ok(Start::Now),
            other => Offset::parse(other).map(Start::At),
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}_{:0width$}", 0, self.0, width = FIELD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_sort_as_strings() {
        let positions = [0u64, 1, 9, 10, 99, 100, 12_345, MAX_POSITION];
        let tokens: Vec<String> = positions.iter().map(|p| Offset(*p).to_string()).collect();
        for (token, position) in tokens.iter().zip(positions) {
            assert_eq!(token.len(), 33);
            assert_eq!(Offset::parse(token), Ok(Offset(position)));
        }
        let mut sorted = tokens.clone();
        sorted.sort();
        assert_eq!(sorted, tokens, "string order is stream order");
    }

    #[test]
    fn sentinels_and_hostile_tokens() {
        assert_eq!(Start::parse("-1"), Ok(Start::Beginning));
        assert_eq!(Start::parse("now"), Ok(Start::Now));
        let good = Offset(5).to_string();
        for bad in [
            "",
            "0,1",
            "0 1",
            "../x",
            "x/..",
            "a/b",
            "\0",
            "now\n",
            "-1\r\n",
            "NOW",
            "-2",
            "0000000000000001_0000000000000000",
            "0000000000000000_000000000000000a",
            "0000000000000000-0000000000000000",
            "0000000000000000_00000000000000000",
            "+000000000000000_0000000000000000",
        ] {
            assert_eq!(Start::parse(bad), Err(OffsetError::Malformed), "{bad:?}");
        }
        let with_nul = format!("{good}\0");
        assert_eq!(Start::parse(&with_nul), Err(OffsetError::Malformed));
    }
}
