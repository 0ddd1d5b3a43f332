//! The HTTP face of readiness.
//!
//! Two routers, one per listener:
//! - [`public_router`]: the probe endpoints Kubernetes and Cloud Run call
//!   (`/livez`, `/readyz`, `/startupz`), the public snapshot (`/readiness`)
//!   and its Server-Sent Events stream (`/readiness/events`);
//! - [`admin_router`]: the verbose snapshot, signal setting and drain, on a
//!   listener that is loopback-only by default.
//!
//! Every handler reads a published snapshot through the
//! [`warmgate_engine::ReadinessHandle`]; none ever runs or waits on a check.
//! Binding listeners and shutting down is the binary's job.

#![forbid(unsafe_code)]

mod admin;
mod events;
mod public;

pub use self::admin::admin_router;
pub use self::public::public_router;

#[cfg(test)]
mod tests;
