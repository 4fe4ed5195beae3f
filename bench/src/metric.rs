//! One measured figure: a line of `results.jsonl`, and what the report is built from.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One measured figure of one repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    pub server: String,
    pub scenario: String,
    pub metric: String,
    pub rep: usize,
    /// `None`: not applicable to this server (or the scenario could not measure it).
    pub value: Option<f64>,
    pub unit: String,
    /// Whether smaller is better (for ratios and goals).
    pub lower_is_better: bool,
    #[serde(default)]
    pub note: String,
}

impl Metric {
    /// Reads the figures of a `results.jsonl` file, one JSON object per line.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or a line is not a figure.
    pub fn read_jsonl(path: &Path) -> Result<Vec<Metric>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} line {}: not a figure", path.display(), i + 1))
            })
            .collect()
    }
}
