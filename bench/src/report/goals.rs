//! The performance goals (idle memory, CPU per event and p99 latency against the peers; the
//! reconnect storm and shutdown against a time limit), each checked against the measured medians.

use std::fmt::Write as _;

use super::table::Table;

/// Appends the goals table: product ÷ peer ratios and absolute times against their limits.
pub(super) fn goals(md: &mut String, table: &Table, product: &str) {
    let find = |needle: &str| {
        table
            .servers
            .iter()
            .find(|s| !s.starts_with(product) && s.to_lowercase().contains(needle))
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
        "\n## Performance goals\n\n| goal | measured | met |\n|---|---|---|"
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
