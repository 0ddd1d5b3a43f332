//! Unit tests: the embedded default, defaults, every rule and its message,
//! and a property test that no input panics.
//!
//! Long because it is the parser's error catalogue: one test per message the
//! file can get, beside the helpers they share. The documented keys have
//! their own module (`tests/documented_keys.rs`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use crate::{CheckConfig, Config, ConfigError, GateConfig, Location, PhaseConfig, ProbeConfig};

pub(crate) fn parse(text: &str) -> Config {
    match Config::from_toml_str(text, "test.toml") {
        Ok(config) => config,
        Err(error) => panic!("expected {text:?} to parse, got: {error}"),
    }
}

pub(crate) fn error(text: &str) -> String {
    match Config::from_toml_str(text, "test.toml") {
        Ok(config) => panic!("expected {text:?} to be refused, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

/// A file with one phase holding one check made of `keys`.
fn one_check(keys: &str) -> String {
    format!("[[phase]]\nname = \"p\"\n\n[[phase.check]]\nname = \"c\"\n{keys}\n")
}

const EXAMPLE: &str = r#"listen = "0.0.0.0:8080"
admin_listen = "127.0.0.1:9091"

[gate]
startup_deadline = "30s"
retry_cap = "250ms"

[[phase]]
name = "dependencies"

[[phase.check]]
name = "database"
kind = "tcp"                # tcp | signal
addr = "127.0.0.1:5432"
required = true
timeout = "1s"
interval = "2s"
failure_threshold = 3
success_threshold = 1

[[phase.check]]
name = "redis"
kind = "tcp"
addr = "cache.internal:6379"
required = false
timeout = "500ms"
interval = "1m"
backoff_cap = "30s"
failure_threshold = 5
success_threshold = 2

[[phase]]
name = "services"

[[phase.check]]
name = "agent_supervisor"
kind = "signal"

[[phase]]
name = "later"
"#;

// === the embedded default ===

#[test]
fn embedded_default_parses_to_one_signal_check() {
    let config = Config::embedded_default();
    assert_eq!(
        config,
        Config {
            source: "<embedded default>".to_owned(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin_listen: "127.0.0.1:9090".parse().unwrap(),
            grpc_health_listen: None,
            gate: GateConfig::default(),
            phases: vec![PhaseConfig {
                name: "integration".to_owned(),
                checks: vec![CheckConfig {
                    name: "http_listener".to_owned(),
                    required: true,
                    timeout: Duration::from_secs(1),
                    interval: Duration::from_secs(2),
                    backoff_cap: Duration::from_secs(4),
                    failure_threshold: 1,
                    success_threshold: 1,
                    probe: ProbeConfig::Signal,
                }],
            }],
            telemetry: crate::TelemetryConfig::default(),
            auth: crate::AuthConfig::None,
            admin_token: None,
            admin_read_token: None,
            admin_token_env: None,
            admin_read_token_env: None,
            routes: crate::RoutesConfig {
                chat_page: true,
                websocket: crate::WebSocketRoute::demo(true, true),
                readiness_detail: true,
            },
            clients: crate::ClientsConfig {
                trusted_proxies: vec![],
                handshakes_per_second_per_address: None,
                max_event_streams_per_address: None,
            },
            upstream: None,
        }
    );
    let plan = config.plan();
    assert_eq!(plan.n_checks(), 1);
    assert_eq!(plan.phases()[0].checks[0].kind, "signal");
}

#[test]
fn embedded_default_reads_from_file_too() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/default.toml");
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.source, path.display().to_string());
    assert_eq!(config.phases, Config::embedded_default().phases);
}

// === parsing and defaults ===

#[test]
fn full_example_parses_with_every_value() {
    let config = parse(EXAMPLE);
    assert_eq!(config.source, "test.toml");
    assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.admin_listen, "127.0.0.1:9091".parse().unwrap());
    assert_eq!(
        config.gate,
        GateConfig {
            startup_deadline: Duration::from_secs(30),
            retry_cap: Duration::from_millis(250),
            ..GateConfig::default()
        }
    );
    let names: Vec<_> = config
        .phases
        .iter()
        .map(|phase| phase.name.as_str())
        .collect();
    assert_eq!(names, ["dependencies", "services", "later"]);
    assert!(config.phases[2].checks.is_empty());
    assert_eq!(
        config.phases[0].checks[1],
        CheckConfig {
            name: "redis".to_owned(),
            required: false,
            timeout: Duration::from_millis(500),
            interval: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(30),
            failure_threshold: 5,
            success_threshold: 2,
            probe: ProbeConfig::Tcp {
                addr: "cache.internal:6379".to_owned()
            },
        }
    );
}

#[test]
fn plan_carries_names_kinds_and_thresholds() {
    let plan = parse(EXAMPLE).plan();
    assert_eq!(plan.startup_deadline(), Duration::from_secs(30));
    let checks: Vec<_> = plan
        .checks()
        .map(|(phase, check)| {
            (
                phase,
                check.name.as_str(),
                check.kind.as_str(),
                check.required,
                check.failure_threshold,
                check.success_threshold,
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            (0, "database", "tcp", true, 3, 1),
            (0, "redis", "tcp", false, 5, 2),
            (1, "agent_supervisor", "signal", true, 1, 1),
        ]
    );
}

#[test]
fn empty_file_takes_every_default() {
    let config = parse("");
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(config.gate.startup_deadline, Duration::from_secs(60));
    assert_eq!(config.gate.retry_cap, Duration::from_millis(100));
    assert!(config.phases.is_empty());
    assert_eq!(config.plan().n_checks(), 0);
}

#[test]
fn check_defaults_depend_on_kind() {
    let tcp = &parse(&one_check("kind = \"tcp\"\naddr = \"db:5432\"")).phases[0].checks[0];
    assert_eq!(
        (tcp.required, tcp.timeout, tcp.interval),
        (true, Duration::from_secs(1), Duration::from_secs(2))
    );
    assert_eq!((tcp.failure_threshold, tcp.success_threshold), (3, 1));
    let signal = &parse(&one_check("kind = \"signal\"")).phases[0].checks[0];
    assert_eq!((signal.failure_threshold, signal.success_threshold), (1, 1));
}

#[test]
fn phase_without_checks_is_allowed() {
    let config = parse("[[phase]]\nname = \"empty\"\n");
    assert!(config.phases[0].checks.is_empty());
}

#[test]
fn inline_tables_parse_like_headers() {
    let config = parse(
        r#"phase = [{ name = "p", check = [{ name = "c", kind = "tcp", addr = "[::1]:5432" }] }]"#,
    );
    assert_eq!(
        config.phases[0].checks[0].probe,
        ProbeConfig::Tcp {
            addr: "[::1]:5432".to_owned()
        }
    );
}

#[test]
fn durations_are_read_by_humantime() {
    let config = parse("[gate]\nstartup_deadline = \"1m 30s\"\nretry_cap = \"2ms\"\n");
    assert_eq!(config.gate.startup_deadline, Duration::from_secs(90));
    assert_eq!(config.gate.retry_cap, Duration::from_millis(2));
}

#[test]
fn tcp_addresses_may_be_names_or_ip_addresses() {
    for addr in [
        "127.0.0.1:5432",
        "db.internal:5432",
        "localhost:1",
        "[::1]:65535",
    ] {
        let config = parse(&one_check(&format!("kind = \"tcp\"\naddr = \"{addr}\"")));
        assert_eq!(
            config.phases[0].checks[0].probe,
            ProbeConfig::Tcp {
                addr: addr.to_owned()
            }
        );
    }
}

#[test]
fn listeners_may_share_port_zero() {
    let config = parse("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n");
    assert_eq!(config.listen, config.admin_listen);
}

// === errors: the exact wording ===

#[test]
fn bad_duration_names_file_key_value_expectation_and_location() {
    let text = r#"[[phase]]
name = "dependencies"

[[phase.check]]
name = "database"
kind = "tcp"
addr = "127.0.0.1:5432"

[[phase.check]]
name = "cache"
kind = "tcp"
timeout = "5x"
"#;
    let error = Config::from_toml_str(text, "examples/chat.toml").unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"examples/chat.toml: phase[0].check[1].timeout: invalid duration "5x", expected a duration such as "250ms" or "5s" (line 12, column 11)"#
    );
    match error {
        ConfigError::Invalid { key, location, .. } => {
            assert_eq!(key, "phase[0].check[1].timeout");
            assert_eq!(
                location,
                Some(Location {
                    line: 12,
                    column: 11
                })
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn unknown_key_lists_expected_keys() {
    assert_eq!(
        error(&one_check("kind = \"tcp\"\ntmeout = \"1s\"")),
        "test.toml: phase[0].check[0].tmeout: unknown key `tmeout`, expected one of `name`, `kind`, `required`, `timeout`, `interval`, `backoff_cap`, `failure_threshold`, `success_threshold`, `addr`, `url`, `url_env`, `expect_status`, `expect_body` (line 7, column 1)"
    );
}

#[test]
fn unknown_keys_are_refused_in_every_table() {
    assert_eq!(
        error("listen = \"127.0.0.1:1\"\nlisten_port = 1\n"),
        "test.toml: listen_port: unknown key `listen_port`, expected one of `listen`, `admin_listen`, `grpc_health_listen`, `gate`, `phase`, `telemetry`, `admin_token`, `admin_token_env`, `admin_read_token`, `admin_read_token_env`, `auth`, `routes`, `clients`, `upstream`, `route` (line 2, column 1)"
    );
    assert_eq!(
        error("[gate]\nhold_timout = \"1s\"\n"),
        "test.toml: gate.hold_timout: unknown key `hold_timout`, expected one of `startup_deadline`, `retry_cap`, `hold_timeout`, `warming_interval`, `retry_after`, `shutdown_budget`, `drain_grace`, `shutdown_delay`, `handshake_timeout`, `ping_interval`, `write_timeout`, `max_connections`, `max_held`, `max_message_bytes`, `allowed_origins`, `messages_per_second`, `message_burst` (line 2, column 1)"
    );
    assert!(error("[[phase]]\nname = \"p\"\nchecks = []\n").starts_with(
        "test.toml: phase[0].checks: unknown key `checks`, expected `name` or `check`"
    ));
    assert!(
        error("[telemetry]\nlog_fmt = \"gcp\"\n")
            .starts_with("test.toml: telemetry.log_fmt: unknown key `log_fmt`")
    );
}

#[test]
fn odd_keys_are_quoted_and_kept_on_one_line() {
    let message = error("\"two\\nlines\" = 1\n");
    assert!(
        message.starts_with(r#"test.toml: "two\nlines": unknown key `two\nlines`"#),
        "{message}"
    );
}

#[test]
fn unknown_kind_lists_the_kinds() {
    assert_eq!(
        error(&one_check("kind = \"mysql\"")),
        r#"test.toml: phase[0].check[0].kind: unknown kind "mysql", expected "tcp", "signal", "postgres", "redis", "http" or "jwks" (line 6, column 8)"#
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_eq!(
        error(&one_check("kind = \"signal\"\ntimeout = 5")),
        r#"test.toml: phase[0].check[0].timeout: invalid type: integer `5`, expected a duration such as "250ms" or "5s" (line 7, column 11)"#
    );
    assert_eq!(
        error(&one_check("kind = \"signal\"\nrequired = \"yes\"")),
        r#"test.toml: phase[0].check[0].required: invalid type: string "yes", expected a boolean (line 7, column 12)"#
    );
    assert!(error(&one_check("kind = 1")).contains(
        r#"expected a check kind: "tcp", "signal", "postgres", "redis", "http" or "jwks""#
    ));
    assert!(
        error("[gate]\nretry_cap = [1]\n")
            .starts_with("test.toml: gate.retry_cap: invalid type: sequence")
    );
    assert!(error("gate = 1\n").contains("expected a table of gate settings"));
    assert!(error("phase = 1\n").starts_with("test.toml: phase: invalid type: integer `1`"));
}

#[test]
fn syntax_errors_say_where() {
    assert_eq!(
        error("listen = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n"),
        "test.toml: invalid TOML: duplicate key (line 2, column 1)"
    );
    let message = error("[[phase]\n");
    assert!(
        message.starts_with("test.toml: invalid TOML: "),
        "{message}"
    );
    assert!(message.ends_with("(line 1, column 9)"), "{message}");
}

// === errors: values ===

#[test]
fn bad_socket_addresses_are_refused() {
    assert_eq!(
        error("listen = \"localhost:8080\"\n"),
        r#"test.toml: listen: invalid socket address "localhost:8080", expected an IP address and port such as "127.0.0.1:8080" (line 1, column 10)"#
    );
    assert!(
        error("admin_listen = \"127.0.0.1\"\n").starts_with(
            r#"test.toml: admin_listen: invalid socket address "127.0.0.1", expected"#
        )
    );
}

#[test]
fn listeners_must_differ() {
    assert_eq!(
        error("listen = \"127.0.0.1:9090\"\n"),
        r#"test.toml: admin_listen: address "127.0.0.1:9090" is also the `listen` address, expected a different address or port for the admin listener (line 1, column 10)"#
    );
}

#[test]
fn zero_durations_are_refused() {
    for key in ["timeout", "interval", "backoff_cap"] {
        assert_eq!(
            error(&one_check(&format!("kind = \"signal\"\n{key} = \"0s\""))),
            format!(
                r#"test.toml: phase[0].check[0].{key}: invalid duration "0s", expected a duration greater than zero such as "250ms" or "5s" (line 7, column {})"#,
                key.len() + 4
            )
        );
    }
    for key in ["retry_cap", "startup_deadline"] {
        let message = error(&format!("[gate]\n{key} = \"0ms\"\n"));
        assert!(
            message.starts_with(&format!("test.toml: gate.{key}: invalid duration \"0ms\", expected a duration greater than zero")),
            "{message}"
        );
    }
}

#[test]
fn the_backoff_cap_defaults_to_twice_the_interval_and_is_at_most_an_hour() {
    let config = parse(&one_check("kind = \"signal\"\ninterval = \"750ms\""));
    assert_eq!(
        config.phases[0].checks[0].backoff_cap,
        Duration::from_millis(1500)
    );
    let config = parse(&one_check("kind = \"signal\"\ninterval = \"45m\""));
    assert_eq!(
        config.phases[0].checks[0].backoff_cap,
        CheckConfig::MAX_BACKOFF_CAP
    );
    let config = parse(&one_check("kind = \"signal\"\nbackoff_cap = \"1h\""));
    assert_eq!(
        config.phases[0].checks[0].backoff_cap,
        Duration::from_secs(3600)
    );
    assert_eq!(
        error(&one_check("kind = \"signal\"\nbackoff_cap = \"61m\"")),
        r#"test.toml: phase[0].check[0].backoff_cap: invalid duration "61m", expected a duration greater than zero and at most 1h such as "4s" (line 7, column 15)"#
    );
}

#[test]
fn unparsable_durations_are_refused() {
    for text in ["", "5", "-1s", "1 fortnight", "99999999999999999999999s"] {
        let message = error(&format!("[gate]\nretry_cap = {text:?}\n"));
        assert!(
            message.starts_with(&format!(
                "test.toml: gate.retry_cap: invalid duration {text:?}"
            )),
            "{message}"
        );
    }
}

#[test]
fn thresholds_must_be_at_least_one() {
    for key in ["failure_threshold", "success_threshold"] {
        for value in ["0", "-1", "4294967296"] {
            let message = error(&one_check(&format!("kind = \"signal\"\n{key} = {value}")));
            assert_eq!(
                message,
                format!(
                    "test.toml: phase[0].check[0].{key}: invalid threshold {value}, expected a whole number from 1 to 4294967295 (line 7, column {})",
                    key.len() + 4
                )
            );
        }
    }
    assert!(
        error(&one_check("kind = \"signal\"\nfailure_threshold = \"3\"")).contains(
            r#"invalid type: string "3", expected a whole number of at least 1, such as 3"#
        )
    );
}

#[test]
fn bad_tcp_addresses_say_why() {
    for (addr, why) in [
        ("db", "no port"),
        (":5432", "no host"),
        ("db:", "the port is not a number from 1 to 65535"),
        ("db:0", "the port is not a number from 1 to 65535"),
        ("db:65536", "the port is not a number from 1 to 65535"),
        ("db:http", "the port is not a number from 1 to 65535"),
        (
            "::1:5432",
            r#"an IPv6 host must be a valid address in brackets, as in "[::1]:5432""#,
        ),
        (
            "[nope]:5432",
            r#"an IPv6 host must be a valid address in brackets, as in "[::1]:5432""#,
        ),
    ] {
        assert_eq!(
            error(&one_check(&format!("kind = \"tcp\"\naddr = {addr:?}"))),
            format!(
                r#"test.toml: phase[0].check[0].addr: invalid address {addr:?} ({why}), expected a host and port such as "127.0.0.1:5432" or "db.internal:5432" (line 7, column 8)"#
            )
        );
    }
}

#[test]
fn empty_names_are_refused() {
    assert_eq!(
        error("[[phase]]\nname = \"\"\n"),
        r#"test.toml: phase[0].name: invalid name "", expected a non-empty name such as "database" (line 2, column 8)"#
    );
    assert!(
        error(&one_check("kind = \"signal\"").replace("name = \"c\"", "name = \"  \""))
            .starts_with(r#"test.toml: phase[0].check[0].name: invalid name "  ""#)
    );
}

// === errors: rules across keys ===

#[test]
fn missing_required_keys_are_named() {
    assert_eq!(
        error("[[phase]]\n"),
        "test.toml: phase[0].name: missing key `name`, expected a name for this phase (line 1, column 1)"
    );
    assert_eq!(
        error("[[phase]]\nname = \"p\"\n[[phase.check]]\nkind = \"signal\"\n"),
        "test.toml: phase[0].check[0].name: missing key `name`, expected a name for this check (line 3, column 1)"
    );
    assert_eq!(
        error(&one_check("")),
        r#"test.toml: phase[0].check[0].kind: missing key `kind`, expected "tcp", "signal", "postgres", "redis", "http" or "jwks" (line 4, column 1)"#
    );
}

#[test]
fn tcp_needs_addr() {
    assert_eq!(
        error(&one_check("kind = \"tcp\"")),
        r#"test.toml: phase[0].check[0].addr: missing key `addr`, which kind `tcp` needs: expected a host and port such as "127.0.0.1:5432" (line 4, column 1)"#
    );
}

#[test]
fn signal_refuses_addr() {
    assert_eq!(
        error(&one_check("kind = \"signal\"\naddr = \"db:5432\"")),
        "test.toml: phase[0].check[0].addr: key `addr` is not used by kind `signal`, expected only its keys (no kind-specific keys) (line 7, column 8)"
    );
}

#[test]
fn duplicate_check_names_name_both_places() {
    let text = "[[phase]]\nname = \"a\"\n[[phase.check]]\nname = \"db\"\nkind = \"signal\"\n\
                [[phase]]\nname = \"b\"\n[[phase.check]]\nname = \"db\"\nkind = \"signal\"\n";
    assert_eq!(
        error(text),
        r#"test.toml: phase[1].check[0].name: duplicate check name "db" (already used at phase[0].check[0].name, line 4, column 8), expected check names to be unique across all phases (line 9, column 8)"#
    );
}

#[test]
fn duplicate_phase_names_name_both_places() {
    assert_eq!(
        error("[[phase]]\nname = \"a\"\n[[phase]]\nname = \"a\"\n"),
        r#"test.toml: phase[1].name: duplicate phase name "a" (already used at phase[0].name, line 2, column 8), expected phase names to be unique (line 4, column 8)"#
    );
}

#[test]
fn a_phase_and_a_check_may_share_a_name() {
    parse("[[phase]]\nname = \"db\"\n[[phase.check]]\nname = \"db\"\nkind = \"signal\"\n");
}

// === reading files ===

#[test]
fn unreadable_file_names_the_path_and_the_os_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("no/such/config.toml");
    let error = Config::from_file(&path).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "{}: cannot read the config file: ",
            path.display()
        )),
        "{message}"
    );
    assert!(matches!(
        error,
        ConfigError::Read { error, .. } if error.kind() == std::io::ErrorKind::NotFound
    ));
}

// === describe ===

#[test]
fn describe_lists_listeners_gate_phases_and_checks() {
    let description = parse(EXAMPLE).describe();
    assert_eq!(
        description,
        r#"config test.toml
  listen = 0.0.0.0:8080
  admin_listen = 127.0.0.1:9091
  admin_token = none
routes
  chat_page = on
  readiness_detail = on
  websocket /ws -> chat
  websocket /echo -> echo
clients
  trusted_proxies = [] (the socket's peer is the client)
  handshakes_per_second_per_address = no limit
  max_event_streams_per_address = no limit
gate
  startup_deadline = 30s
  retry_cap = 250ms
  hold_timeout = 5s
  warming_interval = 1s
  retry_after = 2s
  shutdown_budget = 10s
  drain_grace = 7s
  handshake_timeout = 10s
  ping_interval = 20s
  write_timeout = 5s
  shutdown_delay = 1s (after SIGTERM, not SIGINT)
  max_connections = 10000
  max_held = 10000
  max_message_bytes = 65536
  allowed_origins = [] (any origin)
  messages_per_second = 20 (burst 40)
auth
  mode = none (clients are not authenticated)
telemetry
  log_format = text
  otlp_endpoint = none (no trace export)
  sampler = parentbased_always_on
phase 1 of 3 "dependencies" (2 checks)
  check "database": tcp 127.0.0.1:5432, required, timeout 1s, interval 2s, backoff_cap 4s, failure_threshold 3, success_threshold 1
  check "redis": tcp cache.internal:6379, optional, timeout 500ms, interval 1m, backoff_cap 30s, failure_threshold 5, success_threshold 2
phase 2 of 3 "services" (1 check)
  check "agent_supervisor": signal, required, timeout 1s, interval 2s, backoff_cap 4s, failure_threshold 1, success_threshold 1
phase 3 of 3 "later" (no checks)
"#
    );
}

#[test]
fn describe_says_when_there_are_no_phases() {
    assert!(parse("").describe().contains("no phases"));
}

// === no input panics ===

/// Lines that look like config, so random files reach the rules and not only
/// the TOML parser.
const CONFIG_LIKE_LINES: &[&str] = &[
    "[[phase]]",
    "[[phase.check]]",
    "[gate]",
    "name = \"a\"",
    "name = \"b\"",
    "name = \"\"",
    "kind = \"tcp\"",
    "kind = \"signal\"",
    "kind = \"x\"",
    "addr = \"db:5432\"",
    "addr = \"[::1]:\"",
    "addr = \":\"",
    "timeout = \"1s\"",
    "interval = \"0s\"",
    "backoff_cap = \"2h\"",
    "retry_cap = \"18446744073709551616s\"",
    "failure_threshold = 0",
    "success_threshold = 9223372036854775807",
    "required = false",
    "listen = \"127.0.0.1:9090\"",
    "admin_listen = \"[::]:0\"",
    "hold_timeout = \"0s\"",
    "retry_after = \"2h\"",
    "max_held = 0",
    "max_connections = 1000000",
    "max_message_bytes = 124",
    "allowed_origins = [\"https://A.example:443/\"]",
    "allowed_origins = [\"https://a.example/x\", 1]",
    "allowed_origins = \"https://a.example\"",
    "[routes]",
    "chat = false",
    "chat_page = false",
    "[clients]",
    "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]",
    "trusted_proxies = [\"10.0.0.1/8\"]",
    "handshakes_per_second_per_address = 0",
    "max_event_streams_per_address = 4",
    "phase = []",
    "check = [{}]",
    "\"é\u{0}\" = 1",
    "é = \"\u{1F600}\"",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Err(error) = Config::from_toml_str(&text, "fuzz.toml") {
            let message = error.to_string();
            prop_assert!(message.starts_with("fuzz.toml: "));
            prop_assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn config_like_text_never_panics(
        lines in proptest::collection::vec(proptest::sample::select(CONFIG_LIKE_LINES), 0..24)
    ) {
        let text = lines.join("\n");
        match Config::from_toml_str(&text, "fuzz.toml") {
            Ok(config) => {
                let _ = config.plan();
                let _ = config.describe();
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("fuzz.toml: "));
                prop_assert!(!message.contains('\n'));
            }
        }
    }
}

// === URL kinds: postgres, redis, http ===

fn probe_of(keys: &str) -> ProbeConfig {
    let config = Config::from_toml_str(&one_check(keys), "test.toml").unwrap();
    config.phases[0].checks[0].probe.clone()
}

#[test]
fn url_kinds_parse_their_keys_and_never_show_the_password() {
    let ProbeConfig::Postgres { url } =
        probe_of("kind = \"postgres\"\nurl = \"postgres://app:s3cret@127.0.0.1:5432/app\"")
    else {
        panic!("expected a postgres probe");
    };
    assert_eq!(url.expose(), "postgres://app:s3cret@127.0.0.1:5432/app");
    assert_eq!(url.redacted(), "postgres://app:***@127.0.0.1:5432/app");
    assert!(!format!("{url:?} {url}").contains("s3cret"));

    let ProbeConfig::Redis { url } =
        probe_of("kind = \"redis\"\nurl = \"redis://:pw@127.0.0.1:6379/0\"")
    else {
        panic!("expected a redis probe");
    };
    assert_eq!(url.redacted(), "redis://:***@127.0.0.1:6379/0");

    let probe = probe_of(
        "kind = \"http\"\nurl = \"https://auth.example.com/jwks?key=t0ken\"\nexpect_status = [200, 204]\nexpect_body = \"keys\"",
    );
    let ProbeConfig::Http {
        url,
        expect_status,
        expect_body,
    } = &probe
    else {
        panic!("expected an http probe");
    };
    assert_eq!(url.redacted(), "https://auth.example.com/jwks?…");
    assert_eq!(expect_status.as_deref(), Some(&[200, 204][..]));
    assert_eq!(expect_body.as_deref(), Some("keys"));
    assert!(!format!("{probe:?}").contains("t0ken"));

    let ProbeConfig::Http { expect_status, .. } =
        probe_of("kind = \"http\"\nurl = \"http://127.0.0.1/health\"\nexpect_status = 204")
    else {
        panic!("expected an http probe");
    };
    assert_eq!(expect_status, Some(vec![204]));
}

#[test]
fn url_env_reads_the_url_from_the_environment_and_names_a_missing_variable() {
    // A variable name no other test uses, so tests running in parallel
    // cannot disturb each other.
    let name = "WARMGATE_CONFIG_TEST_DATABASE_URL";
    let keys = format!("kind = \"postgres\"\nurl_env = \"{name}\"");
    assert_eq!(
        error(&one_check(&keys)),
        format!(
            "test.toml: phase[0].check[0].url_env: environment variable \"{name}\" is not set, expected it to hold a URL such as \"postgres://...\" (line 7, column 11)"
        )
    );
    // The workspace forbids unsafe code, so this test cannot set a variable
    // (`set_var` is unsafe in edition 2024); the end-to-end tests pass real
    // URLs through `url_env`. PATH is always set and never a URL.
    let message = error(&one_check("kind = \"postgres\"\nurl_env = \"PATH\""));
    assert!(
        message.contains("environment variable \"PATH\" does not hold a usable URL"),
        "{message}"
    );
    let path = std::env::var("PATH").unwrap();
    assert!(!message.contains(&path), "{message}");
}

#[test]
fn url_kinds_refuse_bad_urls_without_repeating_them() {
    let message = error(&one_check(
        "kind = \"postgres\"\nurl = \"mysql://root:pw@db/app\"",
    ));
    assert_eq!(
        message,
        "test.toml: phase[0].check[0].url: URL scheme `mysql` is not supported here, expected postgres:// or postgresql:// (line 7, column 7)"
    );
    let message = error(&one_check("kind = \"redis\"\nurl = \"redis://:pw@:bad\""));
    assert!(
        message.starts_with("test.toml: phase[0].check[0].url: invalid URL ("),
        "{message}"
    );
    assert!(!message.contains(":pw@"), "{message}");
    assert_eq!(
        error(&one_check("kind = \"redis\"")),
        "test.toml: phase[0].check[0].url: missing key `url`, which kind `redis` needs: expected `url = \"redis://...\"` or `url_env = \"NAME_OF_A_VARIABLE\"` (line 4, column 1)"
    );
    assert_eq!(
        error(&one_check(
            "kind = \"redis\"\nurl = \"redis://h\"\nurl_env = \"X\""
        )),
        "test.toml: phase[0].check[0].url: both `url` and `url_env` are set, expected only one of them (line 7, column 7)"
    );
    assert_eq!(
        error(&one_check(
            "kind = \"http\"\nurl = \"http://h/\"\nexpect_status = 700"
        )),
        "test.toml: phase[0].check[0].expect_status: invalid HTTP status 700, expected a status from 100 to 599 (line 8, column 17)"
    );
    assert_eq!(
        error(&one_check(
            "kind = \"redis\"\nurl = \"redis://h\"\nexpect_body = \"x\""
        )),
        "test.toml: phase[0].check[0].expect_body: key `expect_body` is not used by kind `redis`, expected only its keys (`url`, `url_env`) (line 8, column 15)"
    );
}

// === the WebSocket gate's settings ===

const GATE_DURATION_KEYS: [&str; 8] = [
    "hold_timeout",
    "warming_interval",
    "retry_after",
    "shutdown_budget",
    "drain_grace",
    "handshake_timeout",
    "ping_interval",
    "write_timeout",
];

#[test]
fn gate_defaults_are_the_documented_values() {
    let gate = parse("").gate;
    assert_eq!(gate, GateConfig::default());
    assert_eq!(
        gate,
        GateConfig {
            startup_deadline: Duration::from_secs(60),
            retry_cap: Duration::from_millis(100),
            hold_timeout: Duration::from_secs(5),
            warming_interval: Duration::from_secs(1),
            retry_after: Duration::from_secs(2),
            shutdown_budget: Duration::from_secs(10),
            drain_grace: Duration::from_secs(7),
            shutdown_delay: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            write_timeout: Duration::from_secs(5),
            max_connections: 10_000,
            max_held: 10_000,
            max_message_bytes: 65_536,
            allowed_origins: vec![],
            messages_per_second: 20,
            message_burst: 40,
        }
    );
    // The embedded default.toml writes every default out.
    assert_eq!(Config::embedded_default().gate, gate);
}

#[test]
fn gate_settings_take_their_values() {
    let gate = parse(
        r#"[gate]
hold_timeout = "250ms"
warming_interval = "100ms"
retry_after = "1h"
shutdown_budget = "30s"
drain_grace = "25s"
handshake_timeout = "3s"
ping_interval = "1m"
write_timeout = "750ms"
max_connections = 1_000_000
max_held = 1
max_message_bytes = 125
allowed_origins = ["https://chat.example.com", "http://localhost:8080"]
"#,
    )
    .gate;
    assert_eq!(
        gate,
        GateConfig {
            hold_timeout: Duration::from_millis(250),
            warming_interval: Duration::from_millis(100),
            retry_after: Duration::from_secs(3600),
            shutdown_budget: Duration::from_secs(30),
            drain_grace: Duration::from_secs(25),
            handshake_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_secs(60),
            write_timeout: Duration::from_millis(750),
            max_connections: 1_000_000,
            max_held: 1,
            max_message_bytes: 125,
            allowed_origins: vec![
                "https://chat.example.com".to_owned(),
                "http://localhost:8080".to_owned()
            ],
            ..GateConfig::default()
        }
    );
    assert_eq!(
        parse("[gate]\nmax_message_bytes = 16777216\n")
            .gate
            .max_message_bytes,
        16 * 1024 * 1024
    );
}

#[test]
fn gate_bounds_are_public_constants() {
    assert_eq!(GateConfig::CLIENT_COUNT_RANGE, 1..=1_000_000);
    assert_eq!(GateConfig::MESSAGE_BYTES_RANGE, 125..=16_777_216);
    assert_eq!(GateConfig::MAX_RETRY_AFTER, Duration::from_secs(3600));
}

#[test]
fn allowed_origins_are_normalised_as_browsers_send_them() {
    for (written, stored) in [
        ("https://chat.example.com", "https://chat.example.com"),
        ("https://Chat.Example.COM/", "https://chat.example.com"),
        ("HTTPS://chat.example.com", "https://chat.example.com"),
        ("https://chat.example.com:443", "https://chat.example.com"),
        ("http://localhost:80/", "http://localhost"),
        (
            "https://chat.example.com:8443",
            "https://chat.example.com:8443",
        ),
        ("http://LOCALHOST:8080", "http://localhost:8080"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ] {
        let config = parse(&format!("[gate]\nallowed_origins = [{written:?}]\n"));
        assert_eq!(config.gate.allowed_origins, [stored], "{written}");
    }
    assert!(
        parse("[gate]\nallowed_origins = []\n")
            .gate
            .allowed_origins
            .is_empty()
    );
}

#[test]
fn gate_counts_must_be_in_range() {
    assert_eq!(
        error("[gate]\nmax_held = 0\n"),
        "test.toml: gate.max_held: invalid value 0, expected a whole number from 1 to 1000000 (line 2, column 12)"
    );
    for key in ["max_connections", "max_held"] {
        for value in ["0", "-1", "1000001", "9223372036854775807"] {
            assert_eq!(
                error(&format!("[gate]\n{key} = {value}\n")),
                format!(
                    "test.toml: gate.{key}: invalid value {value}, expected a whole number from 1 to 1000000 (line 2, column {})",
                    key.len() + 4
                )
            );
        }
    }
    for value in ["124", "0", "16777217"] {
        assert_eq!(
            error(&format!("[gate]\nmax_message_bytes = {value}\n")),
            format!(
                "test.toml: gate.max_message_bytes: invalid value {value}, expected a whole number from 125 to 16777216 (line 2, column 21)"
            )
        );
    }
    assert_eq!(
        error("[gate]\nmax_connections = \"10000\"\n"),
        r#"test.toml: gate.max_connections: invalid type: string "10000", expected a whole number from 1 to 1000000 (line 2, column 19)"#
    );
    assert!(error("[gate]\nmax_message_bytes = 64.5\n").contains(
        "invalid type: floating point `64.5`, expected a whole number from 125 to 16777216"
    ));
}

#[test]
fn gate_durations_must_be_greater_than_zero() {
    for key in GATE_DURATION_KEYS {
        assert_eq!(
            error(&format!("[gate]\n{key} = \"0s\"\n")),
            format!(
                r#"test.toml: gate.{key}: invalid duration "0s", expected a duration greater than zero such as "250ms" or "5s" (line 2, column {})"#,
                key.len() + 4
            )
        );
        assert!(
            error(&format!("[gate]\n{key} = \"soon\"\n")).starts_with(&format!(
                r#"test.toml: gate.{key}: invalid duration "soon", expected a duration such as"#
            ))
        );
        assert!(error(&format!("[gate]\n{key} = 5\n")).starts_with(&format!(
            r#"test.toml: gate.{key}: invalid type: integer `5`, expected a duration such as"#
        )));
    }
}

#[test]
fn a_duration_that_would_overflow_a_clock_is_refused() {
    // Once allowed, "300000000000y" panicked when SIGTERM added it to the
    // clock, before the drain could start.
    for key in [
        "shutdown_budget",
        "drain_grace",
        "hold_timeout",
        "shutdown_delay",
    ] {
        assert_eq!(
            error(&format!("[gate]\n{key} = \"300000000000y\"\n")),
            format!(
                r#"test.toml: gate.{key}: invalid duration "300000000000y", expected a duration of at most 1year (line 2, column {})"#,
                key.len() + 4
            )
        );
    }
    assert!(
        error("[[phase]]\nname = \"p\"\n[[phase.check]]\nname = \"c\"\nkind = \"signal\"\ntimeout = \"2years\"\n")
            .contains("expected a duration of at most 1year")
    );
    // At the bound itself, a budget is fine (and its drain grace too).
    let gate = parse("[gate]\nshutdown_budget = \"1y\"\n").gate;
    assert_eq!(gate.shutdown_budget, Config::MAX_DURATION);
}

#[test]
fn retry_after_is_at_most_an_hour() {
    assert_eq!(
        error("[gate]\nretry_after = \"61m\"\n"),
        r#"test.toml: gate.retry_after: invalid duration "61m", expected a duration greater than zero and at most 1h such as "2s" (line 2, column 15)"#
    );
    assert!(error("[gate]\nretry_after = \"1h 1ms\"\n").contains(r#"invalid duration "1h 1ms""#));
    assert_eq!(
        parse("[gate]\nretry_after = \"60m\"\n").gate.retry_after,
        Duration::from_secs(3600)
    );
}

#[test]
fn shutdown_delay_may_be_zero_and_defaults_within_the_drain_grace() {
    let delay = |toml: &str| parse(toml).gate.shutdown_delay;
    assert_eq!(delay(""), Duration::from_secs(1));
    assert_eq!(delay("[gate]\nshutdown_delay = \"0s\"\n"), Duration::ZERO);
    assert_eq!(
        delay("[gate]\nshutdown_delay = \"2500ms\"\n"),
        Duration::from_millis(2500)
    );
    assert_eq!(
        delay("[gate]\nshutdown_delay = \"7s\"\n"),
        Duration::from_secs(7),
        "as long as the default drain grace is allowed"
    );
    // Unset, the default never stretches a short grace.
    assert_eq!(
        delay("[gate]\ndrain_grace = \"300ms\"\n"),
        Duration::from_millis(300)
    );
}

#[test]
fn shutdown_delay_longer_than_the_drain_grace_is_refused() {
    assert_eq!(
        error("[gate]\ndrain_grace = \"2s\"\nshutdown_delay = \"3s\"\n"),
        "test.toml: gate.shutdown_delay: \"3s\" is longer than `drain_grace` (\"2s\"), expected a duration from \"0s\" to `drain_grace`: the listeners close within the drain (line 3, column 18)"
    );
    // The default grace (7s) is the bound when only the delay is written.
    assert!(error("[gate]\nshutdown_delay = \"8s\"\n").starts_with(
        "test.toml: gate.shutdown_delay: \"8s\" is longer than `drain_grace` (\"7s\")"
    ));
    // A grace derived from a budget bounds it the same way.
    assert!(
        error("[gate]\nshutdown_budget = \"5s\"\nshutdown_delay = \"3s\"\n").starts_with(
            "test.toml: gate.shutdown_delay: \"3s\" is longer than `drain_grace` (\"2s\")"
        )
    );
}

#[test]
fn shutdown_delay_must_be_a_duration() {
    assert_eq!(
        error("[gate]\nshutdown_delay = \"soon\"\n"),
        "test.toml: gate.shutdown_delay: invalid duration \"soon\", expected a duration such as \"1s\", or \"0s\" for none (line 2, column 18)"
    );
}

#[test]
fn gate_has_no_rules_across_its_keys_but_the_shutdown_ones() {
    // A warming interval longer than the hold, or a long drain grace in a
    // long budget, is odd but allowed: each key stands alone, but for
    // `drain_grace`, which the budget bounds, and `shutdown_delay`, which
    // the drain grace bounds (see above and below).
    let gate = parse(
        "[gate]\nhold_timeout = \"1s\"\nwarming_interval = \"10s\"\nshutdown_budget = \"6m\"\ndrain_grace = \"5m\"\nmax_held = 10\nmax_connections = 5\n",
    )
    .gate;
    assert_eq!(gate.warming_interval, Duration::from_secs(10));
    assert_eq!(gate.drain_grace, Duration::from_secs(300));
}

// === the shutdown budget ===

#[test]
fn the_default_shutdown_fits_cloud_runs_ten_seconds() {
    let gate = parse("").gate;
    assert_eq!(gate.shutdown_budget, Duration::from_secs(10));
    assert!(
        gate.drain_grace + GateConfig::CLOSE_MARGIN + GateConfig::EXIT_RESERVE
            <= gate.shutdown_budget,
        "{gate:?}"
    );
    assert_eq!(
        GateConfig::drain_grace_within(gate.shutdown_budget),
        gate.drain_grace
    );
}

#[test]
fn an_unset_drain_grace_is_what_the_budget_leaves() {
    let grace = |toml: &str| parse(toml).gate.drain_grace;
    assert_eq!(
        grace("[gate]\nshutdown_budget = \"30s\"\n"),
        Duration::from_secs(27)
    );
    assert_eq!(
        grace("[gate]\nshutdown_budget = \"3500ms\"\n"),
        Duration::from_millis(500)
    );
    // Written, it may be shorter than what fits, down to the exact fit.
    assert_eq!(
        grace("[gate]\nshutdown_budget = \"30s\"\ndrain_grace = \"2s\"\n"),
        Duration::from_secs(2)
    );
    assert_eq!(
        grace("[gate]\ndrain_grace = \"7s\"\n"),
        Duration::from_secs(7)
    );
}

#[test]
fn a_drain_grace_that_cannot_fit_the_budget_is_refused_naming_both_keys() {
    assert_eq!(
        error("[gate]\ndrain_grace = \"8s\"\n"),
        "test.toml: gate.drain_grace: \"8s\" does not fit in `shutdown_budget` (\"10s\"): the shutdown budget holds `drain_grace`, 1s for the last closing handshakes and 2s for the last span export and the exit; expected a `drain_grace` of at most \"7s\", or a `shutdown_budget` of at least \"11s\" (line 2, column 15)"
    );
    assert!(
        error("[gate]\nshutdown_budget = \"20s\"\ndrain_grace = \"30s\"\n").starts_with(
            "test.toml: gate.drain_grace: \"30s\" does not fit in `shutdown_budget` (\"20s\")"
        )
    );
}

#[test]
fn a_budget_that_leaves_no_drain_is_refused() {
    assert_eq!(
        error("[gate]\nshutdown_budget = \"3s\"\n"),
        "test.toml: gate.shutdown_budget: \"3s\" leaves no time to drain: the shutdown budget holds `drain_grace`, 1s for the last closing handshakes and 2s for the last span export and the exit; expected more than \"3s\" (line 2, column 19)"
    );
    assert!(error("[gate]\nshutdown_budget = \"0s\"\n").contains("gate.shutdown_budget"));
}

#[test]
fn bad_origins_name_the_origin_and_why() {
    for (origin, why) in [
        (
            "chat.example.com",
            "no scheme; write it with http:// or https://",
        ),
        ("null", "no scheme; write it with http:// or https://"),
        ("*", "no scheme; write it with http:// or https://"),
        ("ws://chat.example.com", "scheme `ws` is not http or https"),
        ("file:///tmp", "scheme `file` is not http or https"),
        ("https://", "empty host"),
        ("https://chat.example.com:99999", "invalid port number"),
        (
            "https://*.example.com",
            "wildcards are not supported; list each origin",
        ),
        (
            "https://chat.example.com/app",
            "a path is not part of an origin, only a scheme, a host and a port",
        ),
        (
            "https://chat.example.com//",
            "a path is not part of an origin, only a scheme, a host and a port",
        ),
        (
            "https://chat.example.com?x=1",
            "a query is not part of an origin, only a scheme, a host and a port",
        ),
        (
            "https://chat.example.com/#top",
            "a fragment is not part of an origin, only a scheme, a host and a port",
        ),
        (
            "https://me:pw@chat.example.com",
            "a user name or password is not part of an origin, only a scheme, a host and a port",
        ),
        (" https://chat.example.com", "it contains whitespace"),
        ("", "no scheme; write it with http:// or https://"),
    ] {
        assert_eq!(
            error(&format!(
                "[gate]\nallowed_origins = [\"https://ok.example.com\", {origin:?}]\n"
            )),
            format!(
                r#"test.toml: gate.allowed_origins[1]: invalid origin {origin:?} ({why}), expected an origin such as "https://chat.example.com" or "http://localhost:8080" (line 2, column 46)"#
            ),
        );
    }
}

#[test]
fn allowed_origins_must_be_a_list_of_strings() {
    assert_eq!(
        error("[gate]\nallowed_origins = \"https://chat.example.com\"\n"),
        r#"test.toml: gate.allowed_origins: invalid type: string "https://chat.example.com", expected a list of origins such as ["https://chat.example.com"], or [] for any origin (line 2, column 19)"#
    );
    assert_eq!(
        error("[gate]\nallowed_origins = [8080]\n"),
        r#"test.toml: gate.allowed_origins[0]: invalid type: integer `8080`, expected an origin such as "https://chat.example.com" or "http://localhost:8080" (line 2, column 20)"#
    );
}

#[test]
fn describe_shows_allowed_origins() {
    let description =
        parse("[gate]\nallowed_origins = [\"https://A.example\", \"http://b.example:81\"]\n")
            .describe();
    assert!(
        description
            .contains("\n  allowed_origins = [\"https://a.example\", \"http://b.example:81\"]\n"),
        "{description}"
    );
}

// === telemetry ===

#[test]
fn telemetry_takes_a_log_format_and_a_project() {
    let config = Config::from_toml_str(
        "[telemetry]\nlog_format = \"gcp\"\ngcp_project = \"chat-prod\"\n",
        "test.toml",
    )
    .unwrap();
    assert_eq!(config.telemetry.log_format, crate::LogFormat::Gcp);
    assert_eq!(config.telemetry.gcp_project.as_deref(), Some("chat-prod"));
    assert_eq!(
        Config::from_toml_str("", "test.toml")
            .unwrap()
            .telemetry
            .log_format,
        crate::LogFormat::Text
    );
    let message = error("[telemetry]\nlog_format = \"xml\"\n");
    assert!(
        message.starts_with("test.toml: telemetry.log_format: unknown log format \"xml\", expected \"text\", \"json\" or \"gcp\""),
        "{message}"
    );
}

#[test]
fn telemetry_takes_an_otlp_endpoint_protocol_service_name_and_sampler() {
    let config = parse(
        "[telemetry]\notlp_endpoint = \"http://collector:4317\"\notlp_protocol = \"grpc\"\nservice_name = \"chat-gateway\"\nsampler = \"parentbased_traceidratio\"\nsampler_arg = 0.25\n",
    );
    let telemetry = &config.telemetry;
    assert_eq!(
        telemetry
            .otlp_endpoint
            .as_ref()
            .map(crate::SecretUrl::expose),
        Some("http://collector:4317")
    );
    assert_eq!(telemetry.otlp_protocol, crate::OtlpProtocol::Grpc);
    assert_eq!(telemetry.service_name.as_deref(), Some("chat-gateway"));
    assert_eq!(
        telemetry.sampler,
        crate::TraceSampler::ParentBasedTraceIdRatio(0.25)
    );

    let defaults = parse("").telemetry;
    assert_eq!(defaults.otlp_endpoint, None);
    assert_eq!(defaults.otlp_protocol, crate::OtlpProtocol::HttpProtobuf);
    assert_eq!(defaults.sampler, crate::TraceSampler::ParentBasedAlwaysOn);
    assert_eq!(
        parse("[telemetry]\nsampler = \"traceidratio\"\n")
            .telemetry
            .sampler,
        crate::TraceSampler::TraceIdRatio(1.0)
    );
}

#[test]
fn telemetry_refuses_bad_otlp_and_sampler_settings_naming_the_key() {
    let cases = [
        (
            "otlp_endpoint = \"collector:4317\"",
            "test.toml: telemetry.otlp_endpoint: invalid OTLP endpoint (URL scheme `collector` is not supported here, expected http:// or https://), expected an http:// or https:// URL such as \"http://localhost:4318\" (line 2, column 17)",
        ),
        (
            "otlp_endpoint = \"not a url\"",
            "test.toml: telemetry.otlp_endpoint: invalid OTLP endpoint (invalid URL (relative URL without a base)), expected an http:// or https:// URL such as \"http://localhost:4318\" (line 2, column 17)",
        ),
        (
            "otlp_protocol = \"http/json\"",
            "test.toml: telemetry.otlp_protocol: OTLP protocol \"http/json\" is not supported, expected \"grpc\" or \"http/protobuf\" (line 2, column 17)",
        ),
        (
            "otlp_protocol = \"udp\"",
            "test.toml: telemetry.otlp_protocol: unknown OTLP protocol \"udp\", expected \"grpc\" or \"http/protobuf\" (line 2, column 17)",
        ),
        (
            "sampler = \"sometimes\"",
            "test.toml: telemetry.sampler: unknown sampler \"sometimes\", expected \"always_on\", \"always_off\", \"traceidratio\", \"parentbased_always_on\", \"parentbased_always_off\" or \"parentbased_traceidratio\" (line 2, column 11)",
        ),
        (
            "sampler = \"traceidratio\"\nsampler_arg = 1.5",
            "test.toml: telemetry.sampler_arg: sampler argument 1.5 is out of range, expected a fraction from 0 to 1 (line 3, column 15)",
        ),
        (
            "sampler = \"always_on\"\nsampler_arg = 0.5",
            "test.toml: telemetry.sampler_arg: sampler \"always_on\" takes no argument, expected an argument only with \"traceidratio\" or \"parentbased_traceidratio\" (line 3, column 15)",
        ),
        (
            "sampler_arg = 0.5",
            "test.toml: telemetry.sampler_arg: `sampler_arg` without `sampler`, expected `sampler = \"traceidratio\"` or `\"parentbased_traceidratio\"` beside it (line 2, column 15)",
        ),
    ];
    for (keys, expected) in cases {
        assert_eq!(error(&format!("[telemetry]\n{keys}\n")), expected, "{keys}");
    }
}

#[test]
fn sampler_arguments_from_text_are_checked() {
    assert_eq!(crate::TraceSampler::parse_arg(" 0.1 "), Ok(0.1));
    assert_eq!(
        crate::TraceSampler::parse_arg("half"),
        Err("invalid sampler argument \"half\", expected a fraction from 0 to 1".to_owned())
    );
    assert!(crate::TraceSampler::parse_arg("NaN").is_err());
}

// === [auth] and the admin token ===

const JWKS_CHECK: &str =
    "[[phase]]\nname = \"dependencies\"\n[[phase.check]]\nname = \"auth\"\nkind = \"jwks\"\n";

#[test]
fn auth_defaults_to_none_and_refuses_keys_without_jwt() {
    assert_eq!(parse("").auth, crate::AuthConfig::None);
    assert_eq!(
        error("[auth]\njwks_url = \"https://auth.example.com/jwks.json\"\n"),
        "test.toml: auth.jwks_url: key `jwks_url` has no effect while `mode = \"none\"`, expected `mode = \"jwt\"` beside it (line 2, column 12)"
    );
    assert!(error("[auth]\nmode = \"oauth\"\n").contains("expected \"none\" or \"jwt\""));
}

#[test]
fn jwt_with_a_jwks_needs_a_jwks_check_and_the_reverse() {
    let text = format!(
        "[auth]\nmode = \"jwt\"\njwks_url = \"https://auth.example.com/jwks.json\"\nissuer = \"https://auth.example.com/\"\naudience = \"chat\"\nleeway = \"10s\"\n{JWKS_CHECK}"
    );
    let config = parse(&text);
    let crate::AuthConfig::Jwt(jwt) = &config.auth else {
        panic!("expected jwt, got {:?}", config.auth);
    };
    assert_eq!(jwt.algorithms, ["RS256", "ES256"]);
    assert_eq!(jwt.issuer.as_deref(), Some("https://auth.example.com/"));
    assert_eq!(jwt.audience.as_deref(), Some("chat"));
    assert_eq!(jwt.leeway, Duration::from_secs(10));
    assert!(!jwt.allow_query_token);
    assert_eq!(config.phases[0].checks[0].probe, ProbeConfig::Jwks);

    assert_eq!(
        error("[auth]\nmode = \"jwt\"\njwks_url = \"https://auth.example.com/jwks.json\"\n"),
        "test.toml: auth.jwks_url: the keys come from a JWKS, but no check loads it: expected a check with `kind = \"jwks\"` in a phase (the gate is not ready until it passes) (line 3, column 12)"
    );
    assert!(
        error(&format!("{text}required = false\n"))
            .contains("phase[0].check[0].required: a `jwks` check cannot be optional")
    );
    assert_eq!(
        error(JWKS_CHECK),
        "test.toml: phase[0].check[0].kind: kind \"jwks\" loads the keys of `[auth]`, expected `[auth]` with `mode = \"jwt\"` and `jwks_url` or `jwks_url_env` (line 3, column 1)"
    );
}

#[test]
fn jwt_key_sources_and_algorithms_must_agree() {
    assert!(error("[auth]\nmode = \"jwt\"\n").contains("`mode = \"jwt\"` needs keys"));
    assert!(
        error(&format!("[auth]\nmode = \"jwt\"\nalgorithms = [\"HS256\"]\njwks_url = \"https://a.example/jwks\"\n{JWKS_CHECK}"))
            .contains("HMAC algorithms (HS*) cannot be checked with a public JWKS")
    );
    assert!(
        error(&format!("[auth]\nmode = \"jwt\"\nalgorithms = [\"RS257\"]\njwks_url = \"https://a.example/jwks\"\n{JWKS_CHECK}"))
            .contains("unknown algorithm \"RS257\"")
    );
    assert!(
        error(&format!("[auth]\nmode = \"jwt\"\njwks_url = \"https://a.example/jwks\"\nsecret_env = \"X\"\n{JWKS_CHECK}"))
            .contains("`jwks_url` and `secret_env` are both set")
    );
    assert!(
        error(&format!("[auth]\nmode = \"jwt\"\njwks_url = \"https://a.example/jwks\"\nleeway = \"1h\"\n{JWKS_CHECK}"))
            .contains("expected a duration from \"0s\" to \"5m\"")
    );
    assert!(
        error("[auth]\nmode = \"jwt\"\nsecret_env = \"WARMGATE_TEST_UNSET_SECRET\"\n")
            .contains("environment variable \"WARMGATE_TEST_UNSET_SECRET\" is not set or empty")
    );
}

#[test]
fn a_short_hmac_secret_is_refused_without_repeating_it() {
    // Tests cannot set variables (unsafe code is forbidden); HOME is set and
    // shorter than 32 bytes on any machine these tests run on.
    let home = std::env::var("HOME").unwrap();
    assert!(
        home.len() < 32,
        "HOME is unusually long: this test needs a short one"
    );
    let message = error("[auth]\nmode = \"jwt\"\nsecret_env = \"HOME\"\n");
    assert!(message.contains("expected at least 32"), "{message}");
    assert!(!message.contains(&home), "{message}");
}

#[test]
fn no_secret_shows_in_the_debug_or_the_description_of_a_config() {
    let config = parse(
        r#"
admin_token = "admin-token-secret-0123"

[telemetry]
otlp_endpoint = "https://otlp:otlp-pw-secret@collector:4318/?token=otlp-query-secret"

[auth]
mode = "jwt"
jwks_url = "https://jwks:jwks-pw-secret@auth.example.com/jwks.json?token=jwks-query-secret"

[[phase]]
name = "dependencies"

[[phase.check]]
name = "database"
kind = "postgres"
url = "postgres://app:pg-pw-secret@127.0.0.1:5432/app?application_name=pg-query-secret"

[[phase.check]]
name = "cache"
kind = "redis"
url = "redis://:redis-pw-secret@127.0.0.1:6379/?token=redis-query-secret"

[[phase.check]]
name = "api"
kind = "http"
url = "https://probe:http-pw-secret@api.example.com/health?token=http-query-secret"

[[phase.check]]
name = "keys"
kind = "jwks"
"#,
    );
    let shown = format!("{config:?}\n{config:#?}\n{}", config.describe());
    for secret in [
        "admin-token-secret",
        "otlp-pw-secret",
        "otlp-query-secret",
        "jwks-pw-secret",
        "jwks-query-secret",
        "pg-pw-secret",
        "pg-query-secret",
        "redis-pw-secret",
        "redis-query-secret",
        "http-pw-secret",
        "http-query-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    assert!(
        shown.contains("https://otlp:***@collector:4318/?…"),
        "{shown}"
    );
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    assert_eq!(
        error("admin_listen = \"0.0.0.0:9090\"\n"),
        "test.toml: admin_listen: the admin listener 0.0.0.0:9090 is not on loopback, and it can drain the process and set signals: expected `admin_token` or `admin_token_env` to guard it, or a loopback address such as \"127.0.0.1:9090\" (line 1, column 16)"
    );
    let config = parse("admin_listen = \"0.0.0.0:9090\"\nadmin_token = \"0123456789abcdef0123\"\n");
    assert_eq!(
        config.admin_token.as_ref().map(|t| t.expose()),
        Some("0123456789abcdef0123")
    );
    assert!(!format!("{config:?}").contains("0123456789abcdef0123"));
    assert!(error("admin_token = \"short\"\n").contains("at least 16 visible ASCII characters"));

    // A flag that moves the listener later is checked the same way.
    let mut config = parse("");
    config.admin_listen = "10.0.0.5:9090".parse().unwrap();
    assert!(
        config
            .check_admin_exposure()
            .unwrap_err()
            .to_string()
            .contains("is not on loopback")
    );
}

#[test]
fn a_read_token_reads_only_and_needs_a_different_control_token_beside_it() {
    let config = parse(
        "admin_token = \"0123456789abcdef0123\"\nadmin_read_token = \"fedcba9876543210fedc\"\n",
    );
    assert_eq!(
        config.admin_read_token.as_ref().map(|t| t.expose()),
        Some("fedcba9876543210fedc")
    );
    assert!(!format!("{config:?}").contains("fedcba9876543210fedc"));
    assert!(
        config
            .describe()
            .contains("admin_read_token = set (reads metrics and readiness only)")
    );
    assert_eq!(parse("").admin_read_token, None);

    for (text, expected) in [
        (
            "admin_read_token = \"fedcba9876543210fedc\"\n",
            "test.toml: admin_read_token: a read token alone would leave signals and drain unguarded, expected `admin_token` or `admin_token_env` beside it (the control token, accepted everywhere) (line 1, column 20)",
        ),
        (
            "admin_token = \"0123456789abcdef0123\"\nadmin_read_token = \"0123456789abcdef0123\"\n",
            "test.toml: admin_read_token: the read token is the same as the control token, expected a different token so that a reader cannot drain the process (line 2, column 20)",
        ),
        (
            "admin_token = \"0123456789abcdef0123\"\nadmin_read_token = \"fedcba9876543210fedc\"\nadmin_read_token_env = \"X\"\n",
            "test.toml: admin_read_token_env: both `admin_read_token` and `admin_read_token_env` are set, expected only one (line 3, column 24)",
        ),
        (
            "admin_token = \"0123456789abcdef0123\"\nadmin_read_token = \"short\"\n",
            "test.toml: admin_read_token: the admin token must be at least 16 visible ASCII characters (no spaces), such as the output of `openssl rand -hex 32` (line 2, column 20)",
        ),
        (
            "admin_token = \"0123456789abcdef0123\"\nadmin_read_token_env = \"WARMGATE_TEST_UNSET_READ_TOKEN\"\n",
            "test.toml: admin_read_token_env: environment variable \"WARMGATE_TEST_UNSET_READ_TOKEN\" is not set or empty, expected it to hold the admin token (line 2, column 24)",
        ),
    ] {
        assert_eq!(error(text), expected, "{text}");
    }

    // A read token does not make an admin listener off loopback acceptable.
    assert!(
        error("admin_listen = \"0.0.0.0:9090\"\nadmin_read_token = \"fedcba9876543210fedc\"\n")
            .contains("a read token alone would leave signals and drain unguarded")
    );
}

// === [routes] and [clients] ===

#[test]
fn routes_are_on_by_default_and_each_can_be_turned_off() {
    assert_eq!(parse("").routes, crate::RoutesConfig::default());
    assert_eq!(
        Config::embedded_default().routes,
        crate::RoutesConfig::default()
    );
    let routes = parse(
        "[routes]\nchat_page = false\nchat = false\necho = false\nreadiness_detail = false\n",
    )
    .routes;
    assert_eq!(
        routes,
        crate::RoutesConfig {
            chat_page: false,
            websocket: vec![],
            readiness_detail: false,
        }
    );
    assert!(
        parse("[routes]\nreadiness_detail = false\n")
            .describe()
            .contains("  readiness_detail = off (404)\n")
    );
}

#[test]
fn route_errors_name_the_key_value_and_expectation() {
    for (text, expected) in [
        (
            "[routes]\nchat_page = true\nchat = false\n",
            "test.toml: routes.chat_page: the chat page talks to the chat application on `/ws`, which this config does not serve: expected `chat_page = false`, or `/ws` served by `app = \"chat\"` (line 2, column 13)",
        ),
        (
            "[routes]\necho = \"off\"\n",
            "test.toml: routes.echo: invalid type: string \"off\", expected a boolean (line 2, column 8)",
        ),
        (
            "[routes]\nmetrics = false\n",
            "test.toml: routes.metrics: unknown key `metrics`, expected one of `chat_page`, `chat`, `echo`, `readiness_detail` (line 2, column 1)",
        ),
    ] {
        assert_eq!(error(text), expected, "{text}");
    }
}

#[test]
fn clients_are_not_limited_by_default() {
    let clients = parse("").clients;
    assert_eq!(clients, crate::ClientsConfig::default());
    assert_eq!(Config::embedded_default().clients, clients);
    assert!(clients.trusted_proxies.is_empty());
    assert_eq!(clients.handshakes_per_second_per_address, None);
    assert_eq!(clients.max_event_streams_per_address, None);
}

#[test]
fn clients_take_proxies_as_addresses_and_ranges_and_their_limits() {
    let config = parse(
        r#"[clients]
trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1", "fd00::1"]
handshakes_per_second_per_address = 10
max_event_streams_per_address = 4
"#,
    );
    let proxies: Vec<String> = config
        .clients
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        proxies,
        [
            "10.0.0.0/8",
            "192.0.2.7/32",
            "2001:db8::/32",
            "198.51.100.1/32",
            "fd00::1/128"
        ]
    );
    assert_eq!(config.clients.handshakes_per_second_per_address, Some(10));
    assert_eq!(config.clients.max_event_streams_per_address, Some(4));
    let description = config.describe();
    assert!(
        description.contains("  handshakes_per_second_per_address = 10\n"),
        "{description}"
    );
    assert!(
        description.contains("  max_event_streams_per_address = 4\n"),
        "{description}"
    );
    assert!(
        description.contains("  trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7/32\""),
        "{description}"
    );
    assert_eq!(
        parse("[clients]\nhandshakes_per_second_per_address = 100000\n")
            .clients
            .handshakes_per_second_per_address,
        Some(100_000)
    );
}

#[test]
fn client_errors_name_the_key_value_and_expectation() {
    for (text, expected) in [
        (
            "[clients]\ntrusted_proxies = [\"10.0.0.5/8\"]\n",
            "test.toml: clients.trusted_proxies[0]: invalid range \"10.0.0.5/8\" (the address has bits set past the prefix length), expected \"10.0.0.0/8\" for the range or \"10.0.0.5\" for the one address (line 2, column 20)",
        ),
        (
            "[clients]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.internal\"]\n",
            "test.toml: clients.trusted_proxies[1]: invalid address or range \"proxy.internal\", expected an IP address such as \"10.0.0.7\" or a CIDR range such as \"10.0.0.0/8\" (line 2, column 34)",
        ),
        (
            "[clients]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            "test.toml: clients.trusted_proxies[0]: invalid address or range \"10.0.0.0/33\", expected an IP address such as \"10.0.0.7\" or a CIDR range such as \"10.0.0.0/8\" (line 2, column 20)",
        ),
        (
            "[clients]\ntrusted_proxies = \"10.0.0.0/8\"\n",
            "test.toml: clients.trusted_proxies: invalid type: string \"10.0.0.0/8\", expected a list of addresses and ranges such as [\"10.0.0.0/8\", \"192.0.2.7\"], or [] to trust no proxy (line 2, column 19)",
        ),
        (
            "[clients]\nhandshakes_per_second_per_address = 0\n",
            "test.toml: clients.handshakes_per_second_per_address: invalid value 0, expected a whole number from 1 to 100000 (line 2, column 37)",
        ),
        (
            "[clients]\nmax_event_streams_per_address = 100001\n",
            "test.toml: clients.max_event_streams_per_address: invalid value 100001, expected a whole number from 1 to 100000 (line 2, column 33)",
        ),
        (
            "[clients]\nmax_event_streams = 4\n",
            "test.toml: clients.max_event_streams: unknown key `max_event_streams`, expected one of `trusted_proxies`, `handshakes_per_second_per_address`, `max_event_streams_per_address` (line 2, column 1)",
        ),
    ] {
        assert_eq!(error(text), expected, "{text}");
    }
}

#[test]
fn the_documented_production_gate_turns_off_the_demo_routes_and_the_public_detail() {
    let docs = include_str!("../../../docs/configuration.md");
    let section = docs
        .split("## A production gate")
        .nth(1)
        .expect("docs/configuration.md has a production example");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    // Tests cannot set variables, so the tokens are written in.
    let text = example
        .replace(
            "admin_token_env = \"WARMGATE_ADMIN_TOKEN\"",
            "admin_token = \"0123456789abcdef0123\"",
        )
        .replace(
            "admin_read_token_env = \"WARMGATE_ADMIN_READ_TOKEN\"",
            "admin_read_token = \"fedcba9876543210fedc\"",
        );
    let config = parse(&text);
    assert_eq!(
        config.routes,
        crate::RoutesConfig {
            chat_page: false,
            websocket: crate::WebSocketRoute::demo(true, false),
            readiness_detail: false,
        }
    );
    assert!(config.admin_token.is_some() && config.admin_read_token.is_some());
    assert_eq!(config.clients.handshakes_per_second_per_address, Some(10));
    assert!(!config.clients.trusted_proxies.is_empty());
}

#[test]
fn a_grpc_health_listener_is_off_by_default_and_needs_an_address_of_its_own() {
    assert_eq!(parse("").grpc_health_listen, None);
    let config = parse("grpc_health_listen = \"0.0.0.0:9091\"\n");
    assert_eq!(
        config.grpc_health_listen,
        Some("0.0.0.0:9091".parse().unwrap())
    );
    assert!(
        config
            .describe()
            .contains("  grpc_health_listen = 0.0.0.0:9091\n")
    );
    assert_eq!(
        error("admin_listen = \"127.0.0.1:9090\"\ngrpc_health_listen = \"127.0.0.1:9090\"\n"),
        "test.toml: grpc_health_listen: address \"127.0.0.1:9090\" is also the `admin_listen` address, expected a different address or port for the gRPC health listener (line 2, column 22)"
    );
}

mod documented_keys;
