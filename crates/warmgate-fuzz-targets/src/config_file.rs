//! The `config_file` target: the text of a config file, through
//! [`Config::from_toml_str`].
//!
//! Bytes that are not UTF-8 stop where [`Config::from_file`] stops them,
//! with a read error before any parsing. What is checked besides not
//! panicking: a refused file gets one complete line that starts with the
//! file's name, says what is wrong, and points inside the text when it
//! points anywhere; an accepted one keeps the invariants documented on
//! [`Config`] and [`GateConfig`] (unique non-empty names, thresholds of at
//! least 1, durations above zero, numbers within their ranges, origins
//! normalised), every allowed origin is let through by the handshake check
//! when a browser sends it, and it turns into a plan and a description, as
//! `warmgate` does at startup and in `check-config`.

use std::collections::HashSet;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, header};
use warmgate_config::{Config, ConfigError, GateConfig, Location};

/// The name the fuzzed text is given, which every error must start with.
pub const SOURCE: &str = "fuzz.toml";

/// The fuzz target's body.
pub fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
}

/// Parses `text` and checks the promises of [`Config::from_toml_str`].
///
/// # Panics
///
/// When the parser panics or breaks one of its promises.
pub fn check(text: &str) {
    match Config::from_toml_str(text, SOURCE) {
        Ok(config) => {
            assert_eq!(config.source, SOURCE);
            assert_config_invariants(&config);
            assert_gate_invariants(&config.gate);
            let plan = config.plan();
            let description = config.describe();
            assert!(
                !description.is_empty(),
                "an accepted config describes itself ({plan:?})"
            );
        }
        Err(error) => {
            let message = error.to_string();
            let prefix = format!("{SOURCE}: ");
            assert!(
                message.starts_with(&prefix) && message.len() > prefix.len(),
                "an error starts with the file's name and says more: {message:?}"
            );
            assert!(
                !message.contains(['\n', '\r']),
                "an error is one line: {message:?}"
            );
            if let Some(location) = location(&error) {
                assert_inside(text, location, &message);
            }
        }
    }
}

fn location(error: &ConfigError) -> Option<Location> {
    match error {
        ConfigError::Syntax { location, .. } | ConfigError::Invalid { location, .. } => *location,
        _ => None,
    }
}

/// A location points at a character of the text, or just past its end.
fn assert_inside(text: &str, location: Location, message: &str) {
    let Location { line, column } = location;
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} of a text of {} lines: {message:?}",
        lines.len()
    );
    let characters = lines
        .get(line - 1)
        .map_or(0, |text_line| text_line.chars().count());
    assert!(
        (1..=characters + 1).contains(&column),
        "column {column} of a line of {characters} characters: {message:?}"
    );
}

/// The invariant documented on [`Config`], for a config from this crate.
fn assert_config_invariants(config: &Config) {
    assert!(
        config.routes.has_chat_at_ws() || !config.routes.chat_page,
        "the chat page is served only beside the chat it talks to"
    );
    let routes = &config.routes.websocket;
    for (index, route) in routes.iter().enumerate() {
        assert!(
            routes[..index]
                .iter()
                .all(|earlier| earlier.path != route.path),
            "route paths are unique"
        );
        assert!(
            !warmgate_config::RESERVED_PATHS.contains(&route.path.as_str()),
            "no route takes a path of the gate's own"
        );
        assert!(
            route.app != warmgate_config::AppKind::Upstream || config.upstream.is_some(),
            "an upstream route comes with [upstream]"
        );
    }
    assert!(
        config.admin_read_token.is_none() || config.admin_token.is_some(),
        "a read token comes only beside a control token"
    );
    for proxy in &config.clients.trusted_proxies {
        assert_eq!(*proxy, proxy.trunc(), "a trusted range has no host bits");
    }
    let mut phase_names = HashSet::new();
    let mut check_names = HashSet::new();
    for phase in &config.phases {
        assert!(!phase.name.is_empty(), "a phase has an empty name");
        assert!(
            phase_names.insert(phase.name.as_str()),
            "two phases are named {:?}",
            phase.name
        );
        for check in &phase.checks {
            let name = &check.name;
            assert!(!name.is_empty(), "a check has an empty name");
            assert!(
                check_names.insert(name.as_str()),
                "two checks are named {name:?}"
            );
            assert!(
                check.failure_threshold >= 1 && check.success_threshold >= 1,
                "check {name:?} has a threshold below 1"
            );
            assert!(
                check.timeout > Duration::ZERO && check.interval > Duration::ZERO,
                "check {name:?} has a zero duration"
            );
        }
    }
}

/// The invariant documented on [`GateConfig`], for a config from this
/// crate; and every allowed origin is one the handshake check lets through.
fn assert_gate_invariants(gate: &GateConfig) {
    for (key, duration) in gate.durations() {
        assert!(duration > Duration::ZERO, "gate.{key} is zero");
    }
    assert!(gate.retry_after <= GateConfig::MAX_RETRY_AFTER);
    assert!(
        gate.shutdown_delay <= gate.drain_grace,
        "gate.shutdown_delay is longer than gate.drain_grace"
    );
    assert!(
        gate.drain_grace <= GateConfig::drain_grace_within(gate.shutdown_budget),
        "gate.drain_grace does not fit in gate.shutdown_budget"
    );
    let ranges = [
        (
            "max_connections",
            gate.max_connections,
            GateConfig::CLIENT_COUNT_RANGE,
        ),
        ("max_held", gate.max_held, GateConfig::CLIENT_COUNT_RANGE),
        (
            "max_message_bytes",
            gate.max_message_bytes,
            GateConfig::MESSAGE_BYTES_RANGE,
        ),
        (
            "messages_per_second",
            gate.messages_per_second,
            GateConfig::MESSAGE_RATE_RANGE,
        ),
        (
            "message_burst",
            gate.message_burst,
            GateConfig::MESSAGE_BURST_RANGE,
        ),
    ];
    for (key, value, range) in ranges {
        assert!(
            range.contains(&value),
            "gate.{key} = {value} is outside {range:?}"
        );
    }
    for origin in &gate.allowed_origins {
        assert_normalised(origin);
        assert_handshake_allows(origin, &gate.allowed_origins);
    }
}

/// `scheme://host[:port]` as a browser sends it: http or https, ASCII
/// lowercase, no path, no trailing slash, no default port.
fn assert_normalised(origin: &str) {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let Some(authority) = rest else {
        panic!("allowed origin {origin:?} is not http or https");
    };
    assert!(
        origin.is_ascii() && !origin.bytes().any(|byte| byte.is_ascii_uppercase()),
        "allowed origin {origin:?} is not ASCII lowercase"
    );
    assert!(
        !authority.is_empty() && !authority.contains(['/', '?', '#', '@', ' ']),
        "allowed origin {origin:?} is not scheme://host[:port]"
    );
    let default_port = if origin.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    assert!(
        !authority.ends_with(default_port),
        "allowed origin {origin:?} names its default port"
    );
}

/// A well-formed upgrade from a browser at `origin` passes the handshake
/// check with the config's `allowed_origins`.
fn assert_handshake_allows(origin: &str, allowed_origins: &[String]) {
    let Ok(origin_value) = HeaderValue::from_str(origin) else {
        panic!("allowed origin {origin:?} is not a header value");
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    headers.insert(header::ORIGIN, origin_value);
    if let Err(refusal) = warmgate_gate::check_handshake(
        &Method::GET,
        http::Version::HTTP_11,
        &headers,
        allowed_origins,
    ) {
        panic!(
            "a browser at allowed origin {origin:?} is refused: {}",
            refusal.message
        );
    }
}
