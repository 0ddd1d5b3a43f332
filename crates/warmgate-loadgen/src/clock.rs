//! One clock for a run: monotonic instants for durations, and the wall
//! time (milliseconds since the Unix epoch) that the harness compares with
//! the instants at which it injected faults.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The run's start, as an instant and as wall time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    started: Instant,
    started_unix_ms: f64,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64() * 1e3);
        Clock {
            started: Instant::now(),
            started_unix_ms,
        }
    }

    /// The wall time of `at`, in milliseconds since the Unix epoch, derived
    /// from the monotonic clock so that two instants never swap order.
    pub(crate) fn unix_ms(&self, at: Instant) -> f64 {
        let offset = if at >= self.started {
            (at - self.started).as_secs_f64() * 1e3
        } else {
            -((self.started - at).as_secs_f64() * 1e3)
        };
        (self.started_unix_ms + offset).round()
    }

    pub(crate) fn now_ms(&self) -> f64 {
        self.unix_ms(Instant::now())
    }

    pub(crate) fn started_unix_ms(&self) -> f64 {
        self.started_unix_ms.round()
    }
}
