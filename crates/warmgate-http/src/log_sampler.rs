//! Keeps a flood of like events from flooding the log: of each kind, the
//! first in a window is logged, with how many of its kind were left out
//! since the last line; the rest are only counted (their metrics count
//! every one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often one kind of refusal may be logged.
pub const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LogSampler {
    window: Duration,
    kinds: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    left_out: u64,
}

impl LogSampler {
    pub fn new(window: Duration) -> LogSampler {
        LogSampler {
            window,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an event of `kind` at `now` is logged: `Some(n)` when it is,
    /// `n` being how many of its kind were left out since the last logged
    /// one; `None` when it is left out.
    pub fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match kinds.get_mut(kind) {
            Some(window) if now.duration_since(window.started) < self.window => {
                window.left_out += 1;
                None
            }
            Some(window) => {
                let left_out = window.left_out;
                *window = Window {
                    started: now,
                    left_out: 0,
                };
                Some(left_out)
            }
            None => {
                kinds.insert(
                    kind,
                    Window {
                        started: now,
                        left_out: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests;
