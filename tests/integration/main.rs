//! The one integration-test binary: the real warmgate program over real
//! sockets. One module per feature.

#![allow(clippy::unwrap_used)]

mod auth;
mod backend;
mod backoff;
mod edge;
mod foundation;
mod gate;
mod grpc_health;
mod hardening;
mod kube_probes;
mod leases;
mod liveness;
mod logs;
mod metrics;
mod operations;
mod probes;
mod proxy;
mod request_heads;
mod secrets;
mod shutdown;
mod systemd;
mod traces;
