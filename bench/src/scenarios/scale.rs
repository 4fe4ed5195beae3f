//! Sizes and durations of a run: the full one that `BENCHMARKS.md` reports, and the smoke check.

use std::time::Duration;

/// Sizes and durations of a run.
#[derive(Debug, Clone)]
pub struct Scale {
    pub mem_sizes: Vec<usize>,
    pub load_streams: usize,
    pub load_channels: usize,
    pub load_rate_per_channel: f64,
    pub load_secs: f64,
    pub maxrate_streams: usize,
    pub maxrate_step_secs: f64,
    pub maxrate_steps: usize,
    pub storm_streams: usize,
    pub storm_behind: u64,
    pub shutdown_streams: usize,
    pub cleanup_streams: usize,
    /// Streams of the crowd scenario, and how many share one HTTP/2 connection.
    pub crowd_streams: usize,
    pub crowd_per_conn: usize,
    /// How long the crowd idles while its CPU is measured.
    pub crowd_idle_secs: f64,
    /// How long a server may take to exit after SIGTERM before it is killed.
    pub shutdown_limit: Duration,
    pub per_conn: usize,
    pub sources: usize,
    pub quiet: bool,
}

impl Scale {
    /// The sizes of a full run (the published figures).
    pub fn full() -> Self {
        Self {
            mem_sizes: vec![1_000, 10_000],
            load_streams: 2_000,
            load_channels: 10,
            load_rate_per_channel: 5.0,
            load_secs: 20.0,
            maxrate_streams: 1_000,
            maxrate_step_secs: 4.0,
            maxrate_steps: 10,
            storm_streams: 10_000,
            storm_behind: 100,
            shutdown_streams: 10_000,
            cleanup_streams: 1_000,
            crowd_streams: 100_000,
            crowd_per_conn: 250,
            crowd_idle_secs: 30.0,
            shutdown_limit: Duration::from_secs(20),
            per_conn: 100,
            sources: 32,
            quiet: true,
        }
    }

    /// A few hundred streams for a few seconds: checks that everything still works.
    pub fn smoke() -> Self {
        Self {
            mem_sizes: vec![300],
            load_streams: 300,
            load_channels: 3,
            load_rate_per_channel: 10.0,
            load_secs: 3.0,
            maxrate_streams: 200,
            maxrate_step_secs: 1.0,
            maxrate_steps: 2,
            storm_streams: 300,
            storm_behind: 100,
            shutdown_streams: 300,
            cleanup_streams: 300,
            crowd_streams: 1_000,
            crowd_per_conn: 100,
            crowd_idle_secs: 1.0,
            shutdown_limit: Duration::from_secs(3),
            per_conn: 50,
            sources: 4,
            quiet: false,
        }
    }
}
