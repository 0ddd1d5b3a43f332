//! `/metrics` on the admin listener: Prometheus text that counts what
//! happened, and never runs a check.

use std::collections::HashMap;

use tokio::net::TcpListener;
use warmgate_tests::Gateway;

/// Parses Prometheus text into `name{labels}` -> value, failing on any line
/// that is neither a comment nor a sample.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(gateway: &Gateway) -> HashMap<String, f64> {
    let reply = gateway.admin_get("/metrics").await;
    assert_eq!(reply.status, 200);
    parse(&reply.text)
}

fn plan(gate: &str, checks: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[gate]
{gate}

[[phase]]
name = "services"

[[phase.check]]
name = "app"
kind = "signal"
{checks}
"#
    )
}

#[tokio::test]
async fn metrics_parse_and_count_held_admitted_and_refused_connections() {
    let gateway = Gateway::builder()
        .config(plan(r#"hold_timeout = "200ms""#, ""))
        .spawn()
        .await;
    let samples = scrape(&gateway).await;
    for name in [
        "warmgate_state{state=\"starting\"}",
        "warmgate_connections{route=\"/ws\",stage=\"held\"}",
        "warmgate_check_up{check=\"app\"}",
        "warmgate_check_failures_total{check=\"app\"}",
    ] {
        assert!(samples.contains_key(name), "{name} missing");
    }
    assert_eq!(samples["warmgate_state{state=\"starting\"}"], 1.0);

    // One client refused at the hold timeout...
    let mut refused = gateway.ws("/ws").await;
    refused.until_type("unavailable").await;
    refused.close_frame().await;
    // ...and one held, then admitted.
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "warming");
    gateway.set_signal("app", true).await;
    client.until_type("ready").await;

    let samples = scrape(&gateway).await;
    let admitted = "warmgate_connection_wait_seconds_count{outcome=\"admitted\"}";
    assert_eq!(samples[admitted], 1.0);
    assert!(samples["warmgate_connection_wait_seconds_sum{outcome=\"admitted\"}"] > 0.0);
    assert_eq!(
        samples["warmgate_connection_wait_seconds_count{outcome=\"unavailable:hold_timeout\"}"],
        1.0
    );
    assert_eq!(
        samples["warmgate_connections{route=\"/ws\",stage=\"admitted\"}"],
        1.0
    );
    assert_eq!(
        samples["warmgate_connections{route=\"/ws\",stage=\"held\"}"],
        0.0
    );
    assert_eq!(samples["warmgate_state{state=\"ready\"}"], 1.0);
    assert_eq!(samples["warmgate_state{state=\"starting\"}"], 0.0);
    assert_eq!(samples["warmgate_check_up{check=\"app\"}"], 1.0);
    assert!(samples["warmgate_startup_seconds"] > 0.0);
    assert!(samples.contains_key("warmgate_transitions_total{from=\"starting\",to=\"ready\"}"));
}

#[tokio::test]
async fn scraping_never_runs_a_check() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let checks = format!(
        "\n[[phase.check]]\nname = \"db\"\nkind = \"tcp\"\naddr = \"{addr}\"\ninterval = \"1h\"\n"
    );
    let gateway = Gateway::builder().config(plan("", &checks)).spawn().await;
    gateway.set_signal("app", true).await;
    gateway
        .events()
        .await
        .until(|s| s["state"] == "ready")
        .await;
    let attempts = |verbose: serde_json::Value| verbose["checks"][1]["attempts"].as_u64().unwrap();
    let before = attempts(gateway.admin_get("/readiness").await.json);
    for _ in 0..20 {
        let samples = scrape(&gateway).await;
        assert_eq!(samples["warmgate_check_up{check=\"db\"}"], 1.0);
    }
    assert_eq!(attempts(gateway.admin_get("/readiness").await.json), before);
}
