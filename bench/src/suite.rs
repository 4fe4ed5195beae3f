//! The benchmark suite: every scenario against every server, repeated. Servers take turns
//! within a repetition, so slow drift of the machine hits all alike. Each figure goes to the
//! raw file (`results.jsonl`) as soon as it is measured; the report is written at the end.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::metric::Metric;
use crate::report::{self, RunInfo};
use crate::scenarios::{self, Ctx, Scale};
use crate::server::{load_specs, Launcher};

/// What to run and where its results go.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The servers file (JSON list of [`crate::server::ServerSpec`]).
    pub servers: PathBuf,
    /// Small sizes: the CI check.
    pub smoke: bool,
    pub reps: usize,
    /// Scenario names in run order (default: [`scenarios::ALL`]).
    pub scenarios: Option<Vec<String>>,
    /// CPU each server is pinned to with `taskset`.
    pub pin_server: Option<usize>,
    pub report: report::Output,
    /// Raw figures, one JSON object per line.
    pub raw: PathBuf,
    /// Where each server's output goes.
    pub log_dir: PathBuf,
    /// The command shown in the report as the way to reproduce it.
    pub command: String,
    /// The open-file limit of this process (for the report's header).
    pub nofile: u64,
    /// Extra lines for the report's header (for example why a peer was skipped).
    pub notes: Vec<String>,
}

impl Suite {
    /// Runs the suite, writes the raw figures and the report. Returns whether every scenario
    /// ran cleanly (every event delivered once and in order, no scenario error).
    ///
    /// # Errors
    ///
    /// When the servers file cannot be read or a result file cannot be written; a server that
    /// fails a scenario is a failure in the report, not an error.
    pub async fn run(&self) -> Result<bool> {
        let specs = load_specs(&self.servers)?;
        let scale = if self.smoke {
            Scale::smoke()
        } else {
            Scale::full()
        };
        let list: Vec<String> = match &self.scenarios {
            Some(list) => list.clone(),
            None => scenarios::ALL.iter().map(|s| s.to_string()).collect(),
        };
        let ctx = Ctx {
            launcher: Launcher {
                pin: self.pin_server,
                log_dir: self.log_dir.clone(),
            },
            scale,
        };
        if let Some(dir) = self.raw.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut raw = std::fs::File::create(&self.raw)
            .with_context(|| format!("create {}", self.raw.display()))?;
        let mut metrics: Vec<Metric> = Vec::new();
        let mut failures = Vec::new();
        let started = Instant::now();
        for rep in 0..self.reps {
            for spec in &specs {
                for scenario in &list {
                    if spec
                        .scenarios
                        .as_ref()
                        .is_some_and(|only| !only.contains(scenario))
                    {
                        continue;
                    }
                    let t = Instant::now();
                    let out = scenarios::run(&ctx, spec, scenario).await;
                    eprintln!(
                        "[{:>6.1}s] rep {} {:<24} {:<9} {:>5.1}s {}",
                        started.elapsed().as_secs_f64(),
                        rep + 1,
                        spec.name,
                        scenario,
                        t.elapsed().as_secs_f64(),
                        out.metrics
                            .iter()
                            .map(|m| format!(
                                "{}={}",
                                m.metric,
                                m.value.map_or("n/a".into(), |v| format!("{v:.3}"))
                            ))
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    if !out.integrity.is_clean() {
                        failures.push(format!(
                            "{} / {scenario} / rep {}: {}",
                            spec.name,
                            rep + 1,
                            out.integrity.summary()
                        ));
                    }
                    for e in &out.errors {
                        failures.push(format!("{} / rep {}: {e}", spec.name, rep + 1));
                    }
                    for mut m in out.metrics {
                        m.rep = rep;
                        writeln!(raw, "{}", serde_json::to_string(&m)?)?;
                        metrics.push(m);
                    }
                }
            }
        }
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        let mut info = RunInfo::collect(self.reps, self.smoke, &self.command, self.nofile);
        info.pinned = self.pin_server.is_some();
        info.versions.extend(self.notes.iter().cloned());
        report::write(&metrics, &specs, &info, &self.report, &failures)?;
        eprintln!(
            "wrote {} ({} figures, {} failures) in {:.0} s",
            self.report.markdown.display(),
            metrics.len(),
            failures.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(failures.is_empty())
    }
}
