//! The gRPC health checking protocol, `grpc.health.v1.Health`, on the admin
//! listener.
//!
//! Spec: <https://github.com/grpc/grpc/blob/master/doc/health-checking.md>.
//! The messages and the `Check`/`Watch` server are `tonic-health`'s
//! generated ones; the answers are warmgate's own, read from the published
//! snapshot like every probe (nothing here runs or waits on a check):
//!
//! - service `""` is the whole gate: `SERVING` while `ready` or `degraded`,
//!   `UNKNOWN` while `starting` with no check result yet, `NOT_SERVING`
//!   otherwise;
//! - every check is a service of its own name: `SERVING` while it passes,
//!   `UNKNOWN` before its first result, `NOT_SERVING` while it fails;
//! - once `draining`, every service is `NOT_SERVING`.
//!
//! `Check` on a name that is neither is `NOT_FOUND`. `Watch` sends the
//! current status first, then each change of it and nothing else (a
//! snapshot that leaves the service's status as it was sends nothing); on
//! an unknown name it sends `SERVICE_UNKNOWN` and stays open. At drain each
//! `Watch` sends `NOT_SERVING` and ends, so open streams never hold the
//! shutdown. `List` (the protocol's later addition, which `tonic-health`
//! does not generate) returns every service with its status; its messages
//! are declared here.
//!
//! The HTTP/2 that gRPC needs is served beside HTTP/1.1 on the admin port
//! (`crate::serve`), and the admin token layer sees a call's
//! `authorization` metadata as the header it is.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::Stream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use warmgate_core::{CheckStatus, GateState, Snapshot};
use warmgate_engine::{ReadinessHandle, SnapshotRx};

/// Open `grpc.health.v1.Health/Watch` streams.
pub const GRPC_HEALTH_WATCHES: &str = "warmgate_grpc_health_watches";

/// The path prefix of the protocol's methods; the admin token layer lets
/// a read token call them, as they only read.
pub(crate) const GRPC_HEALTH_PATH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The routes of `grpc.health.v1.Health` (`Check`, `Watch`, `List`): merged
/// into the admin router, or served alone on the gRPC health listener
/// (`grpc_health_listen`), which needs HTTP/2 ([`crate::ServeSettings`]).
/// They only read published snapshots.
pub fn grpc_health_router(handle: ReadinessHandle) -> Router {
    let server = HealthServer::new(GateHealth {
        handle: handle.clone(),
    });
    Router::new()
        .route_service("/grpc.health.v1.Health/Check", server.clone())
        .route_service("/grpc.health.v1.Health/Watch", server)
        .route(
            "/grpc.health.v1.Health/List",
            post(move |request: Request| list(handle.clone(), request)),
        )
}

/// The status of `service` in `snapshot`, or `None` for a name that is
/// neither `""` nor a check.
pub(crate) fn serving_status(snapshot: &Snapshot, service: &str) -> Option<ServingStatus> {
    if service.is_empty() {
        let no_result_yet = snapshot
            .checks
            .iter()
            .all(|check| check.status == CheckStatus::Unknown);
        return Some(match snapshot.state {
            state if state.admits_traffic() => ServingStatus::Serving,
            GateState::Starting if no_result_yet => ServingStatus::Unknown,
            _ => ServingStatus::NotServing,
        });
    }
    let check = snapshot.check(service)?;
    Some(if snapshot.state == GateState::Draining {
        ServingStatus::NotServing
    } else {
        match check.status {
            CheckStatus::Passing => ServingStatus::Serving,
            CheckStatus::Failing => ServingStatus::NotServing,
            CheckStatus::Unknown => ServingStatus::Unknown,
        }
    })
}

/// What a `Watch` on `service` sends for `snapshot`: its status, or
/// `SERVICE_UNKNOWN` for an unknown name, and `NOT_SERVING` for every name
/// once draining.
pub(crate) fn watched_status(snapshot: &Snapshot, service: &str) -> ServingStatus {
    if snapshot.state == GateState::Draining {
        return ServingStatus::NotServing;
    }
    serving_status(snapshot, service).unwrap_or(ServingStatus::ServiceUnknown)
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

// === impl GateHealth ===

/// `grpc.health.v1.Health` over the published snapshots.
#[derive(Debug, Clone)]
struct GateHealth {
    handle: ReadinessHandle,
}

type BoxedWatchStream =
    Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Health for GateHealth {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let service = request.into_inner().service;
        let status = self
            .handle
            .with_current(|snapshot| serving_status(snapshot, &service));
        match status {
            Some(status) => Ok(tonic::Response::new(response(status))),
            None => Err(tonic::Status::not_found(format!(
                "no service named {service:?}: the services are \"\" (the whole gate) and each check by name"
            ))),
        }
    }

    type WatchStream = BoxedWatchStream;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<BoxedWatchStream>, tonic::Status> {
        let service = request.into_inner().service;
        let watch = OpenWatch::new(service);
        let stream = futures_util::stream::unfold(
            WatchState {
                snapshot_rx: self.handle.subscribe(),
                last_sent: None,
                finished: false,
                watch,
            },
            next_watch_message,
        );
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

/// One `Watch` stream between two messages.
struct WatchState {
    snapshot_rx: SnapshotRx,
    last_sent: Option<ServingStatus>,
    /// `NOT_SERVING` has been sent at drain: the stream ends.
    finished: bool,
    watch: OpenWatch,
}

/// The next message of a `Watch`: the current status if it differs from
/// the last one sent, else the next change; `None` ends the stream (after
/// the drain's `NOT_SERVING`, or when the engine has gone).
async fn next_watch_message(
    mut state: WatchState,
) -> Option<(Result<HealthCheckResponse, tonic::Status>, WatchState)> {
    if state.finished {
        return None;
    }
    loop {
        let snapshot = Arc::clone(&state.snapshot_rx.borrow_and_update());
        let status = watched_status(&snapshot, &state.watch.service);
        let draining = snapshot.state == GateState::Draining;
        if state.last_sent != Some(status) {
            tracing::debug!(
                grpc.service = %state.watch.service,
                status = status.as_str_name(),
                seq = snapshot.seq,
                "gRPC health Watch sends a status"
            );
            state.last_sent = Some(status);
            state.finished = draining;
            return Some((Ok(response(status)), state));
        }
        if draining || state.snapshot_rx.changed().await.is_err() {
            return None;
        }
    }
}

/// Counts an open `Watch` in [`GRPC_HEALTH_WATCHES`] and logs its opening
/// and closing (at debug), for as long as the stream exists.
struct OpenWatch {
    service: String,
}

impl OpenWatch {
    fn new(service: String) -> Self {
        metrics::gauge!(GRPC_HEALTH_WATCHES).increment(1.0);
        tracing::debug!(grpc.service = %service, "gRPC health Watch opened");
        OpenWatch { service }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        metrics::gauge!(GRPC_HEALTH_WATCHES).decrement(1.0);
        tracing::debug!(grpc.service = %self.service, "gRPC health Watch closed");
    }
}

// === List ===

/// `grpc.health.v1.HealthListRequest`: no fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthListRequest {}

/// `grpc.health.v1.HealthListResponse`: every service and its status.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthListResponse {
    #[prost(map = "string, message", tag = "1")]
    pub(crate) statuses: HashMap<String, HealthCheckResponse>,
}

/// Every service of `snapshot` (`""` and each check) with its status.
pub(crate) fn list_statuses(snapshot: &Snapshot) -> HashMap<String, HealthCheckResponse> {
    std::iter::once("")
        .chain(snapshot.checks.iter().map(|check| check.name.as_str()))
        .filter_map(|service| {
            let status = serving_status(snapshot, service)?;
            Some((service.to_owned(), response(status)))
        })
        .collect()
}

/// `List` as a unary gRPC call.
#[derive(Debug, Clone)]
struct ListCall {
    handle: ReadinessHandle,
}

impl tonic::server::UnaryService<HealthListRequest> for ListCall {
    type Response = HealthListResponse;
    type Future = std::future::Ready<Result<tonic::Response<HealthListResponse>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<HealthListRequest>) -> Self::Future {
        let statuses = self.handle.with_current(list_statuses);
        std::future::ready(Ok(tonic::Response::new(HealthListResponse { statuses })))
    }
}

async fn list(handle: ReadinessHandle, request: Request) -> Response {
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
    grpc.unary(ListCall { handle }, request)
        .await
        .into_response()
}

#[cfg(test)]
mod tests;
