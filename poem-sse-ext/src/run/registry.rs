//! The runs this process holds: at most `max_runs`, running or ended and still readable.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{error::RunError, handle::Run, id::RunId};

/// Run id → [`Run`], with at most `max_runs` entries.
pub(crate) struct Registry {
    runs: Mutex<HashMap<RunId, Arc<Run>>>,
    max_runs: usize,
}

impl Registry {
    pub(crate) fn new(max_runs: usize) -> Self {
        Self {
            runs: Mutex::default(),
            max_runs,
        }
    }

    /// Takes a place for `run`. When the registry is full, the run that ended first gives its
    /// place up before its time to live is over, and is returned to be retired; running runs are
    /// never pushed out.
    ///
    /// # Errors
    /// [`RunError::TooManyRuns`] when every run held is still running.
    pub(crate) fn admit(&self, run: &Arc<Run>) -> Result<Option<Arc<Run>>, RunError> {
        let mut runs = self.lock();
        let mut evicted = None;
        if runs.len() >= self.max_runs {
            let first_ended = runs
                .values()
                .filter_map(|held| held.ended().map(|ended| (ended.at, held.id.clone())))
                .min_by_key(|(at, _)| *at);
            let Some((_, id)) = first_ended else {
                return Err(RunError::TooManyRuns {
                    limit: self.max_runs,
                });
            };
            evicted = runs.remove(&id);
        }
        runs.insert(run.id.clone(), Arc::clone(run));
        Ok(evicted)
    }

    pub(crate) fn get(&self, id: &RunId) -> Option<Arc<Run>> {
        self.lock().get(id).cloned()
    }

    /// Removes `run`, if it is still held (it may have given its place up already).
    pub(crate) fn remove(&self, run: &Arc<Run>) -> bool {
        let mut runs = self.lock();
        let held = runs.get(&run.id).is_some_and(|held| Arc::ptr_eq(held, run));
        if held {
            runs.remove(&run.id);
        }
        held
    }

    /// Runs held: running, or ended within their time to live.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Runs held that are still running.
    pub(crate) fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|run| run.ended().is_none())
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Arc<Run>>> {
        crate::sync::lock(&self.runs)
    }
}
