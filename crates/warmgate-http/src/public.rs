//! The public endpoints: probes, the snapshot, and its event stream.
//!
//! The probes are always served; the snapshot and its stream name every
//! check and its kind, so an operator can turn them off (they then answer
//! 404, like any unknown path), and with them the probes' per-check detail
//! (`?verbose` and `/readyz/{check}`, see [`crate::probe_detail`]). This
//! file owns the probes' JSON answers, which stay as they are.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use warmgate_core::Snapshot;
use warmgate_engine::ReadinessHandle;

use crate::ClientLimits;
use crate::events::readiness_events;
use crate::probe_detail::{Disclosure, probe_routes};

/// What the public router serves besides the probes.
#[derive(Debug, Clone)]
pub struct PublicSettings {
    /// Serve `GET /readiness` and `GET /readiness/events`. Default true.
    pub readiness_detail: bool,
    /// The per-address limits; the event stream counts against them.
    pub client_limits: ClientLimits,
}

impl Default for PublicSettings {
    fn default() -> Self {
        Self {
            readiness_detail: true,
            client_limits: ClientLimits::default(),
        }
    }
}

/// The readiness routes of the public listener: the probes, and unless
/// `readiness_detail` is off the snapshot and its event stream. The binary
/// merges the WebSocket gate's routes (and the chat page, and proxy mode's
/// fallback) into this router.
pub fn public_router(handle: ReadinessHandle, settings: &PublicSettings) -> Router {
    // The per-check detail of the probes (`?verbose`, `/readyz/{check}`)
    // names the checks, so it goes with the snapshot.
    let disclosure = if settings.readiness_detail {
        Disclosure::Names
    } else {
        Disclosure::VerdictOnly
    };
    let probes = probe_routes(handle.clone(), disclosure);
    if !settings.readiness_detail {
        return probes;
    }
    let events = Router::new()
        .route("/readiness/events", get(readiness_events))
        .with_state((handle.clone(), settings.client_limits.clone()));
    probes.merge(events).merge(
        Router::new()
            .route("/readiness", get(readiness))
            .with_state(handle),
    )
}

fn status_for(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// 200 while the engine's heartbeat is fresh. A stuck engine means the
/// process should be restarted, which is what liveness failure asks for.
pub(crate) fn livez_json(handle: &ReadinessHandle) -> Response {
    if handle.is_alive() {
        (StatusCode::OK, Json(json!({"status": "alive"}))).into_response()
    } else {
        let heartbeat_age_ms = handle.heartbeat_age().as_millis() as u64;
        tracing::error!(
            heartbeat_age_ms,
            "liveness failing: the readiness engine has not beaten its heartbeat; the orchestrator should restart this process"
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stuck", "heartbeat_age_ms": heartbeat_age_ms})),
        )
            .into_response()
    }
}

/// 200 when `ready` or `degraded`, otherwise 503.
pub(crate) fn readyz_json(handle: &ReadinessHandle) -> Response {
    handle.with_current(|snapshot| {
        let body = json!({
            "state": snapshot.state,
            "seq": snapshot.seq,
            "pending": snapshot.pending,
            "degraded": snapshot.degraded,
        });
        (status_for(snapshot.state.admits_traffic()), Json(body)).into_response()
    })
}

/// 503 until the gate has been ready once, and while `failed`.
pub(crate) fn startupz_json(handle: &ReadinessHandle) -> Response {
    handle.with_current(|snapshot| {
        let started = snapshot.started();
        let body = json!({"started": started, "state": snapshot.state, "seq": snapshot.seq});
        (status_for(started), Json(body)).into_response()
    })
}

/// The current public snapshot, with `elapsed_ms` as of this request.
async fn readiness(State(handle): State<ReadinessHandle>) -> Json<Snapshot> {
    let mut snapshot = Snapshot::clone(&handle.current());
    snapshot.elapsed = handle.elapsed();
    Json(snapshot)
}
