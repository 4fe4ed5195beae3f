//! The figures only Linux has: kernel counters of `/proc/stat` and `/proc/loadavg` that no
//! portable crate reads (context switches, interrupts, processes created, running and blocked
//! tasks).
//!
//! A file that can not be read (a restricted container) gives zeros, and the figure reads as
//! idle, instead of failing the others.

use std::fs;

/// The cumulative kernel counters that rates are computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Context switches since boot.
    pub ctxt: u64,
    /// Interrupts since boot.
    pub intr: u64,
    /// Processes created since boot.
    pub forks: u64,
}

/// Tasks now: running, blocked on I/O, and threads in all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tasks {
    pub running: u64,
    pub blocked: u64,
    pub threads: u64,
}

/// Reads `/proc/stat` once: the counters and the running and blocked tasks, then the threads
/// from `/proc/loadavg`.
pub fn read() -> (Counters, Tasks) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let counters = Counters {
        ctxt: stat_value(&stat, "ctxt"),
        intr: stat_value(&stat, "intr"),
        forks: stat_value(&stat, "processes"),
    };
    let threads = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| threads(&text))
        .unwrap_or(0);
    let tasks = Tasks {
        running: stat_value(&stat, "procs_running"),
        blocked: stat_value(&stat, "procs_blocked"),
        threads,
    };
    (counters, tasks)
}

/// The first number after `key` on its line of `/proc/stat`.
fn stat_value(stat: &str, key: &str) -> u64 {
    stat.lines()
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next()? == key).then(|| parts.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// The total of `running/total` in `/proc/loadavg` (`0.52 0.58 0.59 2/812 12345`).
fn threads(loadavg: &str) -> Option<u64> {
    let (_, total) = loadavg.split_whitespace().nth(3)?.split_once('/')?;
    total.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_loadavg() {
        let stat = "cpu  10 0 10 70 10 0 0 0 0 0\nctxt 42\nprocesses 7\nprocs_running 3\n";
        assert_eq!(stat_value(stat, "ctxt"), 42);
        assert_eq!(stat_value(stat, "processes"), 7);
        assert_eq!(stat_value(stat, "procs_running"), 3);
        assert_eq!(stat_value(stat, "missing"), 0);
        assert_eq!(threads("0.52 0.58 0.59 2/812 12345\n"), Some(812));
        assert_eq!(threads("garbage"), None);
    }
}
