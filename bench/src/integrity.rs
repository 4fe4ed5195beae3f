//! Whether every stream received exactly the events published on its channel.

use serde::{Deserialize, Serialize};

use crate::streams::StreamReport;

/// Event integrity over a scenario; any non-zero field fails a smoke run.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Integrity {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reorders: u64,
    pub foreign: u64,
    pub malformed: u64,
    pub failed_streams: u64,
}

impl Integrity {
    pub fn is_clean(&self) -> bool {
        self.lost
            + self.duplicates
            + self.reorders
            + self.foreign
            + self.malformed
            + self.failed_streams
            == 0
    }

    /// Adds the counts of another check (of another round of the same scenario).
    pub fn add(&mut self, o: &Integrity) {
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reorders += o.reorders;
        self.foreign += o.foreign;
        self.malformed += o.malformed;
        self.failed_streams += o.failed_streams;
    }

    /// Checks each stream against the sequence numbers really published on its channel.
    pub fn check(reports: &[StreamReport], published: &[Vec<u64>]) -> Self {
        let mut i = Integrity::default();
        for r in reports {
            if !r.connected {
                i.failed_streams += 1;
                continue;
            }
            let expected = published.get(r.channel).map_or(&[][..], Vec::as_slice);
            let missing = r.missing(expected.iter().copied());
            i.expected += expected.len() as u64;
            i.delivered += expected.len() as u64 - missing;
            i.lost += missing;
            i.duplicates += r.duplicates;
            i.reorders += r.reorders;
            i.foreign += r.foreign;
            i.malformed += r.malformed;
        }
        i
    }

    pub fn summary(&self) -> String {
        format!(
            "{}/{} delivered, {} lost, {} dup, {} reordered, {} foreign, {} malformed, {} streams failed",
            self.delivered, self.expected, self.lost, self.duplicates, self.reorders, self.foreign, self.malformed,
            self.failed_streams
        )
    }
}
