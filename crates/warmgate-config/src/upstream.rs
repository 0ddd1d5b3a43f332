//! What an admitted client talks to: the WebSocket routes (`[[route]]`),
//! each naming its application, and the backend that proxy mode puts
//! warmgate in front of (`[upstream]`).
//!
//! ```toml
//! [upstream]
//! url = "ws://127.0.0.1:9000"   # ws:// or wss://; the client's path is kept
//! http = true                   # other plain HTTP requests are proxied too
//!
//! [[route]]
//! path = "/ws/*"                # `/ws/` and every path under it
//! app = "upstream"
//! ```
//!
//! Without `[[route]]` the routes are the demo's: `/ws` (chat) and `/echo`
//! (echo), each unless `[routes]` turns it off; or, with `[upstream]`,
//! `/ws` to the backend alone. Single values (a URL, a
//! path, a subprotocol) are checked while deserializing, in `values`; the
//! rules across keys (an `upstream` route needs `[upstream]`, paths are
//! unique and clear of the gate's own routes) are here.

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use crate::ConfigError;
use crate::error::Origin;
use crate::raw::{RawRoute, RawRoutes, RawUpstream};

/// The application an admitted WebSocket client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppKind {
    /// The demo chat rooms, in this process; the client speaks the warmgate
    /// protocol (`warmgate.v1`).
    Chat,
    /// Every message echoed back; transparent (no frames of warmgate's).
    Echo,
    /// The `[upstream]` backend: warmgate dials it at admission and relays
    /// frames both ways.
    Upstream,
}

impl AppKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [AppKind; 3] = [AppKind::Chat, AppKind::Echo, AppKind::Upstream];

    /// The name the config file uses: `"chat"`, `"echo"` or `"upstream"`.
    pub fn name(self) -> &'static str {
        match self {
            AppKind::Chat => "chat",
            AppKind::Echo => "echo",
            AppKind::Upstream => "upstream",
        }
    }
}

/// One WebSocket route of the public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRoute {
    /// The request path, such as `/ws`: starts with `/`, has no query.
    /// Ending in `/*` (`/ws/*`), the route serves that prefix and every
    /// path under it (`/ws/`, `/ws/rooms/7`); otherwise the exact path.
    pub path: String,
    /// What an admitted client on this path talks to.
    pub app: AppKind,
}

impl WebSocketRoute {
    /// The marker of a prefix route: a path ending in it serves every
    /// path under the prefix.
    pub const PREFIX_MARKER: &'static str = "/*";

    /// For a prefix route (`/ws/*`), the prefix with its slash (`/ws/`).
    pub fn prefix(&self) -> Option<&str> {
        self.path
            .strip_suffix('*')
            .filter(|_| self.path.ends_with(Self::PREFIX_MARKER))
    }

    /// The routes without `[[route]]`: `/ws` (chat) and `/echo` (echo).
    pub fn demo(chat: bool, echo: bool) -> Vec<WebSocketRoute> {
        let mut routes = Vec::new();
        if chat {
            routes.push(WebSocketRoute {
                path: "/ws".to_owned(),
                app: AppKind::Chat,
            });
        }
        if echo {
            routes.push(WebSocketRoute {
                path: "/echo".to_owned(),
                app: AppKind::Echo,
            });
        }
        routes
    }
}

/// The paths the public listener serves itself, which no `[[route]]` may
/// take (the chat page's files are under `/` and answer only `GET`).
pub const RESERVED_PATHS: [&str; 6] = [
    "/",
    "/livez",
    "/readyz",
    "/startupz",
    "/readiness",
    "/readiness/events",
];

/// The `[upstream]` table: the backend warmgate is a gate in front of.
///
/// Invariant, for a config that came from this crate: `url` is `ws://` or
/// `wss://` with a host, no user, no query and no fragment; its path is
/// empty or `/`; every subprotocol is an RFC 6455 token other than
/// `warmgate.v1` and not starting with `bearer.`; `max_concurrent_dials`
/// is within [`UpstreamConfig::DIALS_RANGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The backend's WebSocket address; a proxied client's path and query
    /// are appended to it. For plain HTTP, `ws` means `http` and `wss`
    /// means `https`.
    pub url: url::Url,
    /// When true, plain HTTP requests on paths that are not the gate's own
    /// are proxied to the backend too, under the same readiness rule.
    /// Default false.
    pub http: bool,
    /// The application subprotocols the backend speaks (RFC 6455 section
    /// 1.9), in no particular order: warmgate picks the client's first
    /// offer among them. Default none.
    pub subprotocols: Vec<String>,
    /// How many upstream dials may be in flight at once; clients past it
    /// stay held (and warmed) until a dial ends. Default 256.
    pub max_concurrent_dials: usize,
    /// How long one dial may take (TCP, TLS and the handshake) before the
    /// client is told `upstream_unavailable`. Default 5s.
    pub dial_timeout: Duration,
    /// The request header that carries the verified `sub` of an
    /// authenticated client to the backend. warmgate removes any copy a
    /// client sent, so the backend can trust it. Default
    /// `X-Warmgate-Sub`; lower-case on the wire (HTTP/1.1 header names are
    /// case-insensitive).
    pub identity_header: String,
}

impl UpstreamConfig {
    /// The default of `max_concurrent_dials`.
    pub const DEFAULT_MAX_CONCURRENT_DIALS: usize = 256;
    /// The values accepted for `max_concurrent_dials`.
    pub const DIALS_RANGE: RangeInclusive<usize> = 1..=100_000;
    /// The default of `dial_timeout`.
    pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default of `identity_header`.
    pub const DEFAULT_IDENTITY_HEADER: &'static str = "x-warmgate-sub";

    /// The backend's address for plain HTTP: `http` for `ws`, `https` for
    /// `wss`, the same host, port and path.
    pub fn http_base(&self) -> url::Url {
        let mut base = self.url.clone();
        let scheme = if self.url.scheme() == "wss" {
            "https"
        } else {
            "http"
        };
        // Changing between special schemes cannot fail.
        let _ = base.set_scheme(scheme);
        base
    }
}

/// `[upstream]` from the raw table; `None` without the table.
pub(crate) fn upstream(
    raw: Option<Spanned<RawUpstream>>,
    origin: &Origin<'_>,
) -> Result<Option<UpstreamConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let span = raw.span();
    let raw = raw.into_inner();
    let Some(url) = raw.url else {
        return Err(origin.invalid(
            "upstream.url",
            "missing key, expected the backend's WebSocket address such as `url = \"ws://127.0.0.1:9000\"`",
            Some(span),
        ));
    };
    Ok(Some(UpstreamConfig {
        url: url.into_inner().0,
        http: raw.http.is_some_and(Spanned::into_inner),
        subprotocols: raw
            .subprotocols
            .map(|list| list.0.into_iter().map(|protocol| protocol.0).collect())
            .unwrap_or_default(),
        max_concurrent_dials: raw
            .max_concurrent_dials
            .map_or(UpstreamConfig::DEFAULT_MAX_CONCURRENT_DIALS, |n| n.0),
        dial_timeout: raw
            .dial_timeout
            .map_or(UpstreamConfig::DEFAULT_DIAL_TIMEOUT, |timeout| timeout.0),
        identity_header: raw.identity_header.map_or_else(
            || UpstreamConfig::DEFAULT_IDENTITY_HEADER.to_owned(),
            |name| name.0,
        ),
    }))
}

/// The WebSocket routes: `[[route]]`, or the demo's from `[routes]`.
pub(crate) fn websocket_routes(
    raw: Vec<Spanned<RawRoute>>,
    raw_routes: &RawRoutes,
    upstream: Option<&UpstreamConfig>,
    origin: &Origin<'_>,
) -> Result<Vec<WebSocketRoute>, ConfigError> {
    if raw.is_empty() && upstream.is_none() {
        let flag =
            |value: &Option<Spanned<bool>>| value.as_ref().is_none_or(|value| *value.get_ref());
        return Ok(WebSocketRoute::demo(
            flag(&raw_routes.chat),
            flag(&raw_routes.echo),
        ));
    }
    let why = if raw.is_empty() {
        "with `[upstream]` and no `[[route]]`, `/ws` goes to the backend and the demo routes are off: expected this key removed, and any other route listed as a `[[route]]`"
    } else {
        "`[[route]]` lists the WebSocket routes when it is present: expected this key removed, and the route listed (or left out) as a `[[route]]`"
    };
    for (key, value) in [("chat", &raw_routes.chat), ("echo", &raw_routes.echo)] {
        if let Some(value) = value {
            return Err(origin.invalid(&format!("routes.{key}"), why, Some(value.span())));
        }
    }
    if raw.is_empty() {
        return Ok(vec![WebSocketRoute {
            path: "/ws".to_owned(),
            app: AppKind::Upstream,
        }]);
    }
    let mut routes: Vec<WebSocketRoute> = Vec::with_capacity(raw.len());
    for (index, route) in raw.into_iter().enumerate() {
        let span = route.span();
        let route = route.into_inner();
        let key = |name: &str| format!("route[{index}].{name}");
        let Some(path) = route.path else {
            return Err(origin.invalid(
                &key("path"),
                "missing key, expected the route's path such as `path = \"/ws\"`",
                Some(span),
            ));
        };
        let Some(app) = route.app else {
            return Err(origin.invalid(
                &key("app"),
                "missing key, expected `app = \"chat\"`, `\"echo\"` or `\"upstream\"`",
                Some(span),
            ));
        };
        let (path_span, path) = (path.span(), path.into_inner().0);
        let covers = |reserved: &&str| match path.strip_suffix('*') {
            Some(prefix) if path.ends_with(WebSocketRoute::PREFIX_MARKER) => {
                reserved.starts_with(prefix)
            }
            _ => *reserved == path,
        };
        if RESERVED_PATHS.iter().any(covers) {
            return Err(origin.invalid(
                &key("path"),
                &format!(
                    "{path:?} takes one of the gate's own routes ({}), expected another path such as \"/ws\"",
                    RESERVED_PATHS.join(", ")
                ),
                Some(path_span),
            ));
        }
        if routes.iter().any(|earlier| earlier.path == path) {
            return Err(origin.invalid(
                &key("path"),
                &format!("{path:?} is listed twice, expected each route's path once"),
                Some(path_span),
            ));
        }
        let (app_span, app) = (app.span(), app.into_inner());
        if app == AppKind::Upstream && upstream.is_none() {
            return Err(origin.invalid(
                &key("app"),
                "`app = \"upstream\"` needs the backend's address: expected an `[upstream]` table with `url = \"ws://...\"`",
                Some(app_span),
            ));
        }
        routes.push(WebSocketRoute { path, app });
    }
    Ok(routes)
}

#[cfg(test)]
mod tests;
