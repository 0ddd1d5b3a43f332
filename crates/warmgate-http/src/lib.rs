//! The HTTP face of readiness.
//!
//! Two routers, one per listener:
//! - [`public_router`]: the probe endpoints Kubernetes and Cloud Run call
//!   (`/livez`, `/readyz`, `/startupz`), the public snapshot (`/readiness`)
//!   and its Server-Sent Events stream (`/readiness/events`);
//! - [`admin_router`]: the verbose snapshot, signal setting and drain, on a
//!   listener that is loopback-only by default.
//!
//! [`serve`] runs a router on a listener: HTTP/1.1 with upgrades (for the
//! WebSocket gate), `TCP_NODELAY`, a deadline on reading request heads so
//! slow or half-open clients cannot pin memory, and graceful shutdown.
//!
//! Every handler reads a published snapshot through the
//! [`warmgate_engine::ReadinessHandle`]; none ever runs or waits on a check.
//! Binding listeners and deciding when to shut down is the binary's job.

#![forbid(unsafe_code)]

mod admin;
mod events;
mod public;
mod serve;

pub use self::admin::{RenderMetrics, admin_router, require_admin_token};
pub use self::public::public_router;
pub use self::serve::{LISTEN_BACKLOG, ServeSettings, bind_listener, serve};

#[cfg(test)]
mod tests;
