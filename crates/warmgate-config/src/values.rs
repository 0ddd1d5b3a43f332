//! The typed values of single keys: names, durations, addresses, thresholds
//! and check kinds.
//!
//! Each type checks its own value while it is deserialized, so a bad value is
//! reported with the key path and location that serde and toml already know.
//! Rules that involve more than one key (a `tcp` check needs `addr`, names are
//! unique) are the `validate` module's business.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A name for a phase or a check: not empty and not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name(pub(crate) String);

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

/// The `kind` of a check, which decides its probe and its kind-specific keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Tcp,
    Signal,
    Postgres,
    Redis,
    Http,
}

const DURATION_EXPECTED: &str = "a duration such as \"250ms\" or \"5s\"";
const LISTEN_EXPECTED: &str = "an IP address and port such as \"127.0.0.1:8080\"";
const TARGET_EXPECTED: &str = "a host and port such as \"127.0.0.1:5432\" or \"db.internal:5432\"";

// === impl Name ===

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

// === impl NonZeroDuration ===

impl<'de> Deserialize<'de> for NonZeroDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text(
            deserializer,
            DURATION_EXPECTED,
            |text| match humantime::parse_duration(text) {
                Ok(duration) if duration.is_zero() => Err(format!(
                    "invalid duration {text:?}, expected a duration greater than zero such as \"250ms\" or \"5s\""
                )),
                Ok(duration) => Ok(NonZeroDuration(duration)),
                Err(_) => Err(format!(
                    "invalid duration {text:?}, expected {DURATION_EXPECTED}"
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

// === impl ProbeKind ===

impl ProbeKind {
    pub(crate) const ALL: [ProbeKind; 5] = [
        ProbeKind::Tcp,
        ProbeKind::Signal,
        ProbeKind::Postgres,
        ProbeKind::Redis,
        ProbeKind::Http,
    ];

    /// The name written in the file and reported in snapshots.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Signal => "signal",
            ProbeKind::Postgres => "postgres",
            ProbeKind::Redis => "redis",
            ProbeKind::Http => "http",
        }
    }

    /// The kind-specific keys this kind reads. Any other kind-specific key is
    /// refused for it, so a key meant for another kind cannot be silently
    /// ignored.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            ProbeKind::Tcp => &["addr"],
            ProbeKind::Signal => &[],
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
            ProbeKind::Tcp | ProbeKind::Signal => &[],
        }
    }

    /// How many failures in a row turn a passing check to failing when the
    /// file does not say. A signal is set deliberately, so one report counts.
    pub(crate) fn default_failure_threshold(self) -> u32 {
        match self {
            ProbeKind::Signal => 1,
            ProbeKind::Tcp | ProbeKind::Postgres | ProbeKind::Redis | ProbeKind::Http => 3,
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
