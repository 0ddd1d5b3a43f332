//! The HTTP side of the gate: `/ws` and `/echo`, the upgrade handshake's
//! checks, the subprotocol, and spawning the connection task.
//!
//! Every malformed upgrade gets a one-line answer saying why: 400 for a
//! request that cannot be a WebSocket handshake (not GET, no valid key),
//! 426 for one that asks for the wrong thing (no upgrade, wrong version),
//! 403 for a browser origin outside `allowed_origins`. With `[auth]`, a
//! client without a valid token gets 401 with a JSON body saying what was
//! wrong (`{"error": "token_expired", "message": "..."}`), or 503 while the
//! keys to check it are not loaded yet; it is never held or admitted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tokio::time::Instant;
use tracing::Instrument as _;
use warmgate_auth::{AuthError, Authenticator, bearer_subprotocol_token};
use warmgate_engine::ReadinessHandle;
use warmgate_http::{LogSampler, REFUSAL_LOG_WINDOW};

use crate::connection::{self, Route};
use crate::{ChatSession, ConnectionCounts, GateSettings};

/// The subprotocol of the warmgate protocol. Offering it is optional; when
/// offered it is selected.
pub const SUBPROTOCOL: &str = "warmgate.v1";

/// What every connection of the gate shares.
pub(crate) struct GateInner {
    pub(crate) handle: ReadinessHandle,
    pub(crate) settings: Arc<GateSettings>,
    pub(crate) session: Arc<dyn ChatSession>,
    pub(crate) authenticator: Authenticator,
    pub(crate) counts: ConnectionCounts,
    /// Samples the log lines of refused tokens, so a flood of bad tokens
    /// does not flood the log.
    refusal_log: LogSampler,
    next_connection: AtomicU64,
    /// A random prefix so connection ids differ across restarts.
    instance: u32,
}

/// The WebSocket gate. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("settings", &self.inner.settings)
            .field("counts", &self.inner.counts)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate; `authenticator` checks each client's token before the
    /// upgrade ([`Authenticator::disabled`] admits everyone).
    pub fn new(
        handle: ReadinessHandle,
        settings: GateSettings,
        session: Arc<dyn ChatSession>,
        authenticator: Authenticator,
    ) -> Self {
        crate::measure::init();
        Self {
            inner: Arc::new(GateInner {
                handle,
                settings: Arc::new(settings),
                session,
                authenticator,
                counts: ConnectionCounts::default(),
                refusal_log: LogSampler::new(REFUSAL_LOG_WINDOW),
                next_connection: AtomicU64::new(0),
                instance: fastrand::u32(..),
            }),
        }
    }

    /// The `/ws` and `/echo` routes, to merge into the public router. They
    /// need a server that supports upgrades (hyper's `with_upgrades`).
    pub fn router(&self) -> Router {
        self.chat_router().merge(self.echo_router())
    }

    /// The `/ws` route alone: the chat application.
    pub fn chat_router(&self) -> Router {
        Router::new()
            .route("/ws", any(ws_route))
            .with_state(self.clone())
    }

    /// The `/echo` route alone.
    pub fn echo_router(&self) -> Router {
        Router::new()
            .route("/echo", any(echo_route))
            .with_state(self.clone())
    }

    /// The live connection counts.
    pub fn counts(&self) -> ConnectionCounts {
        self.inner.counts.clone()
    }

    fn next_connection_id(&self) -> String {
        let n = self.inner.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
        format!("c{:08x}-{n}", self.inner.instance)
    }
}

async fn ws_route(State(gate): State<Gate>, request: Request) -> Response {
    upgrade(&gate, Route::Ws, request).await
}

async fn echo_route(State(gate): State<Gate>, request: Request) -> Response {
    upgrade(&gate, Route::Echo, request).await
}

/// Why an upgrade request was refused: the status and a one-line reason.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn refusal(status: StatusCode, message: &str) -> Refusal {
    Refusal {
        status,
        message: message.to_owned(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::debug!(
            status = self.status.as_u16(),
            message = %self.message,
            "WebSocket upgrade refused"
        );
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

async fn upgrade(gate: &Gate, route: Route, mut request: Request) -> Response {
    if let Err(response) = check_handshake(
        request.method(),
        request.headers(),
        &gate.inner.settings.allowed_origins,
    ) {
        return response.into_response();
    }
    let offers_subprotocol = offers_subprotocol(request.headers());
    if !offers_subprotocol && offers_bearer_subprotocol(request.headers()) {
        // A browser fails the connection unless the server selects one of
        // the offered subprotocols, and the token must never be echoed.
        return refusal(
            StatusCode::BAD_REQUEST,
            "a `bearer.<token>` subprotocol must be offered beside `warmgate.v1`, which the server selects",
        )
        .into_response();
    }
    let id = gate.next_connection_id();
    let span = connection::span(&id, route, request.headers());
    let authenticator = &gate.inner.authenticator;
    // Without `[auth]` the handshake path pays nothing for it.
    let identity = if authenticator.is_enabled() {
        match authenticator
            .authenticate(request.headers(), request.uri().query())
            .instrument(span.clone())
            .await
        {
            Ok(identity) => identity,
            Err(error) => {
                return span.in_scope(|| auth_refusal(&error, &gate.inner.refusal_log));
            }
        }
    } else {
        None
    };
    if let Some(identity) = &identity {
        span.record("sub", identity.subject.as_str());
        span.record("auth", identity.source.as_str());
    }
    let (response, upgrade_future) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(upgrade) => upgrade,
        Err(error) => {
            return refusal(StatusCode::BAD_REQUEST, &format!("cannot upgrade: {error}"))
                .into_response();
        }
    };
    let upgraded_at = Instant::now();
    // Counted from the upgrade on, so a flood of upgrades meets the limit
    // before any of them has used much memory.
    let open = gate
        .inner
        .counts
        .try_open(gate.inner.settings.max_connections);
    let inner = Arc::clone(&gate.inner);
    let task = async move {
        match upgrade_future.await {
            Ok(ws) => connection::run(ws, inner, route, id, identity, upgraded_at, open).await,
            Err(error) => {
                tracing::Span::current().record("outcome", "left_during_upgrade");
                crate::measure::left_during_upgrade();
                tracing::debug!(%error, "client left during the upgrade");
            }
        }
    };
    tokio::spawn(task.instrument(span));
    let mut response = response.map(|_| Body::empty());
    if offers_subprotocol {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    response
}

/// True when the client lists [`SUBPROTOCOL`] in `Sec-WebSocket-Protocol`.
fn offers_subprotocol(headers: &HeaderMap) -> bool {
    listed(headers, header::SEC_WEBSOCKET_PROTOCOL).any(|offered| offered == SUBPROTOCOL)
}

/// True when the client offers a `bearer.<token>` subprotocol entry.
fn offers_bearer_subprotocol(headers: &HeaderMap) -> bool {
    listed(headers, header::SEC_WEBSOCKET_PROTOCOL)
        .any(|offered| bearer_subprotocol_token(offered).is_some())
}

/// The answer to a request whose token was refused: 401 with a JSON body
/// naming the problem, or 503 when the keys are not loaded yet. Neither
/// repeats the token. Every refusal is counted; of each kind, the first in
/// each [`REFUSAL_LOG_WINDOW`] is logged at info (warn for a 503) with how
/// many of its kind were left out since, and the others at debug.
fn auth_refusal(error: &AuthError, refusal_log: &LogSampler) -> Response {
    let code = error.code();
    let message = error.to_string();
    crate::measure::auth_refused(code);
    let span = tracing::Span::current();
    span.record("outcome", "unauthorized");
    span.record("auth_error", code);
    let unavailable = error.is_unavailable();
    let status = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    };
    let status_code = status.as_u16();
    match refusal_log.admit(code, Instant::now()) {
        Some(left_out) if unavailable => tracing::warn!(
            error = code,
            message,
            left_out,
            "WebSocket upgrade refused with {status_code}: {message}"
        ),
        Some(left_out) => tracing::info!(
            error = code,
            left_out,
            "WebSocket upgrade refused with {status_code}: {message}"
        ),
        None => tracing::debug!(
            error = code,
            "WebSocket upgrade refused with {status_code}: {message}"
        ),
    }
    let body = serde_json::json!({ "error": code, "message": message });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if matches!(error, AuthError::MissingToken) {
            HeaderValue::from_static("Bearer realm=\"warmgate\"")
        } else {
            HeaderValue::from_static("Bearer realm=\"warmgate\", error=\"invalid_token\"")
        };
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    } else {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The entries of every `name` header, each a comma-separated list, trimmed.
/// A value that is not visible ASCII lists nothing.
fn listed(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// True when a comma-separated header lists `token`, ignoring case.
fn header_lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    listed(headers, name).any(|listed| listed.eq_ignore_ascii_case(token))
}

/// Checks everything about the upgrade request that the client could have
/// got wrong, answering the first problem found. Public so that the fuzz
/// targets can reach it; the gate calls it for every upgrade.
pub fn check_handshake(
    method: &Method,
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Result<(), Refusal> {
    if method != Method::GET {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            &format!("a WebSocket upgrade must be a GET request, not {method}"),
        ));
    }
    if !header_lists(headers, header::UPGRADE, "websocket")
        || !header_lists(headers, header::CONNECTION, "upgrade")
    {
        return Err(refusal(
            StatusCode::UPGRADE_REQUIRED,
            "this route speaks WebSocket: send `Connection: Upgrade` and `Upgrade: websocket`",
        ));
    }
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes);
    if version != Some(b"13") {
        return Err(refusal(
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key_ok = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(|key| is_websocket_key(key.as_bytes()));
    if !key_ok {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be 16 random bytes in base64 (24 characters)",
        ));
    }
    if !allowed_origins.is_empty() {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if !allowed_origins.contains(&origin) {
                tracing::warn!(
                    origin,
                    "WebSocket upgrade from an origin outside allowed_origins refused with 403"
                );
                return Err(refusal(
                    StatusCode::FORBIDDEN,
                    &format!("origin {origin} is not allowed to open a WebSocket here"),
                ));
            }
        }
    }
    Ok(())
}

/// A base64 encoding of 16 bytes: 22 base64 characters and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'/')
}

#[cfg(test)]
mod tests;
