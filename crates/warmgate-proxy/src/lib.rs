//! Proxy mode: warmgate in front of a team's own backend.
//!
//! - `http`: the plain-HTTP reverse proxy (`[upstream] http = true`): every
//!   request on a path that is not the gate's own waits for readiness (up
//!   to `hold_timeout`), then is forwarded with its body streamed both
//!   ways; 503 with `Retry-After` when the gate is not ready in time or is
//!   draining.
//! - `dial`: dialing the backend's WebSocket at admission, with the
//!   client's headers that matter, under a bound on concurrent dials.

#![forbid(unsafe_code)]

mod dial;

pub use self::dial::{
    DIAL_DURATION_BUCKETS, DIAL_DURATION_SECONDS, DIAL_FAILURE_REASONS, DIAL_FAILURES_TOTAL,
    DIALS_IN_FLIGHT, DialError, DialSlot, Dialer, UpstreamSocket,
};
