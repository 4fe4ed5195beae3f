//! The raw figures of all repetitions grouped into rows (scenario, figure) and cells (server),
//! with the min, median and max of each cell.

use std::collections::BTreeMap;

use crate::metric::Metric;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_median() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).expect("stats");
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Stats::of(&[1.0, 3.0]).expect("stats").median, 2.0);
        assert!(Stats::of(&[]).is_none());
    }
}
