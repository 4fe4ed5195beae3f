//! Scenario 5: the highest delivery rate sustained with at least 99.9 % delivered.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio_util::sync::CancellationToken;

use super::runner::{channels, Outcome, Session};
use super::scale::Scale;
use crate::net::HttpVersion;
use crate::procfs;
use crate::publish::{publish, PublishPlan};
use crate::streams::StreamPlan;

pub(super) async fn measure(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    let chans = channels("max", 1);
    let n = scale.maxrate_streams;
    let set = s
        .hold(StreamPlan::new(n, chans.clone(), HttpVersion::H1))
        .await;
    let connected = set.live.connected.load(Ordering::Relaxed) as u64;
    if connected == 0 {
        let errors = set.live.errors();
        set.stop().await;
        return Err(anyhow!("no stream connected: {}", errors.join("; ")));
    }
    // Delivery rate D = posts/s × streams. Start at 5,000 events/s, double until a step fails,
    // then bisect between the best pass and the first failure.
    let mut rate = 5_000.0 / connected as f64;
    let (mut best, mut best_note, mut fail): (Option<f64>, String, Option<f64>) =
        (None, String::new(), None);
    let mut next_seq = 0u64;
    for _ in 0..scale.maxrate_steps {
        // Let the previous step's tail arrive before counting this one.
        let mut last = set.live.events.load(Ordering::Relaxed);
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = set.live.events.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let base = last;
        let per_channel = (rate * scale.maxrate_step_secs).ceil().max(1.0) as u64;
        let mut plan = PublishPlan::per_channel(chans.clone(), per_channel, rate);
        plan.first_seq = vec![next_seq];
        next_seq += per_channel;
        let own0 = procfs::own_cpu_time()?;
        let t0 = Instant::now();
        let prep = publish(&s.target, &plan, &CancellationToken::new()).await;
        let expected = prep.ok * connected;
        let drained = set
            .wait_until(Duration::from_secs(1), |l| {
                l.events.load(Ordering::Relaxed) - base >= expected
            })
            .await;
        let elapsed = t0.elapsed();
        let got = set.live.events.load(Ordering::Relaxed) - base;
        let own =
            procfs::own_cpu_time()?.saturating_sub(own0).as_secs_f64() / elapsed.as_secs_f64();
        let achieved_posts = prep.achieved_rate();
        let pass = drained
            && prep.failed == 0
            && got as f64 >= 0.999 * expected as f64
            && achieved_posts >= 0.95 * rate;
        let delivered_rate = got.min(expected) as f64 / elapsed.as_secs_f64();
        if pass {
            if best.is_none_or(|b| delivered_rate > b) {
                best = Some(delivered_rate);
                best_note = format!(
                    "{connected} streams on one channel, {:.0} posts/s offered, generator at {:.0} % of a core",
                    rate,
                    own * 100.0
                );
            }
            rate = match fail {
                Some(f) => (rate + f) / 2.0,
                None => rate * 2.0,
            };
        } else {
            fail = Some(rate);
            let lo = best.map_or(rate / 4.0, |b| b / connected as f64);
            rate = (lo + rate) / 2.0;
        }
        if rate > 50_000.0 {
            break;
        }
    }
    set.stop().await;
    if best.is_none() {
        best_note = "no step passed".into();
    }
    out.push(
        "maxrate",
        "max_delivery_rate",
        best,
        "events/s",
        false,
        best_note,
    );
    Ok(())
}
