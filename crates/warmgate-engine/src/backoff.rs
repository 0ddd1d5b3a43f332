//! Retry delays for checks that are not passing: exponential from 10 ms,
//! capped, with jitter so many checks never retry in lockstep.

use std::time::Duration;

/// The first retry delay.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(10);

/// The delay before retry number `consecutive_failures` (1 for the first
/// retry after one failure), jittered into the upper half of the nominal
/// delay: `[nominal / 2, nominal]`, where the nominal delay doubles from
/// [`FIRST_RETRY`] and never exceeds `cap`. Keeping the jitter below the
/// nominal value means a retry never waits longer than `cap`.
pub(crate) fn retry_delay(consecutive_failures: u32, cap: Duration) -> Duration {
    let exponent = consecutive_failures.saturating_sub(1).min(20);
    let nominal = FIRST_RETRY.saturating_mul(1 << exponent).min(cap);
    let half = nominal / 2;
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
}
