//! Delays before the next attempt of a check that is not passing, in the
//! two regimes the machine's [`warmgate_core::Cadence`] names.
//!
//! - Before the gate has been ready once ([`retry_delay`]): exponential from
//!   10 ms, capped at the engine's short `retry_cap`, jittered into the upper
//!   half, so start-up notices a dependency within a tenth of a second.
//! - After it ([`backoff_delay`]): "full jitter", a delay drawn uniformly
//!   from zero to the nominal delay, which doubles from 10 ms up to the
//!   check's `backoff_cap`. Once the nominal delay has reached the cap the
//!   mean delay is `backoff_cap / 2`; with the default cap of twice the
//!   check's interval, a broken dependency gets on average at most one
//!   attempt per interval from each instance (fewer, since each attempt's
//!   own duration adds to the wait), and the uniform draw spreads the
//!   attempts of many instances evenly instead of in waves.
//!
//! Scheduling is the runner's business; this module only computes delays.

use std::time::Duration;

/// The first retry delay, in both regimes.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(10);

/// The nominal delay before retry number `consecutive_failures` (1 for the
/// first retry after one failure): [`FIRST_RETRY`] doubled once per failure
/// after the first, never more than `cap`.
fn nominal_delay(consecutive_failures: u32, cap: Duration) -> Duration {
    let exponent = consecutive_failures.saturating_sub(1).min(20);
    FIRST_RETRY.saturating_mul(1 << exponent).min(cap)
}

/// A delay drawn uniformly from `[low, high]`.
fn uniform(low: Duration, high: Duration) -> Duration {
    let span = high.saturating_sub(low);
    let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    low + Duration::from_nanos(fastrand::u64(0..=span_nanos))
}

/// The fast delay of start-up, before the gate has been ready once: the
/// nominal delay jittered into its upper half, `[nominal / 2, nominal]`.
/// Keeping the jitter below the nominal value means a retry never waits
/// longer than `cap` (the `retry_cap`, 100 ms by default).
pub(crate) fn retry_delay(consecutive_failures: u32, cap: Duration) -> Duration {
    let nominal = nominal_delay(consecutive_failures, cap);
    uniform(nominal / 2, nominal)
}

/// The delay after the gate has been ready once: full jitter,
/// `uniform(0, min(cap, 10 ms × 2^(consecutive_failures - 1)))`. Never more
/// than `cap` (the check's `backoff_cap`); at the cap, `cap / 2` on average.
pub(crate) fn backoff_delay(consecutive_failures: u32, cap: Duration) -> Duration {
    uniform(Duration::ZERO, nominal_delay(consecutive_failures, cap))
}
