//! The admin endpoints: the verbose snapshot, signals, drain and metrics.
//!
//! The admin listener binds to loopback by default because the verbose
//! snapshot carries error text that can name internal hosts. Off loopback
//! the program requires an admin token, and [`require_admin_token`] makes
//! every admin request carry it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use warmgate_core::VerboseSnapshot;
use warmgate_engine::{EngineError, ReadinessHandle};

/// Renders the process's metrics in the Prometheus text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes of the admin listener. `GET /metrics` serves
/// `render_metrics`; scraping it reads counters and never runs a check.
pub fn admin_router(handle: ReadinessHandle, render_metrics: RenderMetrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = render_metrics();
                async move { ([(axum::http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], text) }
            }),
        )
        .route("/readiness", get(verbose_readiness))
        .route("/signals/{name}", post(set_signal))
        .route("/drain", post(drain))
        .with_state(handle)
}

/// Wraps the admin routes so that every request must carry
/// `Authorization: Bearer <token>`; others get 401 with a JSON body. The
/// comparison takes the same time wherever the tokens differ.
pub fn require_admin_token(router: Router, token: &str) -> Router {
    let expected: Arc<[u8]> = Arc::from(token.as_bytes());
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let expected = Arc::clone(&expected);
            async move {
                let presented = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| {
                        let (scheme, token) = value.trim().split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                    });
                if presented.is_some_and(|token| same_bytes(token.as_bytes(), &expected)) {
                    return next.run(request).await;
                }
                tracing::warn!(
                    method = %request.method(),
                    path = request.uri().path(),
                    token_present = presented.is_some(),
                    "admin request refused with 401: it lacks the admin token"
                );
                let body = json!({
                    "error": "unauthorized",
                    "message": "admin requests need `Authorization: Bearer <admin token>`",
                });
                let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"warmgate-admin\""),
                );
                response
            }
        },
    ))
}

/// Compares two byte strings in time that depends on their lengths only.
fn same_bytes(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    presented
        .iter()
        .zip(expected)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// An admin request that could not be carried out.
#[derive(Debug)]
enum AdminError {
    BadBody(String),
    Engine(EngineError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            AdminError::BadBody(message) => (StatusCode::BAD_REQUEST, "invalid_body", message),
            AdminError::Engine(error) => {
                let status = match error {
                    EngineError::UnknownCheck { .. } | EngineError::NotASignal { .. } => {
                        StatusCode::NOT_FOUND
                    }
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, "signal_not_set", error.to_string())
            }
        };
        (status, Json(json!({"error": error, "message": message}))).into_response()
    }
}

async fn verbose_readiness(State(handle): State<ReadinessHandle>) -> Json<VerboseSnapshot> {
    let mut verbose = VerboseSnapshot::clone(&handle.verbose());
    verbose.elapsed = handle.elapsed();
    Json(verbose)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    ready: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// The longest reason kept; longer ones are cut so a careless caller cannot
/// bloat every snapshot.
const MAX_REASON_CHARS: usize = 512;

/// How long `POST /signals/NAME` waits for the engine to apply the signal.
const SIGNAL_APPLY_LIMIT: Duration = Duration::from_secs(5);

async fn set_signal(
    State(handle): State<ReadinessHandle>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let body: SignalBody = serde_json::from_slice(&body).map_err(|error| {
        AdminError::BadBody(format!(
            "expected a JSON body like {{\"ready\":true,\"reason\":\"...\"}}: {error}"
        ))
    })?;
    let reason = body
        .reason
        .map(|reason| reason.chars().take(MAX_REASON_CHARS).collect());
    // Answered once the new snapshot is published: a read right after the
    // answer sees the signal applied.
    handle
        .set_signal_applied(&name, body.ready, reason, SIGNAL_APPLY_LIMIT)
        .await
        .map_err(AdminError::Engine)?;
    tracing::info!(check.name = %name, ready = body.ready, "signal set through the admin endpoint");
    Ok(StatusCode::NO_CONTENT)
}

async fn drain(State(handle): State<ReadinessHandle>) -> Result<StatusCode, AdminError> {
    tracing::warn!("drain requested through the admin endpoint; readiness turns to draining now");
    handle.drain().map_err(AdminError::Engine)?;
    Ok(StatusCode::ACCEPTED)
}
