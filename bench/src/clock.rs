//! One monotonic clock shared by the publisher (which stamps events) and the streams (which
//! receive them): both live in the load generator's process, so no clock sync is involved.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the first call in this process.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}
