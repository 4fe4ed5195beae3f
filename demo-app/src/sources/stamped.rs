//! What a source publishes: a value and the time it was taken, so a chart can put each point at
//! its time (a page rendered after a restart shows the gap, not a few points stretched across
//! the chart).

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// A value and when it was taken: `{"at": "2026-12-02T14:30:05.123Z", ...the value's fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stamped<T> {
    /// When the value was taken, in UTC (RFC 3339, milliseconds).
    pub at: DateTime<Utc>,
    /// The value; its fields sit beside `at`.
    #[serde(flatten)]
    pub value: T,
}

impl<T> Stamped<T> {
    /// `value`, taken now.
    pub fn now(value: T) -> Self {
        Self { at: now(), value }
    }
}

/// The time now, to the millisecond (what a browser's `Date` holds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::system::Sample;

    #[test]
    fn a_stamped_sample_is_the_sample_with_its_time_beside_it() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T14:30:05.123Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc);
        let sample = Sample {
            v: vec![1.5],
            text: "1.5 %".to_owned(),
        };
        let json = serde_json::to_value(Stamped {
            at,
            value: sample.clone(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::json!({"at": "2026-12-02T14:30:05.123Z", "v": [1.5], "text": "1.5 %"})
        );
        // What the pages read back: the sample, the time ignored.
        let back: Sample = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, sample);
        assert_eq!(now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
