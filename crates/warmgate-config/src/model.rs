//! The typed configuration that the rest of warmgate reads, and its entry
//! points: reading a file, the embedded default, and the core [`Plan`].
//!
//! A [`Config`] that came from [`Config::from_file`] or
//! [`Config::from_toml_str`] has passed every rule, so turning it into a plan
//! cannot fail. This module does not parse or check anything itself: see the
//! `raw`, `values` and `validate` modules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use warmgate_core::{CheckSpec, PhaseSpec, Plan, PlanError};

use crate::error::Origin;
use crate::values::ProbeKind;
use crate::{
    AuthConfig, ClientsConfig, ConfigError, RoutesConfig, SecretText, SecretUrl, TelemetryConfig,
    UpstreamConfig, raw, validate,
};

/// The whole config file, with every default filled in.
///
/// Invariant, for a config that came from this crate: phase names are unique,
/// check names are unique across all phases, no name is empty, every
/// threshold is at least 1, every duration is greater than zero, and the
/// gate settings follow the invariant stated on [`GateConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config came from: the file path as given, or
    /// `<embedded default>`.
    pub source: String,
    /// The public listener for WebSocket clients. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The admin listener for probes and signals. Default `127.0.0.1:9090`.
    pub admin_listen: SocketAddr,
    /// A listener of its own for the gRPC health checking protocol only
    /// (`grpc.health.v1.Health`), without a token, for probes that cannot
    /// send one (Kubernetes' native gRPC probes). Default: none, gRPC
    /// health is on the admin listener only.
    pub grpc_health_listen: Option<SocketAddr>,
    pub gate: GateConfig,
    /// The startup phases, in reporting order.
    pub phases: Vec<PhaseConfig>,
    pub telemetry: TelemetryConfig,
    /// The `[auth]` table. Default: no authentication.
    pub auth: AuthConfig,
    /// The token admin requests must carry (`Authorization: Bearer`), from
    /// `admin_token` or the variable `admin_token_env` names. Required when
    /// `admin_listen` is not on loopback.
    pub admin_token: Option<SecretText>,
    /// A token accepted on the admin listener's reading routes only
    /// (metrics, the verbose snapshot), from `admin_read_token` or
    /// `admin_read_token_env`; set only beside `admin_token`, and different
    /// from it.
    pub admin_read_token: Option<SecretText>,
    /// The variable `admin_token_env` names, when the control token came
    /// from one: for messages that tell an operator which variable to set.
    pub admin_token_env: Option<String>,
    /// The variable `admin_read_token_env` names, likewise.
    pub admin_read_token_env: Option<String>,
    /// The `[routes]` table: which optional public routes are served.
    pub routes: RoutesConfig,
    /// The `[clients]` table: trusted proxies and per-address limits.
    pub clients: ClientsConfig,
    /// The `[upstream]` table: the backend of proxy mode. `None` (the
    /// default) when warmgate gates only its own applications.
    pub upstream: Option<UpstreamConfig>,
}

/// The `[gate]` table: how the gate as a whole behaves, and the settings of
/// the WebSocket gate.
///
/// Each default is also a `DEFAULT_*` constant, and each bound a constant, so
/// other crates need not repeat the numbers.
///
/// Invariant, for a config that came from this crate: every duration but
/// `shutdown_delay` is greater than zero, `shutdown_delay` is at most
/// `drain_grace`, `drain_grace` fits in `shutdown_budget` (see
/// [`GateConfig::drain_grace_within`]), `retry_after` is at most [`GateConfig::MAX_RETRY_AFTER`],
/// `max_connections` and `max_held` are within
/// [`GateConfig::CLIENT_COUNT_RANGE`], `max_message_bytes` is within
/// [`GateConfig::MESSAGE_BYTES_RANGE`], and every allowed origin is
/// normalised (see [`GateConfig::allowed_origins`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// How long startup may take before the gate is `failed`. Default 60s.
    pub startup_deadline: Duration,
    /// The longest wait between retries of a check that is not passing.
    /// Default 100ms.
    pub retry_cap: Duration,
    /// How long a WebSocket client is held while the gate is not ready
    /// before it is told `unavailable` and closed with 1013. Default 5s.
    pub hold_timeout: Duration,
    /// How often a held client is sent a `warming` frame. Default 1s.
    pub warming_interval: Duration,
    /// The base of the jittered `retry_after_ms` hint sent with
    /// `unavailable`. Default 2s; at most [`GateConfig::MAX_RETRY_AFTER`].
    pub retry_after: Duration,
    /// The whole shutdown, from the start of the drain (SIGTERM, SIGINT or
    /// `POST /drain`) to the process's exit: the drain grace, the closing
    /// handshakes, the last span export and the exit all fit in it. Default
    /// 10s, Cloud Run's time between SIGTERM and SIGKILL; on Kubernetes keep
    /// `terminationGracePeriodSeconds` above it. Invariant: at least
    /// `drain_grace` plus [`GateConfig::CLOSE_MARGIN`] plus
    /// [`GateConfig::EXIT_RESERVE`].
    pub shutdown_budget: Duration,
    /// Once draining starts, admitted clients get a `draining` frame and are
    /// closed with 1001 when this has passed. Default `shutdown_budget`
    /// minus [`GateConfig::CLOSE_MARGIN`] and [`GateConfig::EXIT_RESERVE`]:
    /// 7s with the default budget.
    pub drain_grace: Duration,
    /// After SIGTERM (and `POST /drain`; not after SIGINT), the listeners
    /// stay open at least this long, answering as draining, so that clients
    /// a load balancer still routes here are told to come back rather than
    /// refused. Default 1s, or `drain_grace` if that is shorter; zero for
    /// none. Invariant: at most `drain_grace`.
    pub shutdown_delay: Duration,
    /// A connection that has not completed its HTTP upgrade request within
    /// this is dropped; an idle HTTP/1.1 keep-alive connection is closed
    /// after it too. Default 10s.
    pub handshake_timeout: Duration,
    /// How often a silent client is pinged; it is closed after two
    /// unanswered pings. Default 20s.
    pub ping_interval: Duration,
    /// A WebSocket client that takes no byte of a frame for this long is a
    /// slow consumer: closed with 1008 (or dropped when it cannot take the
    /// close frame either). Default 5s.
    pub write_timeout: Duration,
    /// Open WebSocket connections past which a new client gets `unavailable`
    /// (reason `capacity`) and close 1013. Default 10000.
    pub max_connections: usize,
    /// Held clients past which a new client gets `unavailable` (reason
    /// `capacity`) and close 1013. Default 10000.
    pub max_held: usize,
    /// The largest frame or message a client may send; a larger one closes
    /// the connection with 1009. Default 65536 (64 KiB).
    pub max_message_bytes: usize,
    /// The browser origins allowed to open a WebSocket; empty (the default)
    /// allows any. When not empty, a request whose `Origin` header is not in
    /// the list is refused with 403 before the upgrade; a request without an
    /// `Origin` header (not a browser) is allowed.
    ///
    /// Each entry is normalised as a browser sends `Origin`:
    /// `scheme://host[:port]`, scheme `http` or `https`, lowercase, no
    /// trailing slash, no default port (`:443` for https, `:80` for http),
    /// and an international domain name in its ASCII (punycode) form.
    pub allowed_origins: Vec<String>,
    /// The steady rate of the per-connection message limit (a token
    /// bucket), in messages per second. Default 20.
    pub messages_per_second: usize,
    /// How many messages a connection may send at once before the rate
    /// applies. Default 40.
    pub message_burst: usize,
}

/// One `[[phase]]`: a named group of checks, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseConfig {
    pub name: String,
    /// May be empty.
    pub checks: Vec<CheckConfig>,
}

/// One `[[phase.check]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub name: String,
    /// A required check blocks readiness; an optional one only degrades it.
    /// Default true.
    pub required: bool,
    /// How long one attempt may take. Default 1s.
    pub timeout: Duration,
    /// How long to wait between attempts while the check passes. Default 2s.
    pub interval: Duration,
    /// Once the gate has been ready, the longest wait between attempts while
    /// the check is not passing: each wait is drawn uniformly from zero to a
    /// delay that doubles from 10ms up to this cap (full jitter), so waits
    /// average half the cap. Default twice `interval` (at most
    /// [`CheckConfig::MAX_BACKOFF_CAP`]), which keeps a broken dependency at
    /// about one attempt per interval from each instance. Before the first
    /// ready, `[gate] retry_cap` applies instead. At most
    /// [`CheckConfig::MAX_BACKOFF_CAP`].
    pub backoff_cap: Duration,
    /// Failures in a row that turn a passing check to failing. Default 3, or
    /// 1 for kind `signal`.
    pub failure_threshold: u32,
    /// Successes in a row that turn a failing check to passing. Default 1.
    pub success_threshold: u32,
    /// What is checked, and how.
    pub probe: ProbeConfig,
}

/// The kind of a check and the settings only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeConfig {
    /// Passes when a TCP connection to `addr` opens.
    Tcp {
        /// `host:port`; the host may be a DNS name, an IPv4 address or a
        /// bracketed IPv6 address, and the port is from 1 to 65535.
        addr: String,
    },
    /// Passes when the process itself reports it (for example, once the
    /// public listener is bound).
    Signal,
    /// Passes when `SELECT 1` succeeds over a kept connection.
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: SecretUrl,
    },
    /// Passes when `PING` is answered with `PONG` over a kept connection.
    Redis {
        /// `redis://[:password@]host:port[/db]`.
        url: SecretUrl,
    },
    /// Passes when a `GET` answers with an expected status (and body).
    Http {
        /// `http://` or `https://`.
        url: SecretUrl,
        /// The statuses that pass; `None` means any 2xx.
        expect_status: Option<Vec<u16>>,
        /// Text the response body must contain.
        expect_body: Option<String>,
    },
    /// Passes when the JWKS of `[auth]` is fetched and has a usable key;
    /// each pass stores the keys, so this is also their refresh.
    Jwks,
}

// === impl Config ===

impl Config {
    pub(crate) const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
    pub(crate) const DEFAULT_ADMIN_LISTEN: SocketAddr =
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

    /// The name that [`Config::embedded_default`] gives as its source.
    pub(crate) const EMBEDDED_DEFAULT_SOURCE: &str = "<embedded default>";

    /// The longest duration any setting accepts: one year (`"1y"`, 365.25
    /// days as the duration syntax counts it). None needs more, and a longer
    /// one would overflow the clocks it is added to.
    pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);
    const EMBEDDED_DEFAULT_TOML: &str = include_str!("default.toml");

    /// Reads and checks a config file. `source` becomes the path as given.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let (text, file) = read_file(path)?;
        Self::from_toml_str(&text, &file)
    }

    /// Parses and checks config text. `source` names it in errors and in
    /// [`Config::source`].
    pub fn from_toml_str(text: &str, source: &str) -> Result<Config, ConfigError> {
        let origin = Origin { file: source, text };
        let raw = raw::parse(&origin)?;
        let config = validate::config(raw, &origin)?;
        // The rules above include every rule of the core plan, so this only
        // fails if the core gains a rule that this crate does not yet check.
        // Refusing the file then is better than a panic in `plan()`.
        config
            .try_plan()
            .map_err(|error| origin.invalid("phase", &error.to_string(), None))?;
        Ok(config)
    }

    /// The config built into the binary: one `integration` phase holding the
    /// `http_listener` signal, so it needs no outside service and is ready as
    /// soon as the public listener is bound.
    pub fn embedded_default() -> Config {
        Self::from_toml_str(Self::EMBEDDED_DEFAULT_TOML, Self::EMBEDDED_DEFAULT_SOURCE)
            .expect("the embedded default.toml is valid: a unit test parses it")
    }

    /// The phases and checks as the core machine's plan.
    ///
    /// # Panics
    ///
    /// Only if the public fields were edited by hand to break the invariant
    /// stated on [`Config`]; a config from this crate never panics here.
    pub fn plan(&self) -> Plan {
        self.try_plan()
            .expect("a config from this crate follows every plan rule: from_toml_str checked it")
    }

    fn try_plan(&self) -> Result<Plan, PlanError> {
        let phases = self
            .phases
            .iter()
            .map(|phase| PhaseSpec {
                name: phase.name.clone(),
                checks: phase
                    .checks
                    .iter()
                    .map(|check| CheckSpec {
                        name: check.name.clone(),
                        kind: check.probe.kind().to_owned(),
                        required: check.required,
                        failure_threshold: check.failure_threshold,
                        success_threshold: check.success_threshold,
                    })
                    .collect(),
            })
            .collect();
        Plan::new(phases, self.gate.startup_deadline)
    }
}

/// A config file's text and its name for errors and [`Config::source`]
/// (the path as given).
pub(crate) fn read_file(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, file)),
        Err(error) => Err(ConfigError::Read { file, error }),
    }
}

// === impl GateConfig ===

impl GateConfig {
    /// The default `startup_deadline`: 60s.
    pub const DEFAULT_STARTUP_DEADLINE: Duration = Duration::from_secs(60);
    /// The default `retry_cap`: 100ms.
    pub const DEFAULT_RETRY_CAP: Duration = Duration::from_millis(100);
    /// The default `hold_timeout`: 5s.
    pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default `warming_interval`: 1s.
    pub const DEFAULT_WARMING_INTERVAL: Duration = Duration::from_secs(1);
    /// The default `retry_after`: 2s.
    pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);
    /// The default `shutdown_budget`: 10s, Cloud Run's time between SIGTERM
    /// and SIGKILL.
    pub const DEFAULT_SHUTDOWN_BUDGET: Duration = Duration::from_secs(10);
    /// The part of `shutdown_budget` after `drain_grace` in which the last
    /// closing handshakes may finish: 1s. Past it the process stops waiting
    /// for them.
    pub const CLOSE_MARGIN: Duration = Duration::from_secs(1);
    /// The part of `shutdown_budget` kept for the last span export and the
    /// exit: 2s.
    pub const EXIT_RESERVE: Duration = Duration::from_secs(2);
    /// The default `drain_grace`: 7s, what the default budget leaves (see
    /// [`GateConfig::drain_grace_within`]).
    pub const DEFAULT_DRAIN_GRACE: Duration = Self::DEFAULT_SHUTDOWN_BUDGET
        .saturating_sub(Self::CLOSE_MARGIN)
        .saturating_sub(Self::EXIT_RESERVE);
    /// The default `shutdown_delay`: 1s (or `drain_grace`, if shorter).
    /// kube-apiserver's `--shutdown-delay-duration` is the same idea.
    pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(1);
    /// The default `handshake_timeout`: 10s.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `ping_interval`: 20s.
    pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
    /// The default `write_timeout`: 5s.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default `max_connections`: 10000.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// The default `max_held`: 10000.
    pub const DEFAULT_MAX_HELD: usize = 10_000;
    /// The default `max_message_bytes`: 65536 (64 KiB).
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

    /// The default `messages_per_second`: 20.
    pub const DEFAULT_MESSAGES_PER_SECOND: usize = 20;
    /// The default `message_burst`: 40.
    pub const DEFAULT_MESSAGE_BURST: usize = 40;
    /// The values accepted for `messages_per_second`.
    pub const MESSAGE_RATE_RANGE: RangeInclusive<usize> = 1..=100_000;
    /// The values accepted for `message_burst`.
    pub const MESSAGE_BURST_RANGE: RangeInclusive<usize> = 1..=1_000_000;

    /// The longest `retry_after` accepted: 1 hour.
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
    /// The values accepted for `max_connections` and `max_held`.
    pub const CLIENT_COUNT_RANGE: RangeInclusive<usize> = 1..=1_000_000;
    /// The values accepted for `max_message_bytes`: from 125 bytes (the
    /// largest control frame payload) to 16 MiB.
    pub const MESSAGE_BYTES_RANGE: RangeInclusive<usize> = 125..=16 * 1024 * 1024;

    /// The longest `drain_grace` that fits in a shutdown budget: the budget
    /// minus [`GateConfig::CLOSE_MARGIN`] and [`GateConfig::EXIT_RESERVE`];
    /// zero when the budget is 3s or less.
    pub const fn drain_grace_within(shutdown_budget: Duration) -> Duration {
        shutdown_budget
            .saturating_sub(Self::CLOSE_MARGIN)
            .saturating_sub(Self::EXIT_RESERVE)
    }

    /// Every duration of the section that must be greater than zero, by its
    /// key, in file order: all but `shutdown_delay`, which may be zero.
    pub fn durations(&self) -> [(&'static str, Duration); 10] {
        [
            ("startup_deadline", self.startup_deadline),
            ("retry_cap", self.retry_cap),
            ("hold_timeout", self.hold_timeout),
            ("warming_interval", self.warming_interval),
            ("retry_after", self.retry_after),
            ("shutdown_budget", self.shutdown_budget),
            ("drain_grace", self.drain_grace),
            ("handshake_timeout", self.handshake_timeout),
            ("ping_interval", self.ping_interval),
            ("write_timeout", self.write_timeout),
        ]
    }
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            startup_deadline: Self::DEFAULT_STARTUP_DEADLINE,
            retry_cap: Self::DEFAULT_RETRY_CAP,
            hold_timeout: Self::DEFAULT_HOLD_TIMEOUT,
            warming_interval: Self::DEFAULT_WARMING_INTERVAL,
            retry_after: Self::DEFAULT_RETRY_AFTER,
            shutdown_budget: Self::DEFAULT_SHUTDOWN_BUDGET,
            drain_grace: Self::DEFAULT_DRAIN_GRACE,
            shutdown_delay: Self::DEFAULT_SHUTDOWN_DELAY,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            ping_interval: Self::DEFAULT_PING_INTERVAL,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_held: Self::DEFAULT_MAX_HELD,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            allowed_origins: Vec::new(),
            messages_per_second: Self::DEFAULT_MESSAGES_PER_SECOND,
            message_burst: Self::DEFAULT_MESSAGE_BURST,
        }
    }
}

// === impl CheckConfig ===

impl CheckConfig {
    pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    /// The longest `backoff_cap`: 1h.
    pub const MAX_BACKOFF_CAP: Duration = Duration::from_secs(60 * 60);

    /// The default `backoff_cap` for a check with this `interval`: twice
    /// the interval, at most [`CheckConfig::MAX_BACKOFF_CAP`].
    pub fn default_backoff_cap(interval: Duration) -> Duration {
        interval.saturating_mul(2).min(Self::MAX_BACKOFF_CAP)
    }
    pub(crate) const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
}

// === impl ProbeConfig ===

impl ProbeConfig {
    /// The kind's name as written in the file and reported in snapshots:
    /// `tcp`, `signal`, `postgres`, `redis`, `http` or `jwks`.
    pub fn kind(&self) -> &'static str {
        let kind = match self {
            ProbeConfig::Tcp { .. } => ProbeKind::Tcp,
            ProbeConfig::Signal => ProbeKind::Signal,
            ProbeConfig::Postgres { .. } => ProbeKind::Postgres,
            ProbeConfig::Redis { .. } => ProbeKind::Redis,
            ProbeConfig::Http { .. } => ProbeKind::Http,
            ProbeConfig::Jwks => ProbeKind::Jwks,
        };
        kind.name()
    }
}
