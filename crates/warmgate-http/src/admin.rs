//! The admin endpoints: the verbose snapshot, the transition history
//! (served by `history`), signals (and their leases), drain and metrics.
//!
//! The admin listener binds to loopback by default because the verbose
//! snapshot carries error text that can name internal hosts. Off loopback
//! the program requires an admin token, and [`require_admin_token`] makes
//! every admin request carry it: the control token anywhere, or a read
//! token on the reading routes (`GET`: metrics, the verbose snapshot, the
//! probes; and the gRPC health calls), so a scraper's credential cannot
//! drain the process. Both listeners' probes, with each failure's reason
//! here, are `probe_detail`'s; gRPC health is `grpc_health`'s.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use subtle::{Choice, ConstantTimeEq as _};
use warmgate_core::{VerboseSnapshot, human_duration};
use warmgate_engine::{EngineError, ReadinessHandle};

use crate::ClientLimits;
use crate::events::readiness_events;
use crate::grpc_health::{GRPC_HEALTH_PATH_PREFIX, grpc_health_router};
use crate::probe_detail::{Disclosure, probe_routes};

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
        .route("/readiness/history", get(crate::history::readiness_history))
        .route("/signals/{name}", post(set_signal))
        .route("/drain", post(drain))
        .with_state(handle.clone())
        // The event stream too, for operators of a gate whose public one
        // is off (`readiness_detail = false`); no per-address limit here.
        .merge(
            Router::new()
                .route("/readiness/events", get(readiness_events))
                .with_state((handle.clone(), ClientLimits::default())),
        )
        // The probes with each failure's reason, and gRPC health.
        .merge(probe_routes(handle.clone(), Disclosure::Reasons))
        .merge(grpc_health_router(handle))
}

/// Wraps the admin routes so that every request must carry
/// `Authorization: Bearer <token>`: the `control` token, accepted on every
/// route, or the `read` token, accepted on `GET` and `HEAD` requests only
/// (a read token elsewhere gets 403). Others get 401. Both comparisons take
/// the same time wherever the tokens differ.
pub fn require_admin_token(router: Router, control: &str, read: Option<&str>) -> Router {
    let tokens = Arc::new(AdminTokens {
        control: control.as_bytes().to_vec(),
        read: read.map(|read| read.as_bytes().to_vec()),
    });
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let tokens = Arc::clone(&tokens);
            async move {
                let presented = bearer_token(request.headers());
                let scope = presented.and_then(|token| tokens.scope(token.as_bytes()));
                // gRPC health calls are POSTs that only read.
                let reading = matches!(*request.method(), Method::GET | Method::HEAD)
                    || request.uri().path().starts_with(GRPC_HEALTH_PATH_PREFIX);
                let grpc = is_grpc(request.headers());
                match scope {
                    Some(Scope::Control) => next.run(request).await,
                    Some(Scope::Read) if reading => next.run(request).await,
                    Some(Scope::Read) => {
                        tracing::warn!(
                            method = %request.method(),
                            path = request.uri().path(),
                            "admin request refused with 403: the read token may only read; signals and drain need the control token"
                        );
                        if grpc {
                            return tonic::Status::permission_denied(
                                "this token may only read (gRPC health); other calls need the admin control token",
                            )
                            .into_http();
                        }
                        let body = json!({
                            "error": "forbidden",
                            "message": "this token may only read (GET: metrics, readiness); signals and drain need the admin control token",
                        });
                        (StatusCode::FORBIDDEN, Json(body)).into_response()
                    }
                    None => {
                        tracing::warn!(
                            method = %request.method(),
                            path = request.uri().path(),
                            token_present = presented.is_some(),
                            "admin request refused with 401: it lacks the admin token"
                        );
                        if grpc {
                            return tonic::Status::unauthenticated(
                                "admin calls need `authorization: Bearer <admin token>` metadata",
                            )
                            .into_http();
                        }
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
                }
            }
        },
    ))
}

/// True for a gRPC call (`content-type: application/grpc`, `+proto` and
/// the like), whose refusals are gRPC statuses rather than HTTP ones.
fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// The admin tokens, as bytes.
struct AdminTokens {
    control: Vec<u8>,
    read: Option<Vec<u8>>,
}

/// What a presented token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Read,
    Control,
}

impl AdminTokens {
    /// The scope of `presented`, if it is one of the tokens. Both tokens are
    /// always compared, in constant time for equal lengths (`subtle`), so
    /// the answer's timing says nothing about which one nearly matched.
    fn scope(&self, presented: &[u8]) -> Option<Scope> {
        let control = presented.ct_eq(&self.control);
        let read = self
            .read
            .as_deref()
            .map_or(Choice::from(0), |read| presented.ct_eq(read));
        if bool::from(control) {
            Some(Scope::Control)
        } else if bool::from(read) {
            Some(Scope::Read)
        } else {
            None
        }
    }
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
                    EngineError::LeaseTtlOutOfRange { .. } => StatusCode::BAD_REQUEST,
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
    /// The lease, as the config writes durations (`"30s"`); none clears it.
    #[serde(default)]
    ttl: Option<String>,
}

/// A signal body's `ttl`: a duration such as `"30s"` within the engine's
/// lease bounds (100 ms to 24 h), or a message for a 400 naming the field.
fn lease_ttl(text: &str) -> Result<Duration, String> {
    let range = ReadinessHandle::MIN_LEASE_TTL..=ReadinessHandle::MAX_LEASE_TTL;
    match humantime::parse_duration(text) {
        Ok(ttl) if range.contains(&ttl) => Ok(ttl),
        _ => Err(format!(
            "ttl: invalid duration {text:?}, expected a duration from {} to {} such as \"30s\"",
            human_duration(*range.start()),
            human_duration(*range.end()),
        )),
    }
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
            "expected a JSON body like {{\"ready\":true,\"reason\":\"...\",\"ttl\":\"30s\"}}: {error}"
        ))
    })?;
    let ttl = body
        .ttl
        .as_deref()
        .map(lease_ttl)
        .transpose()
        .map_err(AdminError::BadBody)?;
    if ttl.is_some() && !body.ready {
        // A lease keeps a signal ready until it runs out; on a signal set to
        // not ready it would only change the reason when it did.
        return Err(AdminError::BadBody(
            "ttl: a lease keeps a ready signal ready until it runs out, expected it only with \"ready\": true (set a not-ready signal without ttl)".to_owned(),
        ));
    }
    let reason = body
        .reason
        .map(|reason| reason.chars().take(MAX_REASON_CHARS).collect());
    // Answered once the new snapshot is published: a read right after the
    // answer sees the signal applied.
    handle
        .set_signal_applied_with_ttl(&name, body.ready, reason, ttl, SIGNAL_APPLY_LIMIT)
        .await
        .map_err(AdminError::Engine)?;
    let ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    tracing::info!(check.name = %name, ready = body.ready, ttl_ms, "signal set through the admin endpoint");
    Ok(StatusCode::NO_CONTENT)
}

async fn drain(State(handle): State<ReadinessHandle>) -> Result<StatusCode, AdminError> {
    tracing::warn!("drain requested through the admin endpoint; readiness turns to draining now");
    handle.drain().map_err(AdminError::Engine)?;
    Ok(StatusCode::ACCEPTED)
}
