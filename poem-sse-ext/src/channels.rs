//! A map from channel name to per-channel state, created on first use up to a cap.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::store::StoreError;

/// Channel name → `Arc<T>`, with at most `cap` entries. Reads take the read lock only; a new
/// channel takes the write lock once. Entries live as long as the map (each is small and bounded
/// by its own retention), so the cap is what bounds a client that asks for many names.
pub(crate) struct ChannelMap<T> {
    map: RwLock<HashMap<Box<str>, Arc<T>>>,
    cap: usize,
}

impl<T> ChannelMap<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            cap,
        }
    }

    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// The entry of `name`, made by `make` if there is none yet.
    ///
    /// # Errors
    /// [`StoreError::TooManyChannels`] when a new entry would exceed the cap.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        make: impl FnOnce() -> Arc<T>,
    ) -> Result<Arc<T>, StoreError> {
        // A poisoned lock only means a panic elsewhere while it was held; the map itself is
        // consistent between statements, so keep serving.
        if let Some(entry) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(Arc::clone(entry));
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get(name) {
            return Ok(Arc::clone(entry));
        }
        if map.len() >= self.cap {
            return Err(StoreError::TooManyChannels(self.cap));
        }
        let entry = make();
        map.insert(name.into(), Arc::clone(&entry));
        Ok(entry)
    }

    /// `f` applied to every entry, under the read lock.
    pub(crate) fn map_each<R>(&self, mut f: impl FnMut(&str, &T) -> R) -> Vec<R> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, entry)| f(name, entry))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_enforces_the_cap() {
        let map = ChannelMap::<u32>::new(1);
        let first = map.get_or_create("a", || Arc::new(1));
        let again = map.get_or_create("a", || Arc::new(2));
        assert_eq!(first.ok().as_deref(), Some(&1));
        assert_eq!(again.ok().as_deref(), Some(&1), "made once");
        assert_eq!(
            map.get_or_create("b", || Arc::new(3)).err(),
            Some(StoreError::TooManyChannels(1))
        );
    }
}
