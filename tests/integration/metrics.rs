//! `/metrics` on the admin listener: Prometheus text that counts what
//! happened, and never runs a check. Each test scrapes once it has seen the
//! event it counts (a frame, a snapshot), never in a retry loop.

use std::collections::HashMap;

use serde_json::Value;
use tokio::net::TcpListener;
use warmgate_tests::{Check, Gateway, Message, Plan, free_port};

/// Every metric warmgate serves, with its Prometheus type.
const METRICS: [(&str, &str); 11] = [
    ("warmgate_connection_wait_seconds", "histogram"),
    ("warmgate_connections", "gauge"),
    ("warmgate_connections_total", "counter"),
    ("warmgate_state", "gauge"),
    ("warmgate_transitions_total", "counter"),
    ("warmgate_startup_seconds", "gauge"),
    ("warmgate_check_duration_seconds", "histogram"),
    ("warmgate_check_up", "gauge"),
    ("warmgate_check_failures_total", "counter"),
    ("warmgate_client_refusals_total", "counter"),
    ("warmgate_event_streams", "gauge"),
];

// === the text format ===

/// One scrape, parsed: each family's `# TYPE`, and each sample's value
/// keyed by its series as written (`name{label="value",...}`).
#[derive(Debug)]
struct Scrape {
    text: String,
    types: HashMap<String, String>,
    samples: HashMap<String, f64>,
}

impl Scrape {
    /// Parses the Prometheus text format (version 0.0.4), failing on any
    /// line that is not a comment or a well-formed sample of a declared
    /// family.
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape {
            text: text.to_owned(),
            types: HashMap::new(),
            samples: HashMap::new(),
        };
        for line in text.lines().filter(|line| !line.is_empty()) {
            if let Some(comment) = line.strip_prefix('#') {
                scrape.comment(comment.trim_start(), line);
            } else {
                scrape.sample(line);
            }
        }
        scrape
    }

    fn comment(&mut self, comment: &str, line: &str) {
        if let Some(help) = comment.strip_prefix("HELP ") {
            let name = help.split_once(' ').map_or(help, |(name, _)| name);
            assert!(is_metric_name(name), "bad name in {line:?}");
        } else if let Some(declared) = comment.strip_prefix("TYPE ") {
            let (name, kind) = declared
                .split_once(' ')
                .unwrap_or_else(|| panic!("a TYPE without a type: {line:?}"));
            assert!(is_metric_name(name), "bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            let earlier = self.types.insert(name.to_owned(), kind.to_owned());
            assert!(earlier.is_none(), "{name} declared twice");
        }
        // Any other comment is allowed and means nothing.
    }

    fn sample(&mut self, line: &str) {
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad name in {line:?}");
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            rest = skip_labels(labels, line);
        }
        let mut fields = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"))
            .split(' ');
        let value: f64 = fields
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("bad value in {line:?}"));
        if let Some(timestamp) = fields.next() {
            assert!(
                timestamp.parse::<i64>().is_ok(),
                "bad timestamp in {line:?}"
            );
        }
        assert!(fields.next().is_none(), "trailing text in {line:?}");
        assert!(
            self.family_of(name).is_some(),
            "{name} has no TYPE before it: {line:?}"
        );
        let series = &line[..line.len() - rest.len()];
        let earlier = self.samples.insert(series.to_owned(), value);
        assert!(earlier.is_none(), "{series} appears twice");
    }

    /// The declared family a sample belongs to: its own name, or a
    /// histogram's or summary's `_bucket`, `_sum` and `_count`.
    fn family_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.types.contains_key(name) {
            return Some(name);
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(move |suffix| {
                let family = name.strip_suffix(suffix)?;
                let kind = self.types.get(family)?;
                (kind == "histogram" || kind == "summary").then_some(family)
            })
    }

    /// The value of one series, written as it is rendered.
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.text))
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks `name="value",...}` and returns what follows the `}`.
fn skip_labels<'a>(mut labels: &'a str, line: &str) -> &'a str {
    loop {
        if let Some(rest) = labels.strip_prefix('}') {
            return rest;
        }
        let (name, rest) = labels
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        let mut chars = name.chars();
        assert!(
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name {name:?} in {line:?}"
        );
        // The value runs to the first quote that is not escaped.
        let mut escaped = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map(|(index, _)| index)
            .unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
        labels = &rest[end + 1..];
        labels = labels.strip_prefix(',').unwrap_or(labels);
    }
}

// === helpers ===

async fn scrape(gateway: &Gateway) -> Scrape {
    let reply = gateway.admin_get("/metrics").await;
    assert_eq!(reply.status, 200);
    Scrape::parse(&reply.text)
}

/// A required `tcp` check named `db` against `addr`, probed every `interval`.
fn tcp_check(addr: &str, interval: &str) -> Check {
    Check::tcp("db", addr).set("interval", interval)
}

fn check_status(snapshot: &Value, name: &str) -> Option<String> {
    snapshot["checks"]
        .as_array()?
        .iter()
        .find(|check| check["name"] == name)
        .and_then(|check| check["status"].as_str())
        .map(str::to_owned)
}

// === tests ===

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_series_from_the_start() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gateway = Gateway::builder()
        .config(Plan::app_signal().check(tcp_check(&addr, "1h")))
        .spawn()
        .await;

    let scrape_at_start = scrape(&gateway).await;
    for (name, kind) in METRICS {
        if name == "warmgate_startup_seconds" {
            // No honest value before the first ready.
            assert!(!scrape_at_start.types.contains_key(name));
            continue;
        }
        assert_eq!(
            scrape_at_start.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    assert_eq!(
        scrape_at_start.value(r#"warmgate_state{state="starting"}"#),
        1.0
    );
    assert_eq!(
        scrape_at_start.value(r#"warmgate_check_up{check="app"}"#),
        0.0
    );
    assert_eq!(
        scrape_at_start.value(r#"warmgate_connections{route="/echo",stage="held"}"#),
        0.0
    );
    for outcome in ["left_while_held", "left_during_upgrade"] {
        assert_eq!(
            scrape_at_start.value(&format!(
                "warmgate_connections_total{{outcome=\"{outcome}\"}}"
            )),
            0.0,
            "{outcome}"
        );
    }
    for reason in ["handshake_rate", "event_streams", "host", "http_version"] {
        assert_eq!(
            scrape_at_start.value(&format!(
                "warmgate_client_refusals_total{{reason=\"{reason}\"}}"
            )),
            0.0,
            "{reason}"
        );
    }

    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    let ready = scrape(&gateway).await;
    for (name, kind) in METRICS {
        assert_eq!(
            ready.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    assert_eq!(ready.value(r#"warmgate_state{state="ready"}"#), 1.0);
    assert_eq!(ready.value(r#"warmgate_state{state="starting"}"#), 0.0);
    for state in ["degraded", "not_ready", "failed", "draining"] {
        assert_eq!(
            ready.value(&format!("warmgate_state{{state=\"{state}\"}}")),
            0.0
        );
    }
    assert_eq!(
        ready.value(r#"warmgate_transitions_total{from="starting",to="ready"}"#),
        1.0
    );
    assert!(ready.value("warmgate_startup_seconds") > 0.0);
    assert_eq!(ready.value(r#"warmgate_check_up{check="app"}"#), 1.0);
    assert_eq!(ready.value(r#"warmgate_check_up{check="db"}"#), 1.0);
    drop(listener);
}

#[tokio::test]
async fn a_held_then_admitted_connection_is_counted_under_admitted() {
    let gateway = Gateway::builder().config(Plan::app_signal()).spawn().await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "warming");
    let held = scrape(&gateway).await;
    assert_eq!(
        held.value(r#"warmgate_connections{route="/ws",stage="held"}"#),
        1.0
    );
    gateway.set_signal("app", true).await;
    client.until_type("ready").await;

    let admitted = scrape(&gateway).await;
    assert_eq!(
        admitted.value(r#"warmgate_connection_wait_seconds_count{outcome="admitted"}"#),
        1.0
    );
    assert!(admitted.value(r#"warmgate_connection_wait_seconds_sum{outcome="admitted"}"#) > 0.0);
    assert_eq!(
        admitted.value(r#"warmgate_connection_wait_seconds_bucket{outcome="admitted",le="+Inf"}"#),
        1.0
    );
    assert_eq!(
        admitted.value(r#"warmgate_connections{route="/ws",stage="held"}"#),
        0.0
    );
    assert_eq!(
        admitted.value(r#"warmgate_connections{route="/ws",stage="admitted"}"#),
        1.0
    );
    assert_eq!(
        admitted.value(r#"warmgate_connections_total{outcome="admitted"}"#),
        0.0
    );

    // The server counts the connection before it answers the close, so one
    // scrape after the answer sees it.
    client.send(Message::Close(None)).await;
    assert_eq!(client.close_frame().await.0, 1000);
    let closed = scrape(&gateway).await;
    assert_eq!(
        closed.value(r#"warmgate_connections_total{outcome="admitted"}"#),
        1.0
    );
    assert_eq!(
        closed.value(r#"warmgate_connections{route="/ws",stage="admitted"}"#),
        0.0
    );
}

#[tokio::test]
async fn a_client_refused_at_the_hold_timeout_is_counted_under_unavailable_hold_timeout() {
    let gateway = Gateway::builder()
        .config(Plan::app_signal().gate(|gate| gate.set("hold_timeout", "200ms")))
        .spawn()
        .await;
    let mut client = gateway.ws("/ws").await;
    let frames = client.until_type("unavailable").await;
    assert_eq!(frames.last().unwrap()["reason"], "hold_timeout");
    assert_eq!(client.close_frame().await.0, 1013);

    let samples = scrape(&gateway).await;
    let outcome = "unavailable:hold_timeout";
    assert_eq!(
        samples.value(&format!(
            "warmgate_connection_wait_seconds_count{{outcome=\"{outcome}\"}}"
        )),
        1.0
    );
    assert!(
        samples.value(&format!(
            "warmgate_connection_wait_seconds_sum{{outcome=\"{outcome}\"}}"
        )) >= 0.2
    );
    assert_eq!(
        samples.value(&format!(
            "warmgate_connections_total{{outcome=\"{outcome}\"}}"
        )),
        1.0
    );
    assert_eq!(
        samples.value(r#"warmgate_connections{route="/ws",stage="held"}"#),
        0.0
    );
    assert_eq!(
        samples.value(r#"warmgate_connection_wait_seconds_count{outcome="admitted"}"#),
        0.0
    );
}

#[tokio::test]
async fn a_tcp_check_on_a_closed_port_is_down_and_counts_its_failures() {
    let closed = format!("127.0.0.1:{}", free_port());
    let gateway = Gateway::builder()
        .config(Plan::app_signal().check(tcp_check(&closed, "1s")))
        .spawn()
        .await;
    // An attempt is counted before the snapshot that shows its result.
    gateway
        .events()
        .await
        .until(|snapshot| check_status(snapshot, "db").as_deref() == Some("failing"))
        .await;

    let samples = scrape(&gateway).await;
    assert_eq!(samples.value(r#"warmgate_check_up{check="db"}"#), 0.0);
    assert!(samples.value(r#"warmgate_check_failures_total{check="db"}"#) >= 1.0);
    assert!(samples.value(r#"warmgate_check_duration_seconds_count{check="db"}"#) >= 1.0);
    // A signal has no attempts: only its `up` and a failure count of 0.
    assert_eq!(
        samples.value(r#"warmgate_check_failures_total{check="app"}"#),
        0.0
    );
    assert!(
        !samples
            .samples
            .contains_key(r#"warmgate_check_duration_seconds_count{check="app"}"#)
    );
}

#[tokio::test]
async fn scraping_never_runs_a_check() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gateway = Gateway::builder()
        .config(Plan::app_signal().check(tcp_check(&addr, "1h")))
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    let attempts = |verbose: Value| {
        verbose["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|check| check["name"] == "db")
            .unwrap()["attempts"]
            .as_u64()
            .unwrap()
    };
    let before = attempts(gateway.admin_get("/readiness").await.json);
    for _ in 0..20 {
        let samples = scrape(&gateway).await;
        assert_eq!(samples.value(r#"warmgate_check_up{check="db"}"#), 1.0);
    }
    assert_eq!(attempts(gateway.admin_get("/readiness").await.json), before);
    assert_eq!(before, 1, "an interval of 1h leaves room for one attempt");
    drop(listener);
}
