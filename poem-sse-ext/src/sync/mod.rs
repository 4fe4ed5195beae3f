//! The concurrency primitives under every layer: wakers of many waiting tasks, the one-shot
//! trigger that ends streams on shutdown or revocation, the clock that times every stream's
//! heartbeat, and lock-poison recovery.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) mod clock;
pub(crate) mod shutdown;
pub(crate) mod waiters;

/// Locks `mutex`, also after a panic elsewhere poisoned it: every lock of the crate guards state
/// that is consistent between statements, so a panic in one task must not stop every stream.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for the read side of an `RwLock`.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`] for the write side of an `RwLock`.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
