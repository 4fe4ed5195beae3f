//! The benchmark scenarios (idle memory, load, max rate, reconnect storm, 100,000 streams,
//! shutdown, cleanup), one file each. Every scenario starts a fresh server, measures, stops it
//! ([`Ctx::with_server`]), and returns its figures; a figure is `None` (n/a) when the server
//! lacks the feature measured. All but `idle` (which starts one server per size and protocol)
//! measure a single cleartext server through the same `measure` signature.

use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::procfs;
use crate::server::ServerSpec;

mod cleanup;
mod crowd;
mod idle;
mod load;
mod maxrate;
mod runner;
mod scale;
mod shutdown;
mod storm;

pub use runner::{Ctx, Outcome, Session};
pub use scale::Scale;

/// The scenario names, in run order.
pub const ALL: &[&str] = &[
    "idle", "load", "load_h2", "maxrate", "storm", "shutdown", "cleanup", "crowd",
];

/// Runs one scenario against one server.
pub async fn run(ctx: &Ctx, spec: &ServerSpec, scenario: &str) -> Outcome {
    if ctx.scale.quiet {
        procfs::wait_quiet(0.10, Duration::from_secs(15)).await;
    }
    let mut out = Outcome::default();
    let result = match scenario {
        // One server per size and protocol.
        "idle" => idle::run(ctx, spec, &mut out).await,
        // Many streams per connection need HTTP/2 on the cleartext server.
        "load_h2" | "crowd" if spec.h2 != "h2c" => Ok(()),
        _ if ALL.contains(&scenario) => {
            ctx.with_server(spec, false, async |s| {
                measure(scenario, s, &ctx.scale, &mut out).await
            })
            .await
        }
        other => Err(anyhow!("unknown scenario {other}")),
    };
    if let Err(e) = result {
        out.errors.push(format!("{scenario}: {e:#}"));
    }
    for m in &mut out.metrics {
        m.server = spec.name.clone();
    }
    out
}

/// The scenarios that measure one fresh server over cleartext HTTP.
async fn measure(scenario: &str, s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    match scenario {
        "load" => load::measure(s, scale, out).await,
        "load_h2" => load::measure_h2(s, scale, out).await,
        "crowd" => crowd::measure(s, scale, out).await,
        "maxrate" => maxrate::measure(s, scale, out).await,
        "storm" => storm::measure(s, scale, out).await,
        "shutdown" => shutdown::measure(s, scale, out).await,
        "cleanup" => cleanup::measure(s, scale, out).await,
        other => Err(anyhow!("unknown scenario {other}")),
    }
}
