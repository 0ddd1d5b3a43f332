//! The typed values of single keys: names, durations, addresses, thresholds,
//! bounded counts, origins, trusted proxies and check kinds.
//!
//! Each type checks its own value while it is deserialized, so a bad value is
//! reported with the key path and location that serde and toml already know.
//! Rules that involve more than one key (a `tcp` check needs `addr`, names are
//! unique) are the `validate` module's business.
//!
//! Long because every single-value type of the file is here with its parse
//! rule and its message, so that the messages read alike.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::{CheckConfig, ClientsConfig, Config, GateConfig};

/// A name for a phase or a check: not empty and not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name(pub(crate) String);

/// An OTLP collector's URL (`[telemetry] otlp_endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtlpEndpoint(pub(crate) crate::SecretUrl);

/// A duration written for humans ("250ms", "5s", "1m") that is greater than
/// zero. A zero timeout, interval or cap is always a mistake in this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NonZeroDuration(pub(crate) Duration);

/// An IP address and port to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListenAddress(pub(crate) SocketAddr);

/// A host and port to connect to. The host may be a DNS name, so it is kept
/// as text and resolved by the probe, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpTarget(pub(crate) String);

/// A hysteresis threshold: a count of at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threshold(pub(crate) u32);

/// A whole number from `MIN` to `MAX`, such as a connection limit or a size
/// in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounded<const MIN: usize, const MAX: usize>(pub(crate) usize);

/// `max_connections` and `max_held`.
pub(crate) type ClientCount =
    Bounded<{ *GateConfig::CLIENT_COUNT_RANGE.start() }, { *GateConfig::CLIENT_COUNT_RANGE.end() }>;

/// `max_message_bytes`.
pub(crate) type MessageBytes = Bounded<
    { *GateConfig::MESSAGE_BYTES_RANGE.start() },
    { *GateConfig::MESSAGE_BYTES_RANGE.end() },
>;

/// `messages_per_second`: the steady rate of the per-connection limit.
pub(crate) type MessageRate =
    Bounded<{ *GateConfig::MESSAGE_RATE_RANGE.start() }, { *GateConfig::MESSAGE_RATE_RANGE.end() }>;

/// `message_burst`: how many messages may come at once.
pub(crate) type MessageBurst = Bounded<
    { *GateConfig::MESSAGE_BURST_RANGE.start() },
    { *GateConfig::MESSAGE_BURST_RANGE.end() },
>;

/// `handshakes_per_second_per_address`.
pub(crate) type HandshakeRate = Bounded<
    { *ClientsConfig::HANDSHAKE_RATE_RANGE.start() },
    { *ClientsConfig::HANDSHAKE_RATE_RANGE.end() },
>;

/// `max_event_streams_per_address`.
pub(crate) type EventStreamCount = Bounded<
    { *ClientsConfig::EVENT_STREAMS_RANGE.start() },
    { *ClientsConfig::EVENT_STREAMS_RANGE.end() },
>;

/// One entry of `trusted_proxies`: an IP address (kept as a one-address
/// range) or a CIDR range without host bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustedProxy(pub(crate) ipnet::IpNet);

/// `retry_after`: a duration greater than zero and at most
/// [`GateConfig::MAX_RETRY_AFTER`], since clients wait this long (and up to
/// half again) before they come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryAfter(pub(crate) Duration);

/// A check's `backoff_cap`: a duration greater than zero and at most
/// [`CheckConfig::MAX_BACKOFF_CAP`], past which a recovered dependency
/// would go unnoticed for too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackoffCap(pub(crate) Duration);

/// `shutdown_delay`: a duration that may be zero (no delay). That it is at
/// most `drain_grace` is a rule across two keys, checked in `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShutdownDelay(pub(crate) Duration);

/// One entry of `allowed_origins`, normalised to `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedOrigin(pub(crate) String);

/// A list of values, such as `allowed_origins`. Its own type only so that a
/// single string in place of the list is refused with a useful expectation,
/// which each item type gives as [`ListItem::LIST_EXPECTED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct List<T>(pub(crate) Vec<T>);

/// A value that is written in a list.
pub(crate) trait ListItem {
    /// What the list should look like, for "expected" messages.
    const LIST_EXPECTED: &'static str;
}

/// `allowed_origins`.
pub(crate) type OriginList = List<AllowedOrigin>;

/// `trusted_proxies`.
pub(crate) type ProxyList = List<TrustedProxy>;

/// The `kind` of a check, which decides its probe and its kind-specific keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Tcp,
    Signal,
    Postgres,
    Redis,
    Http,
    Jwks,
}

const DURATION_EXPECTED: &str = "a duration such as \"250ms\" or \"5s\"";
const LISTEN_EXPECTED: &str = "an IP address and port such as \"127.0.0.1:8080\"";
const TARGET_EXPECTED: &str = "a host and port such as \"127.0.0.1:5432\" or \"db.internal:5432\"";
const PROXY_EXPECTED: &str =
    "an IP address such as \"10.0.0.7\" or a CIDR range such as \"10.0.0.0/8\"";
const ORIGIN_EXPECTED: &str =
    "an origin such as \"https://chat.example.com\" or \"http://localhost:8080\"";

// === impl Name ===

impl<'de> Deserialize<'de> for OtlpEndpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(
            deserializer,
            "an http:// or https:// URL such as \"http://localhost:4318\"",
            |text| crate::parse_otlp_endpoint(text).map(OtlpEndpoint),
        )
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(
            deserializer,
            "a non-empty name such as \"database\"",
            |text| {
                if text.trim().is_empty() {
                    Err(format!(
                        "invalid name {text:?}, expected a non-empty name such as \"database\""
                    ))
                } else {
                    Ok(Name(text.to_owned()))
                }
            },
        )
    }
}

/// The error for a duration past [`Config::MAX_DURATION`], which no setting
/// needs and which would overflow the clocks it is added to.
fn too_long(text: &str) -> String {
    format!(
        "invalid duration {text:?}, expected a duration of at most {}",
        humantime::format_duration(Config::MAX_DURATION)
    )
}

// === impl NonZeroDuration ===

impl NonZeroDuration {
    /// Parses `text` as a duration greater than zero and at most
    /// [`Config::MAX_DURATION`]; the error is the whole message.
    fn parse(text: &str) -> Result<Duration, String> {
        match humantime::parse_duration(text) {
            Ok(duration) if duration.is_zero() => Err(format!(
                "invalid duration {text:?}, expected a duration greater than zero such as \"250ms\" or \"5s\""
            )),
            Ok(duration) if duration > Config::MAX_DURATION => Err(too_long(text)),
            Ok(duration) => Ok(duration),
            Err(_) => Err(format!(
                "invalid duration {text:?}, expected {DURATION_EXPECTED}"
            )),
        }
    }

    /// [`NonZeroDuration::parse`], also refusing a duration past `max`;
    /// `example` is a good value, shown in that error.
    fn parse_at_most(text: &str, max: Duration, example: &str) -> Result<Duration, String> {
        let duration = Self::parse(text)?;
        if duration > max {
            return Err(format!(
                "invalid duration {text:?}, expected a duration greater than zero and at most {} such as {example:?}",
                humantime::format_duration(max)
            ));
        }
        Ok(duration)
    }
}

impl<'de> Deserialize<'de> for NonZeroDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, DURATION_EXPECTED, |text| {
            NonZeroDuration::parse(text).map(NonZeroDuration)
        })
    }
}

// === impl RetryAfter ===

impl<'de> Deserialize<'de> for RetryAfter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, DURATION_EXPECTED, |text| {
            NonZeroDuration::parse_at_most(text, GateConfig::MAX_RETRY_AFTER, "2s").map(RetryAfter)
        })
    }
}

// === impl BackoffCap ===

impl<'de> Deserialize<'de> for BackoffCap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, DURATION_EXPECTED, |text| {
            NonZeroDuration::parse_at_most(text, CheckConfig::MAX_BACKOFF_CAP, "4s").map(BackoffCap)
        })
    }
}

// === impl ShutdownDelay ===

impl<'de> Deserialize<'de> for ShutdownDelay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(
            deserializer,
            DURATION_EXPECTED,
            |text| match humantime::parse_duration(text) {
                Ok(delay) if delay > Config::MAX_DURATION => Err(too_long(text)),
                Ok(delay) => Ok(ShutdownDelay(delay)),
                Err(_) => Err(format!(
                    "invalid duration {text:?}, expected a duration such as \"1s\", or \"0s\" for none"
                )),
            },
        )
    }
}

// === impl ListenAddress ===

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, LISTEN_EXPECTED, |text| {
            text.parse()
                .map(ListenAddress)
                .map_err(|_| format!("invalid socket address {text:?}, expected {LISTEN_EXPECTED}"))
        })
    }
}

// === impl TcpTarget ===

impl TcpTarget {
    /// Why `text` is not a usable `host:port`, if it is not.
    fn problem(text: &str) -> Option<&'static str> {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Some("no port");
        };
        if host.is_empty() {
            return Some("no host");
        }
        if !matches!(port.parse::<u16>(), Ok(1..)) {
            return Some("the port is not a number from 1 to 65535");
        }
        // A host with a colon is an IPv6 address, which needs brackets to be
        // told apart from the port; a host in brackets must be one.
        if host.contains(':') || host.starts_with('[') {
            let bracketed = host
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .is_some_and(|inner| inner.parse::<Ipv6Addr>().is_ok());
            if !bracketed {
                return Some(
                    "an IPv6 host must be a valid address in brackets, as in \"[::1]:5432\"",
                );
            }
        }
        None
    }
}

impl<'de> Deserialize<'de> for TcpTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, TARGET_EXPECTED, |text| {
            match Self::problem(text) {
                Some(problem) => Err(format!(
                    "invalid address {text:?} ({problem}), expected {TARGET_EXPECTED}"
                )),
                None => Ok(TcpTarget(text.to_owned())),
            }
        })
    }
}

// === impl Threshold ===

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ThresholdVisitor;

        impl Visitor<'_> for ThresholdVisitor {
            type Value = Threshold;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of at least 1, such as 3")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Threshold, E> {
                match u32::try_from(value) {
                    Ok(count) if count >= 1 => Ok(Threshold(count)),
                    _ => Err(E::custom(format!(
                        "invalid threshold {value}, expected a whole number from 1 to {}",
                        u32::MAX
                    ))),
                }
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Threshold, E> {
                self.visit_i64(i64::try_from(value).unwrap_or(i64::MAX))
            }
        }

        deserializer.deserialize_u32(ThresholdVisitor)
    }
}

// === impl Bounded ===

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<const MIN: usize, const MAX: usize>;

        impl<const MIN: usize, const MAX: usize> Visitor<'_> for BoundedVisitor<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a whole number from {MIN} to {MAX}")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
                match usize::try_from(value) {
                    Ok(number) if (MIN..=MAX).contains(&number) => Ok(Bounded(number)),
                    _ => Err(E::custom(format!(
                        "invalid value {value}, expected a whole number from {MIN} to {MAX}"
                    ))),
                }
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
                self.visit_i64(i64::try_from(value).unwrap_or(i64::MAX))
            }
        }

        deserializer.deserialize_u64(BoundedVisitor::<MIN, MAX>)
    }
}

// === impl AllowedOrigin ===

impl AllowedOrigin {
    /// The origin `text` names, normalised as a browser sends it in an
    /// `Origin` header (`https://Chat.Example.com:443/` becomes
    /// `https://chat.example.com`), or why it is not one.
    fn normalise(text: &str) -> Result<String, String> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace".to_owned());
        }
        if !text.contains("://") {
            return Err("no scheme; write it with http:// or https://".to_owned());
        }
        let url = url::Url::parse(text).map_err(|error| error.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme `{}` is not http or https", url.scheme()));
        }
        let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
            return Err("no host".to_owned());
        };
        if host.contains('*') {
            return Err("wildcards are not supported; list each origin".to_owned());
        }
        let not_part = if !url.username().is_empty() || url.password().is_some() {
            Some("a user name or password")
        } else if url.path() != "/" {
            Some("a path")
        } else if url.query().is_some() {
            Some("a query")
        } else if url.fragment().is_some() {
            Some("a fragment")
        } else {
            None
        };
        if let Some(part) = not_part {
            return Err(format!(
                "{part} is not part of an origin, only a scheme, a host and a port"
            ));
        }
        Ok(url.origin().ascii_serialization())
    }
}

impl<'de> Deserialize<'de> for AllowedOrigin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, ORIGIN_EXPECTED, |text| {
            AllowedOrigin::normalise(text)
                .map(AllowedOrigin)
                .map_err(|problem| {
                    format!("invalid origin {text:?} ({problem}), expected {ORIGIN_EXPECTED}")
                })
        })
    }
}

// === impl List ===

impl ListItem for AllowedOrigin {
    const LIST_EXPECTED: &'static str =
        "a list of origins such as [\"https://chat.example.com\"], or [] for any origin";
}

impl<'de, T: Deserialize<'de> + ListItem> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + ListItem> Visitor<'de> for ListVisitor<T> {
            type Value = List<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::LIST_EXPECTED)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List(items))
            }
        }

        deserializer.deserialize_seq(ListVisitor(PhantomData))
    }
}

// === impl TrustedProxy ===

impl TrustedProxy {
    /// The range `text` names, or why it names none.
    fn parse(text: &str) -> Result<ipnet::IpNet, String> {
        if let Ok(address) = text.parse::<std::net::IpAddr>() {
            return Ok(ipnet::IpNet::from(address.to_canonical()));
        }
        let range = text
            .parse::<ipnet::IpNet>()
            .map_err(|_| format!("invalid address or range {text:?}, expected {PROXY_EXPECTED}"))?;
        if range.trunc() != range {
            // "10.0.0.5/8" is more likely a typo than a wish for the range.
            return Err(format!(
                "invalid range {text:?} (the address has bits set past the prefix length), expected {:?} for the range or {:?} for the one address",
                range.trunc().to_string(),
                range.addr().to_string()
            ));
        }
        Ok(range)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, PROXY_EXPECTED, |text| {
            TrustedProxy::parse(text).map(TrustedProxy)
        })
    }
}

impl ListItem for TrustedProxy {
    const LIST_EXPECTED: &'static str = "a list of addresses and ranges such as [\"10.0.0.0/8\", \"192.0.2.7\"], or [] to trust no proxy";
}

// === impl ProbeKind ===

impl ProbeKind {
    pub(crate) const ALL: [ProbeKind; 6] = [
        ProbeKind::Tcp,
        ProbeKind::Signal,
        ProbeKind::Postgres,
        ProbeKind::Redis,
        ProbeKind::Http,
        ProbeKind::Jwks,
    ];

    /// The name written in the file and reported in snapshots.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Signal => "signal",
            ProbeKind::Postgres => "postgres",
            ProbeKind::Redis => "redis",
            ProbeKind::Http => "http",
            ProbeKind::Jwks => "jwks",
        }
    }

    /// The kind-specific keys this kind reads. Any other kind-specific key is
    /// refused for it, so a key meant for another kind cannot be silently
    /// ignored.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            ProbeKind::Tcp => &["addr"],
            ProbeKind::Signal | ProbeKind::Jwks => &[],
            ProbeKind::Postgres | ProbeKind::Redis => &["url", "url_env"],
            ProbeKind::Http => &["url", "url_env", "expect_status", "expect_body"],
        }
    }

    /// The URL schemes this kind connects with; empty for kinds without a
    /// URL.
    pub(crate) fn url_schemes(self) -> &'static [&'static str] {
        match self {
            ProbeKind::Postgres => &["postgres", "postgresql"],
            ProbeKind::Redis => &["redis"],
            ProbeKind::Http => &["http", "https"],
            ProbeKind::Tcp | ProbeKind::Signal | ProbeKind::Jwks => &[],
        }
    }

    /// How many failures in a row turn a passing check to failing when the
    /// file does not say. A signal is set deliberately, so one report counts.
    pub(crate) fn default_failure_threshold(self) -> u32 {
        match self {
            ProbeKind::Signal => 1,
            ProbeKind::Tcp
            | ProbeKind::Postgres
            | ProbeKind::Redis
            | ProbeKind::Http
            | ProbeKind::Jwks => 3,
        }
    }
}

/// The list of kind names, for "expected" messages: `"tcp" or "signal"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindNames;

impl fmt::Display for KindNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_kinds = ProbeKind::ALL.len();
        for (index, kind) in ProbeKind::ALL.iter().enumerate() {
            match index {
                0 => {}
                _ if index + 1 == n_kinds => f.write_str(" or ")?,
                _ => f.write_str(", ")?,
            }
            write!(f, "{:?}", kind.name())?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ProbeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, format!("a check kind: {KindNames}"), |text| {
            ProbeKind::ALL
                .into_iter()
                .find(|kind| kind.name() == text)
                .ok_or_else(|| format!("unknown kind {text:?}, expected {KindNames}"))
        })
    }
}

/// `[auth] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMode {
    None,
    Jwt,
}

impl<'de> Deserialize<'de> for AuthMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "\"none\" or \"jwt\"";
        deserialize_text(deserializer, EXPECTED, |text| match text {
            "none" => Ok(AuthMode::None),
            "jwt" => Ok(AuthMode::Jwt),
            _ => Err(format!("unknown mode {text:?}, expected {EXPECTED}")),
        })
    }
}

/// `expect_status`: one HTTP status or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(
    untagged,
    expecting = "an HTTP status such as 200, or a list such as [200, 204]"
)]
pub(crate) enum StatusList {
    One(i64),
    Many(Vec<i64>),
}

impl StatusList {
    /// The statuses, each checked to be from 100 to 599.
    pub(crate) fn statuses(&self) -> Result<Vec<u16>, String> {
        let values = match self {
            StatusList::One(value) => vec![*value],
            StatusList::Many(values) => values.clone(),
        };
        if values.is_empty() {
            return Err("empty list, expected at least one HTTP status such as 200".to_owned());
        }
        values
            .into_iter()
            .map(|value| {
                u16::try_from(value)
                    .ok()
                    .filter(|status| (100..=599).contains(status))
                    .ok_or_else(|| {
                        format!("invalid HTTP status {value}, expected a status from 100 to 599")
                    })
            })
            .collect()
    }
}

// === text values ===

/// Deserializes a TOML string with `parse`, whose error message becomes the
/// error's whole message. A value of another type is refused with
/// `expecting`, which serde words as "invalid type: integer `5`, expected ...".
fn deserialize_text<'de, D, T, X>(
    deserializer: D,
    expecting: X,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    X: fmt::Display,
{
    struct TextVisitor<T, X, P> {
        expecting: X,
        parse: P,
        value: PhantomData<T>,
    }

    impl<T, X, P> Visitor<'_> for TextVisitor<T, X, P>
    where
        X: fmt::Display,
        P: FnOnce(&str) -> Result<T, String>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.expecting.fmt(f)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(TextVisitor {
        expecting,
        parse,
        value: PhantomData,
    })
}

// === upstream and routes ===

/// `[upstream] url`: `ws://` or `wss://` with a host; no user, password,
/// query or fragment; a path of `/` at most (the client's path is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamUrl(pub(crate) url::Url);

const UPSTREAM_URL_EXPECTED: &str = "a ws:// or wss:// URL such as \"ws://127.0.0.1:9000\"";

impl UpstreamUrl {
    fn parse(text: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(text).map_err(|error| {
            format!("invalid URL {text:?} ({error}), expected {UPSTREAM_URL_EXPECTED}")
        })?;
        let problem = if !matches!(url.scheme(), "ws" | "wss") {
            Some(format!("the scheme {:?} is not ws or wss", url.scheme()))
        } else if url.host_str().is_none_or(str::is_empty) {
            Some("it has no host".to_owned())
        } else if !url.username().is_empty() || url.password().is_some() {
            Some("a user or password does not go in the URL; the client's own `Authorization` is passed on".to_owned())
        } else if url.query().is_some() || url.fragment().is_some() {
            Some(
                "a query or fragment has no place here; the client's own query is passed on"
                    .to_owned(),
            )
        } else if url.path() != "/" && !url.path().is_empty() {
            Some(format!(
                "the path {:?} would be lost: the client's request path is kept as it is",
                url.path()
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(format!(
                "invalid upstream URL {text:?} ({problem}), expected {UPSTREAM_URL_EXPECTED}"
            )),
            None => Ok(url),
        }
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, UPSTREAM_URL_EXPECTED, |text| {
            UpstreamUrl::parse(text).map(UpstreamUrl)
        })
    }
}

/// `max_concurrent_dials`.
pub(crate) type DialCount = Bounded<
    { *crate::UpstreamConfig::DIALS_RANGE.start() },
    { *crate::UpstreamConfig::DIALS_RANGE.end() },
>;

/// True for an RFC 9110 token character (section 5.6.2): what a header
/// name and a WebSocket subprotocol (RFC 6455 section 4.1) are made of.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// One entry of `[upstream] subprotocols`: a token, and not one warmgate
/// keeps for itself (`warmgate.v1`, `bearer.<token>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subprotocol(pub(crate) String);

const SUBPROTOCOL_EXPECTED: &str = "a subprotocol name such as \"chat.v2\"";

impl<'de> Deserialize<'de> for Subprotocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(deserializer, SUBPROTOCOL_EXPECTED, |text| {
            if text.is_empty() || !text.chars().all(is_token_char) {
                Err(format!(
                    "invalid subprotocol {text:?} (not an RFC 6455 token), expected {SUBPROTOCOL_EXPECTED}"
                ))
            } else if text == "warmgate.v1" || text.starts_with("bearer.") {
                Err(format!(
                    "{text:?} is warmgate's own and never goes upstream, expected the backend's application subprotocol such as \"chat.v2\""
                ))
            } else {
                Ok(Subprotocol(text.to_owned()))
            }
        })
    }
}

impl ListItem for Subprotocol {
    const LIST_EXPECTED: &'static str =
        "a list of subprotocols such as [\"chat.v2\"], or [] for none";
}

/// `subprotocols`.
pub(crate) type SubprotocolList = List<Subprotocol>;

/// `identity_header`: an HTTP header name, kept lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderName(pub(crate) String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "a header name such as \"X-Warmgate-Sub\"";
        deserialize_text(deserializer, EXPECTED, |text| {
            if text.is_empty() || !text.chars().all(is_token_char) {
                Err(format!("invalid header name {text:?}, expected {EXPECTED}"))
            } else {
                Ok(HeaderName(text.to_ascii_lowercase()))
            }
        })
    }
}

/// `[[route]] path`: starts with `/`; no query, fragment or space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePath(pub(crate) String);

impl<'de> Deserialize<'de> for RoutePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "a path such as \"/ws\", or a prefix such as \"/ws/*\"";
        deserialize_text(deserializer, EXPECTED, |text| {
            // A `*` only as the last segment, which makes a prefix route;
            // `{` and `}` would be read as the router's captures.
            let body = text.strip_suffix("/*").unwrap_or(text);
            let fine = text.starts_with('/')
                && !body.contains(['?', '#', '*', '{', '}'])
                && text.chars().all(|c| c.is_ascii_graphic());
            if fine {
                Ok(RoutePath(text.to_owned()))
            } else {
                Err(format!(
                    "invalid path {text:?} (a path starts with `/` and has no query, fragment, space, braces, or `*` but as a last `/*`), expected {EXPECTED}"
                ))
            }
        })
    }
}

impl<'de> Deserialize<'de> for crate::AppKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "\"chat\", \"echo\" or \"upstream\"";
        deserialize_text(deserializer, EXPECTED, |text| {
            crate::AppKind::ALL
                .into_iter()
                .find(|kind| kind.name() == text)
                .ok_or_else(|| format!("unknown app {text:?}, expected {EXPECTED}"))
        })
    }
}
