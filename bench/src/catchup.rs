//! Catch-up reads across instances: publish on hub A, then at once read on hub B (`recent`, and
//! a resume from the id before the write), timing each read and counting those that had the
//! write. Used by the Redis benchmarks (`redis-fanout`, `redis-cluster`).

use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{FutureExt, StreamExt};
use poem_sse_ext::{Event, Hub};

/// What [`catch_up_reads`] measured.
#[derive(Debug)]
pub struct CatchUpReads {
    pub rounds: usize,
    /// Publish latency on A (acknowledged by Redis).
    pub publish: Vec<Duration>,
    /// `recent(1)` on B.
    pub recent: Vec<Duration>,
    /// `subscribe(resume)` on B until its ready replay was read.
    pub resume: Vec<Duration>,
    /// Reads on B that had the write just acknowledged on A.
    pub recent_saw_write: usize,
    pub resume_saw_write: usize,
}

/// `rounds` times: publish on `a`, then read on `b` at once. Both follow `channel` first.
pub async fn catch_up_reads(
    a: &Hub,
    b: &Hub,
    channel: &str,
    rounds: usize,
) -> Result<CatchUpReads> {
    let _follow_a = a.subscribe(channel, None).await?;
    let _follow_b = b.subscribe(channel, None).await?;
    let mut before = a.head(channel).await?;
    let mut out = CatchUpReads {
        rounds,
        publish: Vec::with_capacity(rounds),
        recent: Vec::with_capacity(rounds),
        resume: Vec::with_capacity(rounds),
        recent_saw_write: 0,
        resume_saw_write: 0,
    };
    for round in 0..rounds {
        let started = Instant::now();
        let id = a.publish(channel, Event::text(round.to_string())).await?;
        out.publish.push(started.elapsed());

        let started = Instant::now();
        let recent = b.recent(channel, 1).await?;
        out.recent.push(started.elapsed());
        out.recent_saw_write += usize::from(recent.head == id);

        let started = Instant::now();
        let mut sub = b.subscribe(channel, Some(before.as_str())).await?;
        let mut replay = Vec::new();
        while let Some(Some(chunk)) = sub.next().now_or_never() {
            replay.extend_from_slice(&chunk);
        }
        out.resume.push(started.elapsed());
        let line = format!("id: {id}\n");
        out.resume_saw_write += usize::from(
            replay
                .windows(line.len())
                .any(|window| window == line.as_bytes()),
        );
        before = id;
    }
    Ok(out)
}

impl std::fmt::Display for CatchUpReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pcts = |samples: &[Duration]| {
            let mut sorted = samples.to_vec();
            sorted.sort();
            let at = |p: f64| {
                sorted
                    .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
                    .copied()
                    .unwrap_or_default()
            };
            format!("p50 {:.3} ms p99 {:.3} ms", ms(at(0.5)), ms(at(0.99)))
        };
        write!(
            f,
            "catch-up reads, {} rounds (publish on A, read on B at once): publish {}; \
             recent on B {} ({} of {} had the write); resume on B {} ({} of {} had the write)",
            self.rounds,
            pcts(&self.publish),
            pcts(&self.recent),
            self.recent_saw_write,
            self.rounds,
            pcts(&self.resume),
            self.resume_saw_write,
            self.rounds,
        )
    }
}
