//! The SVG chart: latency percentiles of the load scenario and idle memory per stream.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::table::Table;

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
