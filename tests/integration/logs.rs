//! Log formats: every line of the `gcp` and `json` formats is one JSON
//! object that Cloud Logging (or any log pipeline) can read.

use warmgate_tests::{Gateway, Plan};

fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}")))
        .collect()
}

#[tokio::test]
async fn the_gcp_format_writes_cloud_logging_json_with_spans() {
    let config = Plan::app_signal().gate(|gate| gate.set("hold_timeout", "100ms"));
    let mut gateway = Gateway::builder()
        .config(config)
        .env("WARMGATE_LOG_FORMAT", "gcp")
        .spawn()
        .await;
    // A refused connection logs inside its `websocket` span.
    let mut client = gateway.ws("/ws").await;
    client.until_type("unavailable").await;
    client.close_frame().await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());

    let lines = json_lines(&gateway.log());
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line["message"].is_string(), "{line}");
        assert!(
            ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&line["severity"].as_str().unwrap()),
            "{line}"
        );
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    let refused = lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .unwrap()
                .starts_with("client not admitted")
        })
        .expect("the refusal is logged");
    assert_eq!(refused["reason"], "hold_timeout");
    assert_eq!(refused["spans"], serde_json::json!(["websocket", "hold"]));
    assert!(
        lines.iter().any(|line| line["severity"] == "WARNING"),
        "SIGTERM logs a warning"
    );
}

/// Runs `gateway` until ready, drains it, and returns its log as JSON
/// lines, asserting that the state change was among them.
async fn json_log_of_a_run(mut gateway: Gateway) -> Vec<serde_json::Value> {
    gateway.until_ready().await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    let lines = json_lines(&gateway.log());
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "readiness state changed")
    );
    lines
}

#[tokio::test]
async fn the_json_format_writes_one_object_per_line() {
    let gateway = Gateway::builder()
        .env("WARMGATE_LOG_FORMAT", "json")
        .spawn()
        .await;
    json_log_of_a_run(gateway).await;
}

#[tokio::test]
async fn the_environment_beats_the_file_for_the_log_format() {
    let config = Plan::new().table("telemetry", |telemetry| telemetry.set("log_format", "text"));
    let gateway = Gateway::builder()
        .config(config)
        .env("WARMGATE_LOG_FORMAT", "json")
        .spawn()
        .await;
    json_log_of_a_run(gateway).await;
}

#[tokio::test]
async fn an_invalid_rust_log_refuses_to_start_and_says_which_variable() {
    let stderr = warmgate_tests::refused_start(
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warmgate=loud")],
    )
    .await;
    assert!(
        stderr.contains(r#"RUST_LOG: cannot parse "warmgate=loud""#),
        "{stderr}"
    );
}
