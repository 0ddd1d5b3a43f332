//! Proxy mode: warmgate in front of a team's own backend.
//!
//! - `http`: the plain-HTTP reverse proxy (`[upstream] http = true`): every
//!   request on a path that is not the gate's own waits for readiness (up
//!   to `hold_timeout`), then is forwarded with its body streamed both
//!   ways; 503 with `Retry-After` when the gate is not ready in time or is
//!   draining.
//! - `dial`: dialing the backend's WebSocket at admission, with the
//!   client's headers that matter, under a bound on concurrent dials.
//! - [`forward`]: the header rules both share (hop-by-hop headers dropped,
//!   `X-Forwarded-*` added, the identity header only warmgate sets).
//! - `upstream`: [`Upstream`], the backend as an application of the gate:
//!   the dial at admission, the replay of what the client sent while held,
//!   and the relay both ways.
//! - `error`: [`ProxyError`].

#![forbid(unsafe_code)]

mod dial;
mod error;
pub mod forward;
mod http;
mod upstream;

pub use self::dial::{
    DIAL_DURATION_BUCKETS, DIAL_DURATION_SECONDS, DIAL_FAILURE_REASONS, DIAL_FAILURES_TOTAL,
    DIALS_IN_FLIGHT, DialError, DialSlot, Dialer, UpstreamSocket,
};
pub use self::error::ProxyError;
pub use self::http::{
    HttpProxy, HttpProxySettings, UPSTREAM_HTTP_REQUESTS_TOTAL, UPSTREAM_HTTP_RESENDS_TOTAL,
    UPSTREAM_HTTP_WAIT_BUCKETS, UPSTREAM_HTTP_WAIT_SECONDS,
};
pub use self::upstream::{
    UPSTREAM_BYTES_TOTAL, UPSTREAM_CONNECTIONS, UPSTREAM_FAILURES_TOTAL, UPSTREAM_MESSAGES_TOTAL,
    UPSTREAM_UNDELIVERED_TOTAL, Upstream, client_close_code,
};
