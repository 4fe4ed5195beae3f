//! The protocol's time values: `Stream-TTL` (decimal seconds, no sign, no leading zeros) and
//! `Stream-Expires-At` (RFC 3339), parsed without a date library, and the `Stream-Cursor`
//! interval clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses `Stream-TTL`: a non-negative decimal integer of seconds, `0` or without leading zeros.
pub(crate) fn parse_ttl(value: &str) -> Option<u64> {
    let bytes = value.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.len() <= 12
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if canonical {
        value.parse().ok()
    } else {
        None
    }
}

/// Parses an RFC 3339 timestamp (`2026-01-02T03:04:05.678Z`, `...+01:00`) into milliseconds
/// since the Unix epoch.
pub(crate) fn parse_rfc3339(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let separators = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !separators
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, d) in rest[1..=digits].iter().enumerate() {
            if i < 3 {
                millis = millis * 10 + i64::from(d - b'0');
            }
        }
        for _ in digits..3 {
            millis *= 10;
        }
        rest = &rest[1 + digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let field = |x: u8, y: u8| -> Option<i64> {
                (x.is_ascii_digit() && y.is_ascii_digit())
                    .then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            };
            let (h, m) = (field(*h1, *h2)?, field(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn format_rfc3339(millis: i64) -> String {
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let seconds = ms_of_day / 1_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        ms_of_day % 1_000
    )
}

/// Length of the interval the `Stream-Cursor` counts.
const CURSOR_INTERVAL_MS: i64 = 20_000;
/// The cursor clock's origin: 2024-10-09T00:00:00Z.
const CURSOR_EPOCH_MS: i64 = 1_728_432_000_000;

/// The `Stream-Cursor` for a live answer: the current 20 s interval, or, when the client already
/// holds that interval (or a later one), its cursor plus 1 to 180 intervals (20 s to 1 h), so
/// that the cursor never repeats and a CDN never serves one cached answer forever.
pub(crate) fn cursor(client: Option<&str>) -> u64 {
    let current = u64::try_from((now_millis() - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS).unwrap_or(0);
    match client.and_then(|c| c.parse::<u64>().ok()) {
        Some(held) if held >= current => held.saturating_add(rand::random_range(1..=180)),
        _ => current,
    }
}

/// A deadline `seconds` from now, saturating far in the future.
pub(crate) fn after(seconds: u64) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(Duration::from_secs(seconds))
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 100))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_accepts_only_canonical_decimal_seconds() {
        assert_eq!(parse_ttl("0"), Some(0));
        assert_eq!(parse_ttl("3600"), Some(3600));
        for bad in [
            "",
            "abc",
            "-1",
            "+60",
            "00060",
            "60.5",
            "1e3",
            " 60",
            "60 ",
            "99999999999999",
        ] {
            assert_eq!(parse_ttl(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_round_trips_and_honours_offsets() {
        let z = parse_rfc3339("2026-12-07T13:32:05.123Z");
        assert_eq!(z, Some(1_796_650_325_123));
        assert_eq!(parse_rfc3339("2026-12-07T14:32:05.123+01:00"), z);
        assert_eq!(parse_rfc3339("2026-12-07T13:32:05.123456789+00:00"), z);
        assert_eq!(
            format_rfc3339(1_796_650_325_123),
            "2026-12-07T13:32:05.123Z"
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(format_rfc3339)
                .as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
        for bad in [
            "not-a-timestamp",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-07T25:00:00Z",
            "2026-12-07T13:32:05",
            "2026-12-07T13:32:05.Z",
            "2026-12-07T13:32:05+0100",
            "2026-12-07T13:32:05Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cursor_moves_past_a_client_that_holds_the_current_interval() {
        let current = cursor(None);
        let next = cursor(Some(&current.to_string()));
        assert!(next > current);
        assert_eq!(cursor(Some("1")), current);
        assert_eq!(cursor(Some("junk")), current);
    }
}
