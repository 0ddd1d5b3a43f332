//! The public listener's edge: which routes it serves (`[routes]`, with the
//! WebSocket routes of `upstream`), and how
//! it tells client addresses apart and limits each one (`[clients]`).
//!
//! This module holds the typed tables, their defaults and the one rule that
//! ties two routes together. The values themselves (a proxy address or
//! range, a bounded count) are checked while deserializing, in `values`;
//! serving and limiting is the HTTP crate's business.

use std::ops::RangeInclusive;

use ipnet::IpNet;
use toml::Spanned;

use crate::ConfigError;
use crate::error::Origin;
use crate::raw::{RawClients, RawRoutes};
use crate::upstream::{AppKind, WebSocketRoute};

/// The `[routes]` table and `[[route]]`: which routes the public listener
/// serves. An optional route turned off answers 404. `/livez`, `/readyz`
/// and `/startupz` are always served.
///
/// Invariant, for a config that came from this crate: `chat_page` is on
/// only while `/ws` is a chat route, since the page talks to `/ws`; the
/// WebSocket routes' paths are unique and none is one of
/// [`crate::RESERVED_PATHS`]; an `upstream` route comes with `[upstream]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesConfig {
    /// `GET /` and the page's files: the demo chat page. Default on while
    /// `/ws` is a chat route.
    pub chat_page: bool,
    /// The WebSocket routes and the application behind each: `[[route]]`,
    /// or without it `/ws` (chat) and `/echo` (echo), each unless
    /// `[routes] chat = false` or `echo = false` turns it off.
    pub websocket: Vec<WebSocketRoute>,
    /// `GET /readiness` and `GET /readiness/events`: the public snapshot,
    /// which names every check and its kind. Default on.
    pub readiness_detail: bool,
}

impl Default for RoutesConfig {
    fn default() -> Self {
        Self {
            chat_page: true,
            websocket: WebSocketRoute::demo(true, true),
            readiness_detail: true,
        }
    }
}

impl RoutesConfig {
    /// The route on `path`, if there is one.
    pub fn websocket_route(&self, path: &str) -> Option<&WebSocketRoute> {
        self.websocket.iter().find(|route| route.path == path)
    }

    /// True when `/ws` is a chat route, which the chat page needs.
    pub fn has_chat_at_ws(&self) -> bool {
        self.websocket_route("/ws")
            .is_some_and(|route| route.app == AppKind::Chat)
    }
}

/// The `[clients]` table: how the public listener finds a client's address,
/// and the limits it applies to each address. Without a limit set, the
/// address is not limited (the default, since many users may share one
/// address behind a NAT).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientsConfig {
    /// Peers whose `X-Forwarded-For` is believed: addresses and CIDR ranges,
    /// stored as ranges (a lone address is a `/32` or `/128`). Empty (the
    /// default): the client's address is the socket's peer.
    pub trusted_proxies: Vec<IpNet>,
    /// WebSocket handshakes (`/ws` and `/echo`) each client address may
    /// start per second, bursting up to the same number at once; more get
    /// 429. `None` (the default): no limit.
    pub handshakes_per_second_per_address: Option<u32>,
    /// Open `/readiness/events` streams each client address may hold; more
    /// get 429. `None` (the default): no limit.
    pub max_event_streams_per_address: Option<usize>,
}

impl ClientsConfig {
    /// The values accepted for `handshakes_per_second_per_address`.
    pub const HANDSHAKE_RATE_RANGE: RangeInclusive<usize> = 1..=100_000;
    /// The values accepted for `max_event_streams_per_address`.
    pub const EVENT_STREAMS_RANGE: RangeInclusive<usize> = 1..=100_000;
}

/// `[routes]` from the raw table, with the WebSocket routes already read.
pub(crate) fn routes(
    raw: &RawRoutes,
    websocket: Vec<WebSocketRoute>,
    origin: &Origin<'_>,
) -> Result<RoutesConfig, ConfigError> {
    let flag = |value: &Option<Spanned<bool>>, default: bool| {
        value.as_ref().map_or(default, |value| *value.get_ref())
    };
    let mut routes = RoutesConfig {
        chat_page: false,
        websocket,
        readiness_detail: flag(&raw.readiness_detail, true),
    };
    let chat_at_ws = routes.has_chat_at_ws();
    routes.chat_page = flag(&raw.chat_page, chat_at_ws);
    if routes.chat_page && !chat_at_ws {
        let span = raw
            .chat_page
            .as_ref()
            .or(raw.chat.as_ref())
            .map(Spanned::span);
        return Err(origin.invalid(
            "routes.chat_page",
            "the chat page talks to the chat application on `/ws`, which this config does not serve: expected `chat_page = false`, or `/ws` served by `app = \"chat\"`",
            span,
        ));
    }
    Ok(routes)
}

/// `[clients]` from the raw table; every value was checked while
/// deserializing.
pub(crate) fn clients(raw: RawClients) -> ClientsConfig {
    ClientsConfig {
        trusted_proxies: raw
            .trusted_proxies
            .map(|list| list.0.into_iter().map(|proxy| proxy.0).collect())
            .unwrap_or_default(),
        handshakes_per_second_per_address: raw
            .handshakes_per_second_per_address
            // The range's upper end fits a u32.
            .map(|rate| u32::try_from(rate.0).unwrap_or(u32::MAX)),
        max_event_streams_per_address: raw.max_event_streams_per_address.map(|n| n.0),
    }
}
