//! The file as serde sees it: one struct per TOML table, every key optional.
//!
//! These structs mirror the file's shape and nothing more. Unknown keys are
//! refused here (`deny_unknown_fields`), and single values are checked by the
//! types in `values`; defaults and rules across keys are applied afterwards by
//! `validate`, which knows each item's key path. Checks are flat rather than an
//! enum tagged by `kind`, because serde buffers a tagged enum and loses the
//! spans that locate errors. A new kind adds its keys here as more optional
//! fields, and lists them in [`RawCheck::kind_specific_keys`].
//!
//! To add a section such as `[telemetry]`, add a `Raw*` struct and an
//! optional field on [`RawConfig`]; to add a key to `[gate]`, add a field to
//! [`RawGate`].

use std::ops::Range;

use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::Spanned;

use crate::ConfigError;
use crate::error::Origin;
use crate::values::{
    AuthMode, BackoffCap, ClientCount, DialCount, EventStreamCount, HandshakeRate, HeaderName,
    ListenAddress, MessageBurst, MessageBytes, MessageRate, Name, NonZeroDuration, OriginList,
    OtlpEndpoint, ProbeKind, ProxyList, RetryAfter, RoutePath, ShutdownDelay, StatusList,
    SubprotocolList, TcpTarget, Threshold, UpstreamUrl,
};
use crate::{LogFormat, OtlpProtocol};

/// The top level of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<Spanned<ListenAddress>>,
    pub(crate) admin_listen: Option<Spanned<ListenAddress>>,
    pub(crate) grpc_health_listen: Option<Spanned<ListenAddress>>,
    #[serde(default)]
    pub(crate) gate: RawGate,
    #[serde(default)]
    pub(crate) phase: Vec<Spanned<RawPhase>>,
    #[serde(default)]
    pub(crate) telemetry: RawTelemetry,
    pub(crate) admin_token: Option<Spanned<String>>,
    pub(crate) admin_token_env: Option<Spanned<String>>,
    pub(crate) admin_read_token: Option<Spanned<String>>,
    pub(crate) admin_read_token_env: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) auth: RawAuth,
    #[serde(default)]
    pub(crate) routes: RawRoutes,
    #[serde(default)]
    pub(crate) clients: RawClients,
    pub(crate) upstream: Option<Spanned<RawUpstream>>,
    #[serde(default)]
    pub(crate) route: Vec<Spanned<RawRoute>>,
}

/// The `[upstream]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of upstream settings")]
pub(crate) struct RawUpstream {
    pub(crate) url: Option<Spanned<UpstreamUrl>>,
    pub(crate) http: Option<Spanned<bool>>,
    pub(crate) subprotocols: Option<SubprotocolList>,
    pub(crate) max_concurrent_dials: Option<DialCount>,
    pub(crate) dial_timeout: Option<NonZeroDuration>,
    pub(crate) identity_header: Option<HeaderName>,
}

/// One `[[route]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a route table with `path` and `app`")]
pub(crate) struct RawRoute {
    pub(crate) path: Option<Spanned<RoutePath>>,
    pub(crate) app: Option<Spanned<crate::AppKind>>,
}

/// The `[routes]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of routes, each true or false"
)]
pub(crate) struct RawRoutes {
    pub(crate) chat_page: Option<Spanned<bool>>,
    pub(crate) chat: Option<Spanned<bool>>,
    pub(crate) echo: Option<Spanned<bool>>,
    pub(crate) readiness_detail: Option<Spanned<bool>>,
}

/// The `[clients]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of client address settings")]
pub(crate) struct RawClients {
    pub(crate) trusted_proxies: Option<ProxyList>,
    pub(crate) handshakes_per_second_per_address: Option<HandshakeRate>,
    pub(crate) max_event_streams_per_address: Option<EventStreamCount>,
}

/// The `[auth]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of auth settings")]
pub(crate) struct RawAuth {
    pub(crate) mode: Option<Spanned<AuthMode>>,
    pub(crate) algorithms: Option<Spanned<Vec<String>>>,
    pub(crate) jwks_url: Option<Spanned<String>>,
    pub(crate) jwks_url_env: Option<Spanned<String>>,
    pub(crate) secret_env: Option<Spanned<String>>,
    pub(crate) issuer: Option<Spanned<String>>,
    pub(crate) audience: Option<Spanned<String>>,
    pub(crate) leeway: Option<Spanned<String>>,
    pub(crate) allow_query_token: Option<Spanned<bool>>,
}

impl RawAuth {
    /// The keys that are present, with where they are.
    pub(crate) fn present_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        [
            ("mode", self.mode.as_ref().map(Spanned::span)),
            ("algorithms", self.algorithms.as_ref().map(Spanned::span)),
            ("jwks_url", self.jwks_url.as_ref().map(Spanned::span)),
            (
                "jwks_url_env",
                self.jwks_url_env.as_ref().map(Spanned::span),
            ),
            ("secret_env", self.secret_env.as_ref().map(Spanned::span)),
            ("issuer", self.issuer.as_ref().map(Spanned::span)),
            ("audience", self.audience.as_ref().map(Spanned::span)),
            ("leeway", self.leeway.as_ref().map(Spanned::span)),
            (
                "allow_query_token",
                self.allow_query_token.as_ref().map(Spanned::span),
            ),
        ]
        .into_iter()
        .filter_map(|(key, span)| Some((key, span?)))
        .collect()
    }
}

/// The `[telemetry]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of telemetry settings")]
pub(crate) struct RawTelemetry {
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) gcp_project: Option<Spanned<Name>>,
    pub(crate) otlp_endpoint: Option<OtlpEndpoint>,
    pub(crate) otlp_protocol: Option<OtlpProtocol>,
    pub(crate) service_name: Option<Spanned<Name>>,
    pub(crate) sampler: Option<Spanned<String>>,
    pub(crate) sampler_arg: Option<Spanned<f64>>,
}

/// The `[gate]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of gate settings")]
pub(crate) struct RawGate {
    pub(crate) startup_deadline: Option<NonZeroDuration>,
    pub(crate) retry_cap: Option<NonZeroDuration>,
    pub(crate) hold_timeout: Option<NonZeroDuration>,
    pub(crate) warming_interval: Option<NonZeroDuration>,
    pub(crate) retry_after: Option<RetryAfter>,
    pub(crate) shutdown_budget: Option<Spanned<NonZeroDuration>>,
    pub(crate) drain_grace: Option<Spanned<NonZeroDuration>>,
    pub(crate) shutdown_delay: Option<Spanned<ShutdownDelay>>,
    pub(crate) handshake_timeout: Option<NonZeroDuration>,
    pub(crate) ping_interval: Option<NonZeroDuration>,
    pub(crate) write_timeout: Option<NonZeroDuration>,
    pub(crate) max_connections: Option<ClientCount>,
    pub(crate) max_held: Option<ClientCount>,
    pub(crate) max_message_bytes: Option<MessageBytes>,
    pub(crate) allowed_origins: Option<OriginList>,
    pub(crate) messages_per_second: Option<MessageRate>,
    pub(crate) message_burst: Option<MessageBurst>,
}

/// One `[[phase]]` table.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a phase table with a name and checks"
)]
pub(crate) struct RawPhase {
    pub(crate) name: Option<Spanned<Name>>,
    #[serde(default)]
    pub(crate) check: Vec<Spanned<RawCheck>>,
}

/// One `[[phase.check]]` table: the keys every kind shares, then the keys
/// that only some kinds use.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a check table with a name and a kind"
)]
pub(crate) struct RawCheck {
    pub(crate) name: Option<Spanned<Name>>,
    pub(crate) kind: Option<Spanned<ProbeKind>>,
    pub(crate) required: Option<bool>,
    pub(crate) timeout: Option<NonZeroDuration>,
    pub(crate) interval: Option<NonZeroDuration>,
    pub(crate) backoff_cap: Option<BackoffCap>,
    pub(crate) failure_threshold: Option<Threshold>,
    pub(crate) success_threshold: Option<Threshold>,

    // Kind-specific keys. Each appears in some kind's `ProbeKind::keys`.
    pub(crate) addr: Option<Spanned<TcpTarget>>,
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) url_env: Option<Spanned<String>>,
    pub(crate) expect_status: Option<Spanned<StatusList>>,
    pub(crate) expect_body: Option<Spanned<String>>,
}

// === impl RawCheck ===

impl RawCheck {
    /// The kind-specific keys that are present, with where they are.
    pub(crate) fn kind_specific_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        [
            ("addr", self.addr.as_ref().map(Spanned::span)),
            ("url", self.url.as_ref().map(Spanned::span)),
            ("url_env", self.url_env.as_ref().map(Spanned::span)),
            (
                "expect_status",
                self.expect_status.as_ref().map(Spanned::span),
            ),
            ("expect_body", self.expect_body.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .filter_map(|(key, span)| Some((key, span?)))
        .collect()
    }
}

// === parsing ===

/// Parses the text into the raw structs, turning toml and serde errors into
/// [`ConfigError`]s that carry the key path and location.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(origin: &Origin<'_>) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(origin.text)
        .map_err(|error| origin.syntax(error.message(), error.span()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = key_path(error.path());
        let inner = error.inner();
        // serde speaks of fields; a TOML file has keys.
        let message = match inner.message().strip_prefix("unknown field ") {
            Some(rest) => format!("unknown key {rest}"),
            None => inner.message().to_owned(),
        };
        origin.invalid(&key, &message, inner.span())
    })
}

/// Writes a serde path the way the file's keys read: `phase[0].check[1].addr`.
/// The segments that `toml::Spanned` adds internally are dropped, and a key
/// that is not a bare TOML key is quoted.
fn key_path(path: &serde_path_to_error::Path) -> String {
    let mut text = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } if key.starts_with("$__serde_spanned_private") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(&toml_key(key));
            }
            Segment::Unknown => text.push_str(".?"),
        }
    }
    if text.is_empty() {
        text.push_str("(top level)");
    }
    text
}

/// A key as it would be written in TOML: bare when it can be, quoted if not.
pub(crate) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
