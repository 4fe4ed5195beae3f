//! Scenarios 1 and 2: RSS and setup CPU per idle stream, over HTTP/1.1 and HTTP/2.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;

use super::runner::{channels, overflow_note, Ctx, Outcome, Session};
use crate::net::HttpVersion;
use crate::procfs;
use crate::server::ServerSpec;
use crate::streams::StreamPlan;

pub(super) async fn run(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    for &n in &ctx.scale.mem_sizes {
        // HTTP/1.1 over TLS is measured where the server has a TLS variant (the product).
        let h1_tls = spec.tls_cmd.is_some().then_some((HttpVersion::H1, true));
        let variants = [
            Some((HttpVersion::H1, false)),
            h1_tls,
            Some((HttpVersion::H2, false)),
        ];
        for (version, over_tls) in variants.into_iter().flatten() {
            let label = match (version, over_tls) {
                (HttpVersion::H1, false) => "h1",
                (HttpVersion::H1, true) => "h1tls",
                (HttpVersion::H2, _) => "h2",
            };
            let (mem, cpu) = (format!("mem_{label}_{n}"), format!("setup_cpu_{label}_{n}"));
            let tls = match (version, spec.h2.as_str()) {
                (HttpVersion::H2, "none") => {
                    out.push("idle", &mem, None, "KiB/stream", true, "no HTTP/2");
                    out.push("idle", &cpu, None, "µs/stream", true, "no HTTP/2");
                    continue;
                }
                (HttpVersion::H2, "tls") => true,
                _ => over_tls,
            };
            let per_conn = ctx.scale.per_conn;
            let (rss, cpu_us, note) = ctx
                .with_server(spec, tls, async |s| measure(s, n, version, per_conn).await)
                .await?;
            let note = if tls {
                format!(
                    "{} over TLS. {note}",
                    if version == HttpVersion::H1 {
                        "HTTP/1.1"
                    } else {
                        "HTTP/2"
                    }
                )
            } else {
                note
            };
            out.push("idle", &mem, rss, "KiB/stream", true, note.clone());
            out.push("idle", &cpu, cpu_us, "µs/stream", true, note);
        }
    }
    Ok(())
}

/// RSS (KiB) and CPU (µs) per stream while `n` streams connect and idle, and a note.
async fn measure(
    s: &mut Session,
    n: usize,
    version: HttpVersion,
    per_conn: usize,
) -> Result<(Option<f64>, Option<f64>, String)> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = s.server.pid;
    let rss0 = procfs::rss_kib(pid)?;
    let cpu0 = procfs::cpu_time(pid)?;
    let overflows0 = procfs::listen_overflows();
    let mut plan = StreamPlan::new(n, channels("idle", 10), version);
    plan.per_conn = per_conn;
    let set = s.hold(plan).await;
    let cpu1 = procfs::cpu_time(pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procfs::rss_kib(pid)?;
    let connected = set.live.connected.load(Ordering::Relaxed);
    let errors = set.live.errors();
    set.stop().await;
    let mut note = overflow_note(overflows0);
    if connected < n {
        note.push_str(&format!(
            "only {connected} of {n} streams connected ({})",
            errors.join("; ")
        ));
    }
    if connected == 0 {
        return Ok((None, None, note));
    }
    let c = connected as f64;
    let rss = rss1.saturating_sub(rss0) as f64 / c;
    let cpu = (cpu1.saturating_sub(cpu0)).as_secs_f64() * 1e6 / c;
    Ok((Some(rss), Some(cpu), note))
}
