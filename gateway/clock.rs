//! The wall clock, read in one place (certificate expiry, token times, metrics).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, for expiry checks.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
