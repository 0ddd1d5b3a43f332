//! The HTTP side of the gate: its WebSocket routes ([`Gate::route`]), the
//! upgrade handshake's checks, the subprotocol, and spawning the
//! connection task with the session its application opened.
//!
//! Every malformed upgrade gets a one-line answer saying why: 400 for a
//! request that cannot be a WebSocket handshake (not GET, not HTTP/1.1, no
//! valid key, a key or origin sent twice, a body), 426 for one that asks
//! for the wrong thing (no upgrade, a version other than one 13), 403 for a
//! browser origin outside `allowed_origins`. Each is counted by reason in
//! `warmgate_client_refusals_total` and logged once per reason and window.
//! The request-head rules of every request (one valid `Host`) are
//! `warmgate_http`'s, checked before any route. With `[auth]`, a
//! client without a valid token gets 401 with a JSON body saying what was
//! wrong (`{"error": "token_expired", "message": "..."}`), or 503 while the
//! keys to check it are not loaded yet; it is never held or admitted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tokio::time::Instant;
use tracing::Instrument as _;
use warmgate_auth::{AuthError, Authenticator, bearer_subprotocol_token};
use warmgate_core::Snapshot;
use warmgate_engine::ReadinessHandle;
use warmgate_http::{LogSampler, REFUSAL_LOG_WINDOW};

use crate::app::{Application, Client};
use crate::connection::{self, Chosen, Route};
use crate::measure::Meters;
use crate::protocol::SnapshotFrames;
use crate::{ConnectionCounts, GateSettings};

/// The subprotocol of the warmgate protocol. Offering it is optional; when
/// offered, and the application selects no subprotocol of its own, it is
/// selected.
pub const SUBPROTOCOL: &str = "warmgate.v1";

/// What every connection of the gate shares.
pub(crate) struct GateInner {
    pub(crate) handle: ReadinessHandle,
    pub(crate) settings: Arc<GateSettings>,
    pub(crate) authenticator: Authenticator,
    pub(crate) counts: ConnectionCounts,
    /// The handles of the series every connection touches.
    meters: Meters,
    /// The latest snapshot's frames, serialised once for every client.
    frames: ArcSwapOption<SnapshotFrames>,
    /// Samples the log lines of refused tokens, so a flood of bad tokens
    /// does not flood the log.
    refusal_log: LogSampler,
    next_connection: AtomicU64,
    /// A random prefix so connection ids differ across restarts.
    instance: u32,
}

/// The WebSocket gate: every route made by [`Gate::route`] holds, warms,
/// admits or refuses, and drains its clients under one set of settings,
/// one readiness handle and one count of connections. Cheap to clone.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn example(gate: warmgate_gate::Gate) -> axum::Router {
/// axum::Router::new().merge(gate.route("/echo", Arc::new(warmgate_gate::Echo)))
/// # }
/// ```
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
    /// upgrade ([`Authenticator::disabled`] admits everyone). The gate
    /// takes its metric handles here, from the `metrics` recorder
    /// installed at the time: install the recorder first.
    pub fn new(
        handle: ReadinessHandle,
        settings: GateSettings,
        authenticator: Authenticator,
    ) -> Self {
        let meters = crate::measure::init();
        Self {
            inner: Arc::new(GateInner {
                meters,
                frames: ArcSwapOption::empty(),
                handle,
                settings: Arc::new(settings),
                authenticator,
                counts: ConnectionCounts::default(),
                refusal_log: LogSampler::new(REFUSAL_LOG_WINDOW),
                next_connection: AtomicU64::new(0),
                instance: fastrand::u32(..),
            }),
        }
    }

    /// A router serving WebSocket clients on `path` with `app`, to merge
    /// into a public router: an exact path such as `/ws`, or a prefix
    /// ending in `/*` (`/ws/*` serves `/ws/` and every path under it). It
    /// needs a server that supports upgrades (hyper's `with_upgrades`, as
    /// `warmgate_http::serve` and `axum::serve` do).
    ///
    /// # Panics
    ///
    /// Like `axum::Router::route`, for a path the router cannot take (one
    /// with `{`, `}` or a `*` elsewhere), which a config from
    /// `warmgate_config` never has.
    pub fn route(&self, path: &str, app: Arc<dyn Application>) -> Router {
        // Leaked once per route (see `Route::path`).
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        let meters = crate::measure::register_route(path, &self.inner.meters);
        let route = Arc::new(Route { path, app, meters });
        let gate = self.clone();
        let handler = any(move |request: Request| {
            let (gate, route) = (gate.clone(), Arc::clone(&route));
            async move { upgrade(&gate, route, request).await }
        });
        match path.strip_suffix("/*") {
            // axum's catch-all needs at least one character, so the bare
            // prefix is a route of its own.
            Some(base) => Router::new()
                .route(&format!("{base}/"), handler.clone())
                .route(&format!("{base}/{{*rest}}"), handler),
            None => Router::new().route(path, handler),
        }
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

impl GateInner {
    /// The frames of `snapshot` every client gets alike, serialised by the
    /// first connection that needs them and shared by the rest. Two
    /// connections may both serialise a new snapshot's; either result is
    /// the same.
    pub(crate) fn frames(&self, snapshot: &Snapshot) -> Arc<SnapshotFrames> {
        if let Some(frames) = &*self.frames.load()
            && frames.seq == snapshot.seq
        {
            return Arc::clone(frames);
        }
        let frames = Arc::new(SnapshotFrames::new(snapshot));
        self.frames.store(Some(Arc::clone(&frames)));
        frames
    }
}

/// Why an upgrade request was refused: the status, the `reason` label it
/// is counted and sampled under, and a one-line message for the client.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

fn refusal(status: StatusCode, reason: &'static str, message: &str) -> Refusal {
    Refusal {
        status,
        reason,
        message: message.to_owned(),
    }
}

impl Refusal {
    /// Counts the refusal, logs it if it is the first of its reason in
    /// this [`REFUSAL_LOG_WINDOW`] (at warn for a foreign origin, which
    /// may be an attack or a misconfigured `allowed_origins`; at info
    /// otherwise; at debug when left out), and answers it.
    fn answer(self, refusal_log: &LogSampler) -> Response {
        crate::measure::handshake_refused(self.reason);
        let status = self.status.as_u16();
        let (reason, message) = (self.reason, self.message.as_str());
        match refusal_log.admit(reason, Instant::now()) {
            Some(left_out) if status == 403 => tracing::warn!(
                reason,
                left_out,
                "WebSocket upgrade refused with {status}: {message}"
            ),
            Some(left_out) => tracing::info!(
                reason,
                left_out,
                "WebSocket upgrade refused with {status}: {message}"
            ),
            None => tracing::debug!(reason, "WebSocket upgrade refused with {status}: {message}"),
        }
        self.into_response()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
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

async fn upgrade(gate: &Gate, route: Arc<Route>, mut request: Request) -> Response {
    let refusal_log = &gate.inner.refusal_log;
    if let Err(refused) = check_handshake(
        request.method(),
        request.version(),
        request.headers(),
        &gate.inner.settings.allowed_origins,
    ) {
        return refused.answer(refusal_log);
    }
    let offers_warmgate = offers_subprotocol(request.headers());
    let offered: Vec<&str> = listed(request.headers(), header::SEC_WEBSOCKET_PROTOCOL)
        .filter(|offered| *offered != SUBPROTOCOL && bearer_subprotocol_token(offered).is_none())
        .collect();
    let selection = route.app.select(&offered, offers_warmgate);
    if !offers_warmgate
        && selection.subprotocol.is_none()
        && offers_bearer_subprotocol(request.headers())
    {
        // A browser fails the connection unless the server selects one of
        // the offered subprotocols, and the token must never be echoed.
        return refusal(
            StatusCode::BAD_REQUEST,
            "bearer_without_subprotocol",
            "a `bearer.<token>` subprotocol must be offered beside `warmgate.v1` (or a subprotocol of this route's application), which the server selects",
        )
        .answer(refusal_log);
    }
    let id = gate.next_connection_id();
    let state_at_connect = gate.inner.handle.with_current(|snapshot| snapshot.state);
    let span = connection::span(&id, &route, request.headers(), state_at_connect);
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
    // Outside the connection's span: `open` is cheap and does no IO, and
    // entering the span for it cost every connection about 2 % of its
    // instructions (see `Application::open`).
    let session = {
        route.app.open(&Client {
            connection_id: &id,
            path: request.uri().path(),
            query: request.uri().query(),
            headers: request.headers(),
            peer: request
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0),
            identity: identity.as_ref(),
            subprotocol: selection.subprotocol.as_deref(),
            speaks_warmgate: selection.speaks_warmgate,
        })
    };
    let (response, upgrade_future) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(upgrade) => upgrade,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "cannot_upgrade",
                &format!("cannot upgrade: {error}"),
            )
            .answer(refusal_log);
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
    let answered = selection
        .subprotocol
        .as_deref()
        .and_then(|protocol| HeaderValue::from_str(protocol).ok())
        .or_else(|| offers_warmgate.then_some(HeaderValue::from_static(SUBPROTOCOL)));
    let mut chosen = Chosen {
        id,
        identity,
        speaks_warmgate: selection.speaks_warmgate,
        session,
        started: None,
    };
    // A ready gate starts the application (dials the backend) while the
    // 101 goes out, rather than after: the client's first frame comes one
    // dial sooner.
    let start_now = open.is_some()
        && gate
            .inner
            .handle
            .with_current(|snapshot| snapshot.state.admits_traffic());
    let task = async move {
        let upgraded = if start_now {
            let (upgraded, started) = tokio::join!(upgrade_future, chosen.session.admit());
            chosen.started = Some(started);
            upgraded
        } else {
            upgrade_future.await
        };
        match upgraded {
            Ok(ws) => connection::run(ws, inner, route, chosen, upgraded_at, open).await,
            Err(error) => {
                if matches!(chosen.started, Some(Ok(()))) {
                    // The backend was dialed for a client that left.
                    chosen.session.close(1001, "client left").await;
                }
                tracing::Span::current().record("outcome", "left_during_upgrade");
                crate::measure::left_during_upgrade();
                tracing::debug!(%error, "client left during the upgrade");
            }
        }
    };
    // Boxed, so the task holds a pointer, not the connection's whole state
    // (tokio copies a task's future into place at the spawn and with each
    // change of its stage).
    tokio::spawn(Box::pin(task).instrument(span));
    let mut response = response.map(|_| Body::empty());
    if let Some(answered) = answered {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, answered);
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

/// True when a request asks to become a WebSocket (RFC 6455 section 4.1):
/// `Upgrade` lists `websocket` and `Connection` lists `upgrade`, in any
/// case. An `Upgrade` that `Connection` does not name is an ordinary
/// hop-by-hop header. The first check of [`check_handshake`]; public for
/// the HTTP proxy, which must not forward such a request as plain HTTP.
pub fn asks_for_websocket(headers: &HeaderMap) -> bool {
    header_lists(headers, header::UPGRADE, "websocket")
        && header_lists(headers, header::CONNECTION, "upgrade")
}

/// True when a comma-separated header lists `token`, ignoring case. A
/// value that is not visible ASCII lists nothing (see [`listed`]).
fn header_lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    listed(headers, name).any(|listed| listed.eq_ignore_ascii_case(token))
}

/// Every `reason` label [`check_handshake`] and the gate refuse an upgrade
/// with, for registering their series up front.
pub const HANDSHAKE_REFUSAL_REASONS: [&str; 10] = [
    "not_get",
    "http_version",
    "not_an_upgrade",
    "websocket_version",
    "websocket_key",
    "request_body",
    "repeated_header",
    "origin",
    "bearer_without_subprotocol",
    "cannot_upgrade",
];

/// Headers that an upgrade request carries at most once: RFC 6455 section
/// 11.3 says so of the key and the version (checked with them), RFC 6454
/// of `Origin`, and `Authorization` is not a list (RFC 9110 section 11.6.2),
/// so a second one would leave the token to check a guess.
const AT_MOST_ONCE: [(header::HeaderName, &str); 2] = [
    (header::ORIGIN, "Origin"),
    (header::AUTHORIZATION, "Authorization"),
];

/// Checks everything about the upgrade request that the client could have
/// got wrong (RFC 6455 section 4.2.1), answering the first problem found.
/// `Host` is not checked here: every request's head passes
/// `warmgate_http`'s rules before any route. Public so that the fuzz
/// targets can reach it; the gate calls it for every upgrade.
pub fn check_handshake(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Result<(), Refusal> {
    if method != Method::GET {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "not_get",
            &format!("a WebSocket upgrade must be a GET request, not {method}"),
        ));
    }
    // HTTP/1.0 has no Upgrade mechanism (RFC 6455 sections 4.1 and 4.2.1),
    // and HTTP/2 upgrades by extended CONNECT instead (RFC 8441).
    if version != Version::HTTP_11 {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "http_version",
            &format!("a WebSocket upgrade must be an HTTP/1.1 request, not {version:?}"),
        ));
    }
    if !asks_for_websocket(headers) {
        return Err(refusal(
            StatusCode::UPGRADE_REQUIRED,
            "not_an_upgrade",
            "this route speaks WebSocket: send `Connection: Upgrade` and `Upgrade: websocket`",
        ));
    }
    let mut versions = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    let version_ok = versions.next().map(HeaderValue::as_bytes) == Some(b"13".as_slice())
        && versions.next().is_none();
    if !version_ok {
        return Err(refusal(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_version",
            "Sec-WebSocket-Version must be 13, sent once",
        ));
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key_ok = keys
        .next()
        .is_some_and(|key| is_websocket_key(key.as_bytes()))
        && keys.next().is_none();
    if !key_ok {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "websocket_key",
            "Sec-WebSocket-Key must be 16 random bytes in base64 (24 characters), sent once",
        ));
    }
    // Bytes of a body would be read as the client's first frames.
    if has_body(headers) {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "request_body",
            "a WebSocket upgrade carries no body: send neither Transfer-Encoding nor a Content-Length other than 0",
        ));
    }
    for (name, spelled) in AT_MOST_ONCE {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "repeated_header",
                &format!("the {spelled} header must not be sent more than once"),
            ));
        }
    }
    if !allowed_origins.is_empty()
        && let Some(origin) = headers.get(header::ORIGIN)
    {
        let origin = origin
            .to_str()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_ascii_lowercase();
        if !allowed_origins.contains(&origin) {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "origin",
                &format!("origin {origin} is not allowed to open a WebSocket here"),
            ));
        }
    }
    Ok(())
}

/// True when the request announces a body: any `Transfer-Encoding`, or a
/// `Content-Length` other than 0. (hyper has already refused a
/// `Content-Length` it cannot read, or two that differ.)
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .any(|length| {
                let length = std::str::from_utf8(length.trim_ascii()).ok();
                length.and_then(|length| length.parse::<u64>().ok()) != Some(0)
            })
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
