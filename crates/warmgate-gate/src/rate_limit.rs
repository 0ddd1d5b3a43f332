//! The per-connection message limit: a token bucket.
//!
//! Written out rather than taken from a crate because it is a dozen lines
//! per connection with no sharing, and it must run on tokio's clock so that
//! tests can pause time.

use std::time::Duration;

use tokio::time::Instant;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Refuse it and tell the client.
    Refuse,
    /// The client kept sending a whole burst past the limit: close.
    Close,
}

/// A bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct MessageRateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    /// Messages refused since the last one allowed.
    refused_in_a_row: usize,
}

impl MessageRateLimit {
    pub(crate) fn new(per_second: usize, burst: usize, now: Instant) -> MessageRateLimit {
        let burst = burst.max(1) as f64;
        MessageRateLimit {
            per_second: per_second.max(1) as f64,
            burst,
            tokens: burst,
            refilled_at: now,
            refused_in_a_row: 0,
        }
    }

    /// Takes a token for one message arriving at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        let elapsed: Duration = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row as f64 > self.burst {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }

    /// Messages refused since the last one allowed.
    pub(crate) fn refused_in_a_row(&self) -> usize {
        self.refused_in_a_row
    }
}

#[cfg(test)]
mod tests;
