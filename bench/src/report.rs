//! Turns the raw figures of all repetitions into `BENCHMARKS.md` and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::scenarios::Metric;
use crate::server::ServerSpec;

/// Min, median and max of the repetitions that measured a figure.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Self {
            min: v[0],
            median,
            max: v[v.len() - 1],
            n: v.len(),
        })
    }
}

/// Figures grouped by (scenario, metric) in first-seen order, then by server.
pub struct Table {
    pub rows: Vec<Row>,
    pub servers: Vec<String>,
}

pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    pub lower_is_better: bool,
    pub cells: BTreeMap<String, Cell>,
}

#[derive(Default)]
pub struct Cell {
    pub values: Vec<f64>,
    pub notes: Vec<String>,
    pub reps: usize,
}

impl Table {
    pub fn build(metrics: &[Metric], servers: &[String]) -> Self {
        let mut rows: Vec<Row> = Vec::new();
        for m in metrics {
            let i = match rows
                .iter()
                .position(|r| r.scenario == m.scenario && r.metric == m.metric)
            {
                Some(i) => i,
                None => {
                    rows.push(Row {
                        scenario: m.scenario.clone(),
                        metric: m.metric.clone(),
                        unit: m.unit.clone(),
                        lower_is_better: m.lower_is_better,
                        cells: BTreeMap::new(),
                    });
                    rows.len() - 1
                }
            };
            let cell = rows[i].cells.entry(m.server.clone()).or_default();
            cell.reps += 1;
            if let Some(v) = m.value {
                cell.values.push(v);
            }
            if !m.note.is_empty() && !cell.notes.contains(&m.note) && cell.notes.len() < 3 {
                cell.notes.push(m.note.clone());
            }
        }
        Self {
            rows,
            servers: servers.to_vec(),
        }
    }

    pub fn stats(&self, scenario: &str, metric: &str, server: &str) -> Option<Stats> {
        self.rows
            .iter()
            .find(|r| r.scenario == scenario && r.metric == metric)
            .and_then(|r| r.cells.get(server))
            .and_then(|c| Stats::of(&c.values))
    }
}

/// Facts about the run for the report's header.
pub struct RunInfo {
    pub date: String,
    pub machine: Vec<String>,
    pub versions: Vec<String>,
    pub command: String,
    pub reps: usize,
    pub smoke: bool,
    /// Whether servers and generator were pinned to separate cores.
    pub pinned: bool,
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}", v)
    } else if a >= 100.0 {
        format!("{:.1}", v)
    } else if a >= 1.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    }
}

fn describe(scenario: &str, metric: &str) -> String {
    let m = metric;
    let s = match (scenario, m) {
        ("load", "cpu_per_event") => "server CPU per delivered event",
        ("load", "latency_p50") => "latency publish→receive p50",
        ("load", "latency_p99") => "latency publish→receive p99",
        ("load", "latency_p999") => "latency publish→receive p99.9",
        ("load", "delivered") => "events delivered",
        ("load", "publish_offered") => "publish rate offered",
        ("load", "publish_achieved") => "publish rate achieved",
        ("load", "delivery_rate") => "delivery rate achieved",
        ("load", "generator_cpu") => "load generator CPU",
        ("maxrate", _) => "highest delivery rate with ≥ 99.9 % delivered",
        ("storm", _) => "reconnect storm: time until all caught up",
        ("shutdown", _) => "SIGTERM → process exit",
        ("cleanup", _) => "vanished clients no longer counted",
        _ => "",
    };
    if !s.is_empty() {
        return s.into();
    }
    // idle: mem_h1_1000, setup_cpu_h2_10000
    let parts: Vec<&str> = m.rsplitn(3, '_').collect();
    if let [n, proto, kind] = parts[..] {
        let proto = if proto == "h1" { "HTTP/1.1" } else { "HTTP/2" };
        let n: f64 = n.parse().unwrap_or(0.0);
        let kind = if kind == "mem" {
            "idle RSS per stream"
        } else {
            "setup CPU per stream"
        };
        return format!("{kind}, {proto}, {} streams", fmt_thousands(n));
    }
    m.into()
}

fn fmt_thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Writes the Markdown report.
pub fn markdown(
    table: &Table,
    specs: &[ServerSpec],
    info: &RunInfo,
    chart: Option<&str>,
    failures: &[String],
) -> String {
    let mut md = String::new();
    let product = specs.iter().find(|s| s.product).map(|s| s.name.clone());
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `bench/` on {}{}. Do not edit by hand: rerun `{}`.\n",
        info.date,
        if info.smoke {
            " (**smoke run**: small sizes, one repetition; not for comparison)"
        } else {
            ""
        },
        info.command
    );
    let _ = writeln!(md, "## Machine and versions\n");
    for l in info.machine.iter().chain(&info.versions) {
        let _ = writeln!(md, "- {l}");
    }
    for s in specs {
        let _ = writeln!(
            md,
            "- {}: {}",
            s.name,
            if s.version.is_empty() {
                "(version not given)"
            } else {
                &s.version
            }
        );
    }
    let _ = writeln!(
        md,
        "\nEach server runs alone{}. Every scenario starts a fresh server. Cells show the **median** \
         of {} repetition(s) with (min–max); n/a means the server does not have the feature measured.\n",
        if info.pinned {
            ", pinned to core 0 with `taskset`; the load generator (`sse-bench`, tokio + hyper) runs \
             on core 1. Before each scenario the driver waits for the machine to be quiet"
        } else {
            "; server and load generator (`sse-bench`, tokio + hyper) were not pinned to cores"
        },
        info.reps
    );
    let _ = writeln!(md, "## Results\n");
    let _ = write!(md, "| figure | unit |");
    for s in &table.servers {
        let _ = write!(md, " {s} |");
    }
    let _ = write!(md, "\n|---|---|");
    for _ in &table.servers {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for r in &table.rows {
        let _ = write!(md, "| {} | {} |", describe(&r.scenario, &r.metric), r.unit);
        for s in &table.servers {
            let cell = match r.cells.get(s).and_then(|c| Stats::of(&c.values)) {
                Some(st) if st.n > 1 => format!(
                    "**{}** ({}–{})",
                    fmt_num(st.median),
                    fmt_num(st.min),
                    fmt_num(st.max)
                ),
                Some(st) => format!("**{}**", fmt_num(st.median)),
                None if r.cells.contains_key(s) => "n/a".into(),
                None => "–".into(),
            };
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    if let Some(product) = &product {
        let peers: Vec<&String> = table.servers.iter().filter(|s| *s != product).collect();
        if !peers.is_empty() {
            let _ = writeln!(md, "\n## Ratios\n");
            let _ = writeln!(
                md,
                "{product} ÷ peer, on medians. Below 1 is better for costs and times; above 1 is better for rates.\n"
            );
            let _ = write!(md, "| figure |");
            for p in &peers {
                let _ = write!(md, " vs {p} |");
            }
            let _ = write!(md, "\n|---|");
            for _ in &peers {
                let _ = write!(md, "---|");
            }
            md.push('\n');
            for r in &table.rows {
                if matches!(
                    r.metric.as_str(),
                    "delivered"
                        | "publish_offered"
                        | "publish_achieved"
                        | "generator_cpu"
                        | "delivery_rate"
                ) {
                    continue;
                }
                let _ = write!(md, "| {} |", describe(&r.scenario, &r.metric));
                let mine = table.stats(&r.scenario, &r.metric, product);
                for p in &peers {
                    let theirs = table.stats(&r.scenario, &r.metric, p);
                    let cell = match (mine, theirs) {
                        (Some(a), Some(b)) if b.median > 0.0 => {
                            format!("{:.2}×", a.median / b.median)
                        }
                        _ => "n/a".into(),
                    };
                    let _ = write!(md, " {cell} |");
                }
                md.push('\n');
            }
            goals(&mut md, table, product);
        }
    }
    if let Some(chart) = chart {
        let _ = writeln!(
            md,
            "\n## Chart\n\n![latency percentiles and memory per stream]({chart})\n"
        );
    }
    let _ = writeln!(md, "\n## Notes per figure\n");
    for r in &table.rows {
        for s in &table.servers {
            if let Some(c) = r.cells.get(s) {
                for n in &c.notes {
                    let n: String = n.chars().take(300).collect();
                    let _ = writeln!(md, "- {s}, {}: {n}", describe(&r.scenario, &r.metric));
                }
            }
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failures\n");
        for f in failures {
            let _ = writeln!(md, "- {f}");
        }
    }
    let _ = writeln!(
        md,
        "\n## Method\n\n\
         - Idle memory: VmRSS of the server from `/proc/PID/status` with N streams open, minus the \
         figure before the first one, over N (10 channels). HTTP/2 carries 100 streams per \
         connection (h2c by prior knowledge for the peers; over TLS where the server only speaks h2 \
         there).\n\
         - Setup CPU: the server's CPU time (sum of its threads' `schedstat` run time, ns resolution; \
         `/proc/PID/stat` utime + stime where that is missing) spent while the N streams connect.\n\
         - Load: 2,000 HTTP/1.1 streams on 10 channels, 5 events/s per channel (10,000 deliveries/s); \
         each event carries its channel, sequence number and send time, and every stream checks \
         gaps, duplicates and reorders. CPU per event is the server's CPU during publishing and \
         drain over the events delivered.\n\
         - Max rate: 1,000 streams on one channel; the offered rate doubles until a step loses more \
         than 0.1 %, misses its offered rate by 5 %, or does not drain within 1 s, then bisects.\n\
         - Storm: 10,000 streams connect, get one event, go away; 100 events per channel are \
         published; all reconnect at once with `Last-Event-ID` and the time runs until every stream \
         has the 100th event.\n\
         - Shutdown: SIGTERM with 10,000 open streams; time until the process has exited (killed \
         after 20 s). Peers use their framework's graceful shutdown with a 10 s grace period.\n\
         - Cleanup: 1,000 streams close their sockets; time until `open_streams` of \
         `GET /api/hub/metrics` is back to its earlier value."
    );
    md
}

fn goals(md: &mut String, table: &Table, product: &str) {
    let find = |needle: &str| {
        table
            .servers
            .iter()
            .find(|s| *s != product && s.to_lowercase().contains(needle))
            .cloned()
    };
    let axum = find("axum");
    let poem = find("poem");
    let mem_metric = table
        .rows
        .iter()
        .filter(|r| r.scenario == "idle" && r.metric.starts_with("mem_h1_"))
        .max_by_key(|r| {
            r.metric
                .rsplit('_')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .map(|r| r.metric.clone());
    let ratio = |scenario: &str, metric: &str, peer: &Option<String>| -> Option<f64> {
        let a = table.stats(scenario, metric, product)?;
        let b = table.stats(scenario, metric, peer.as_ref()?)?;
        (b.median > 0.0).then(|| a.median / b.median)
    };
    let abs =
        |scenario: &str, metric: &str| table.stats(scenario, metric, product).map(|s| s.median);
    let mut lines: Vec<(String, Option<f64>, f64, &str)> = Vec::new();
    if let Some(m) = &mem_metric {
        lines.push((
            "idle memory per stream ≤ 0.5× axum".into(),
            ratio("idle", m, &axum),
            0.5,
            "×",
        ));
    }
    lines.push((
        "CPU per delivered event ≤ 0.8× axum".into(),
        ratio("load", "cpu_per_event", &axum),
        0.8,
        "×",
    ));
    lines.push((
        "CPU per delivered event ≤ 0.6× poem SSE".into(),
        ratio("load", "cpu_per_event", &poem),
        0.6,
        "×",
    ));
    lines.push((
        "p99 latency ≤ 0.8× axum".into(),
        ratio("load", "latency_p99", &axum),
        0.8,
        "×",
    ));
    lines.push((
        "reconnect storm ≤ 3 s".into(),
        abs("storm", "catch_up"),
        3.0,
        " s",
    ));
    lines.push((
        "shutdown ≤ 1 s".into(),
        abs("shutdown", "exit_time"),
        1.0,
        " s",
    ));
    let _ = writeln!(
        md,
        "\n## Goals of issue 5\n\n| goal | measured | met |\n|---|---|---|"
    );
    for (goal, v, limit, unit) in lines {
        let (measured, met) = match v {
            Some(v) => (
                format!("{v:.2}{unit}"),
                if v <= limit { "yes" } else { "**no**" },
            ),
            None => ("n/a".into(), "–"),
        };
        let _ = writeln!(md, "| {goal} | {measured} | {met} |");
    }
}

/// Draws latency percentiles (load scenario) and idle memory per stream, one bar group per
/// server. Text is drawn by the SVG viewer: no font files are needed here.
pub fn svg(table: &Table, path: &Path) -> Result<()> {
    let servers = &table.servers;
    let lat: Vec<(&str, &str)> = vec![
        ("latency_p50", "p50"),
        ("latency_p99", "p99"),
        ("latency_p999", "p99.9"),
    ];
    let mut mem: Vec<(String, String)> = table
        .rows
        .iter()
        .filter(|r| r.scenario == "idle" && r.metric.starts_with("mem_"))
        .map(|r| {
            let parts: Vec<&str> = r.metric.split('_').collect();
            let label = match parts[..] {
                [_, p, n] => format!("{} {}", if p == "h1" { "HTTP/1.1" } else { "HTTP/2" }, n),
                _ => r.metric.clone(),
            };
            (r.metric.clone(), label)
        })
        .collect();
    mem.dedup();
    let root = SVGBackend::new(path, (1100, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(450);
    let lat_series: Vec<(String, String)> = lat
        .iter()
        .map(|(m, l)| (m.to_string(), l.to_string()))
        .collect();
    bars(
        &top,
        table,
        servers,
        "load",
        &lat_series,
        "Latency publish → receive, 2,000 streams × 5 events/s (ms, median)",
    )?;
    bars(
        &bottom,
        table,
        servers,
        "idle",
        &mem,
        "Idle memory per stream (KiB RSS, median)",
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    table: &Table,
    servers: &[String],
    scenario: &str,
    series: &[(String, String)],
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let values: Vec<Vec<Option<f64>>> = series
        .iter()
        .map(|(m, _)| {
            servers
                .iter()
                .map(|s| table.stats(scenario, m, s).map(|st| st.median))
                .collect()
        })
        .collect();
    let ymax = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.4;
    let n = servers.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..ymax)
        .map_err(|e| anyhow!("{e}"))?;
    let names = servers.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(servers.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let k = series.len().max(1) as f64;
    for (si, (_, label)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        let rects: Vec<Rectangle<(f64, f64)>> = values[si]
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v)?;
                let x0 = i as f64 + 0.1 + 0.8 * si as f64 / k;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + 0.8 / k * 0.9, v)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|e| anyhow!("{e}"))?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
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
    fn stats_take_the_median() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).expect("stats");
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Stats::of(&[1.0, 3.0]).expect("stats").median, 2.0);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn report_and_chart_render() {
        let servers = vec!["a".to_string(), "b axum".to_string()];
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
        let table = Table::build(&metrics, &servers);
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
        let md = markdown(&table, &specs, &info, Some("c.svg"), &[]);
        assert!(
            md.contains("| idle memory per stream ≤ 0.5× axum | 0.50× | yes |"),
            "{md}"
        );
        assert!(md.contains("n/a"));
        let dir = std::env::temp_dir().join(format!("bench-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.svg");
        svg(&table, &path).expect("svg");
        let text = std::fs::read_to_string(&path).expect("read svg");
        assert!(text.contains("<svg") && text.contains("p99.9"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
