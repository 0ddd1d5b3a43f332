//! The HTTP face of readiness.
//!
//! Two routers, one per listener:
//! - [`public_router`]: the probe endpoints Kubernetes and Cloud Run call
//!   (`/livez`, `/readyz`, `/startupz`, with kube-apiserver's `?verbose`,
//!   `?exclude=` and `/readyz/{check}`: `probe_detail`), and unless turned
//!   off the public
//!   snapshot (`/readiness`) and its Server-Sent Events stream
//!   (`/readiness/events`);
//! - [`admin_router`]: the verbose snapshot, the transition history
//!   (`history`: `/readiness/history`, also replayed on the event stream
//!   after a `Last-Event-ID`), signal setting and drain, the
//!   same probes with each failure's reason, and the gRPC health checking
//!   protocol (`grpc_health`), on a listener that is loopback-only by
//!   default, guarded by
//!   [`require_admin_token`] with a control token and an optional read
//!   token.
//!
//! [`ClientLimits`] are the public listener's per-client-address limits
//! (handshakes per second, open event streams), with the address taken
//! from the socket or, behind trusted proxies, from `X-Forwarded-For`.
//! [`LogSampler`] keeps floods of refusals from flooding the log.
//!
//! [`serve`] runs a router on a listener: HTTP/1.1 with upgrades (for the
//! WebSocket gate), and on the admin listener HTTP/2 with prior knowledge
//! beside it (for gRPC), `TCP_NODELAY`, the peer's address in each request, a
//! deadline on reading request heads so slow or half-open clients cannot
//! pin memory, the `Host` rule of every request (`request_head`), and
//! graceful shutdown.
//!
//! Every handler reads a published snapshot through the
//! [`warmgate_engine::ReadinessHandle`]; none ever runs or waits on a check.
//! Binding listeners and deciding when to shut down is the binary's job.

#![forbid(unsafe_code)]

mod admin;
mod bytes_read;
mod client_address;
mod client_limits;
mod events;
mod grpc_health;
mod history;
mod log_sampler;
mod probe_detail;
mod public;
mod request_head;
mod serve;

pub use self::admin::{RenderMetrics, admin_router, require_admin_token};
pub use self::bytes_read::BytesRead;
pub use self::client_limits::{
    CLIENT_REFUSALS_TOTAL, ClientLimitSettings, ClientLimits, EVENT_STREAMS,
};
pub use self::grpc_health::{GRPC_HEALTH_WATCHES, grpc_health_router};
pub use self::log_sampler::{LogSampler, REFUSAL_LOG_WINDOW};
pub use self::public::{PublicSettings, public_router};
pub use self::serve::{HttpActivity, LISTEN_BACKLOG, ServeSettings, bind_listener, serve};

#[cfg(test)]
mod tests;
