//! Turns the raw figures of all repetitions into `BENCHMARKS.md` and an SVG chart.
//!
//! [`Table`] groups the figures; [`markdown`] writes the report (with the performance goals
//! checked against the medians), [`svg`] draws the chart, and [`write()`] does both to files.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::metric::Metric;
use crate::server::ServerSpec;

mod chart;
mod goals;
mod info;
mod markdown;
mod table;

pub use chart::svg;
pub use info::RunInfo;
pub use markdown::markdown;
pub use table::{Cell, Row, Stats, Table};

/// Where the report goes.
#[derive(Debug, Clone)]
pub struct Output {
    /// The Markdown report (`BENCHMARKS.md`).
    pub markdown: PathBuf,
    /// The SVG chart, if one is wanted.
    pub svg: Option<PathBuf>,
    /// How the Markdown links to the chart (default: the chart's path).
    pub svg_link: Option<String>,
}

/// Writes the report of `metrics` (and the chart, when `out` asks for one).
///
/// # Errors
///
/// When a file cannot be written or the chart cannot be drawn.
pub fn write(
    metrics: &[Metric],
    specs: &[ServerSpec],
    info: &RunInfo,
    out: &Output,
    failures: &[String],
) -> Result<()> {
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let table = Table::build(metrics, &names);
    let mut link = None;
    if let Some(path) = &out.svg {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        svg(&table, path)?;
        link = Some(
            out.svg_link
                .clone()
                .unwrap_or_else(|| path.display().to_string()),
        );
    }
    let md = markdown(&table, specs, info, link.as_deref(), failures);
    std::fs::write(&out.markdown, md)
        .with_context(|| format!("write {}", out.markdown.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(server: &str, metric: &str, value: Option<f64>) -> Metric {
        Metric {
            server: server.into(),
            scenario: if metric.starts_with("mem") {
                "idle"
            } else {
                "load"
            }
            .into(),
            metric: metric.into(),
            rep: 0,
            value,
            unit: "x".into(),
            lower_is_better: true,
            note: String::new(),
        }
    }

    #[test]
    fn report_and_chart_render() {
        let servers = ["a".to_string(), "b axum".to_string()];
        let mut metrics = Vec::new();
        for (s, f) in [("a", 1.0), ("b axum", 2.0)] {
            for m in [
                "latency_p50",
                "latency_p99",
                "latency_p999",
                "mem_h1_1000",
                "cpu_per_event",
            ] {
                metrics.push(metric(s, m, Some(f)));
            }
        }
        metrics.push(metric("b axum", "mem_h2_1000", None));
        let specs: Vec<ServerSpec> = servers
            .iter()
            .map(|s| ServerSpec {
                name: s.clone(),
                product: s == "a",
                cmd: vec![],
                h2: "h2c".into(),
                tls_cmd: None,
                cwd: None,
                version: String::new(),
                scenarios: None,
            })
            .collect();
        let info = RunInfo {
            date: "today".into(),
            machine: vec![],
            versions: vec![],
            command: "x".into(),
            reps: 1,
            smoke: true,
            pinned: false,
        };
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        let out = Output {
            markdown: dir.join("BENCHMARKS.md"),
            svg: Some(dir.join("chart/c.svg")),
            svg_link: Some("c.svg".into()),
        };
        std::fs::create_dir_all(&dir).expect("dir");
        write(&metrics, &specs, &info, &out, &[]).expect("write the report");
        let md = std::fs::read_to_string(&out.markdown).expect("read the report");
        assert!(
            md.contains("| idle memory per stream ≤ 0.5× axum | 0.50× | yes |"),
            "{md}"
        );
        assert!(md.contains("n/a"));
        assert!(md.contains("![latency percentiles and memory per stream](c.svg)"));
        let text = std::fs::read_to_string(dir.join("chart/c.svg")).expect("read svg");
        assert!(text.contains("<svg") && text.contains("p99.9"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
