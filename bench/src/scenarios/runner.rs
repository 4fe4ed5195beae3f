//! The frame every scenario runs in: a fresh server and the target aimed at it, streams held
//! open against it, figures collected, and the server stopped again whatever the measurement
//! did.

use std::sync::Arc;

use anyhow::Result;

use super::scale::Scale;
use crate::integrity::Integrity;
use crate::metric::Metric;
use crate::net::Target;
use crate::procfs;
use crate::server::{Launcher, Running, ServerSpec};
use crate::streams::{StreamPlan, StreamSet};

/// What a scenario needs.
pub struct Ctx {
    pub launcher: Launcher,
    pub scale: Scale,
}

/// A server started for one measurement.
pub struct Session {
    pub server: Running,
    pub target: Arc<Target>,
}

impl Ctx {
    /// Starts `spec` (its TLS variant when `tls`), runs `measure` against it and stops it
    /// again, also when `measure` fails.
    ///
    /// # Errors
    ///
    /// When the server does not start, or `measure` fails.
    pub async fn with_server<T>(
        &self,
        spec: &ServerSpec,
        tls: bool,
        measure: impl AsyncFnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        let server = self.launcher.start(spec, tls).await?;
        let target = match Target::parse(&server.base, None, self.scale.sources) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                server.stop().await;
                return Err(e);
            }
        };
        let mut session = Session { server, target };
        let result = measure(&mut session).await;
        session.server.stop().await;
        result
    }
}

impl Session {
    /// Opens the streams of `plan` and waits until each is connected or failed.
    pub async fn hold(&self, plan: StreamPlan) -> StreamSet {
        let set = StreamSet::start(&self.target, &Arc::new(plan));
        set.wait_settled().await;
        set
    }
}

/// A scenario's figures and its integrity check (when it delivered events).
#[derive(Default)]
pub struct Outcome {
    pub metrics: Vec<Metric>,
    pub integrity: Integrity,
    /// Errors that make the run a failure (not n/a: something broke).
    pub errors: Vec<String>,
}

impl Outcome {
    /// Records a figure; the driver fills in the server and the repetition.
    pub fn push(
        &mut self,
        scenario: &str,
        metric: &str,
        value: Option<f64>,
        unit: &str,
        lower_is_better: bool,
        note: impl Into<String>,
    ) {
        self.metrics.push(Metric {
            server: String::new(),
            scenario: scenario.into(),
            metric: metric.into(),
            rep: 0,
            value,
            unit: unit.into(),
            lower_is_better,
            note: note.into(),
        });
    }
}

/// `n` channel names (at least one): `prefix-0`, `prefix-1`, ...
pub fn channels(prefix: &str, n: usize) -> Vec<String> {
    (0..n.max(1)).map(|i| format!("{prefix}-{i}")).collect()
}

/// A note on accept-queue overflows since `before`, or nothing.
pub fn overflow_note(before: Option<u64>) -> String {
    match (before, procfs::listen_overflows()) {
        (Some(a), Some(b)) if b > a => format!(
            "{} handshakes overflowed the accept queue (dropped by the kernel, retried by the client); ",
            b - a
        ),
        _ => String::new(),
    }
}
