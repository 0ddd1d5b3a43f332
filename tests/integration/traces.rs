//! Traces: the real program exports OTLP to a real receiver over a socket
//! (see `warmgate_tests::otlp`), over HTTP and over gRPC.

use warmgate_tests::otlp::{OtlpReceiver, ReceivedSpan};
use warmgate_tests::{Check, Gateway, Message, Plan, WsClient};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A gateway held on the `app` signal, exporting to `receiver` over HTTP.
/// The batch delay is a minute, so spans arrive only when the exporter is
/// flushed at shutdown.
async fn held_gateway_exporting_over_http(receiver: &OtlpReceiver) -> Gateway {
    Gateway::builder()
        .config(Plan::app_signal())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .env("K_SERVICE", "chat")
        .env("K_REVISION", "chat-00042-abc")
        .env("K_CONFIGURATION", "chat")
        .spawn()
        .await
}

/// Closes a client politely and waits for the server's close frame.
async fn close(mut client: WsClient) {
    client.send(Message::Close(None)).await;
    client.close_frame().await;
}

fn one_named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let named: Vec<_> = spans.iter().filter(|span| span.name == name).collect();
    assert_eq!(named.len(), 1, "one {name:?} span expected: {spans:#?}");
    named[0]
}

#[tokio::test]
async fn a_connection_with_a_traceparent_joins_that_trace_and_is_flushed_at_drain() {
    let receiver = OtlpReceiver::start().await;
    let mut gateway = held_gateway_exporting_over_http(&receiver).await;
    let mut client = gateway
        .ws_with_headers("/ws", &["warmgate.v1"], &[("traceparent", TRACEPARENT)])
        .await;
    client.until_type("warming").await;
    gateway.set_signal("app", true).await;
    client.until_type("ready").await;
    close(client).await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());

    // No waiting: the drain flushed the exporter before the process exited.
    let spans = receiver.spans();
    let websocket = one_named(&spans, "websocket");
    assert_eq!(websocket.transport, "http");
    assert_eq!(websocket.trace_id, TRACE_ID);
    assert_eq!(websocket.parent_span_id, PARENT_SPAN_ID);
    assert_eq!(websocket.attribute("trace_parent"), "traceparent");
    assert_eq!(websocket.attribute("route"), "/ws");
    assert_eq!(websocket.attribute("state_at_connect"), "starting");
    assert_eq!(websocket.attribute("outcome"), "admitted");
    assert_eq!(websocket.number("close_code"), 1000.0);
    assert!(!websocket.attribute("conn.id").is_empty());
    assert!(websocket.number("waited_ms") > 0.0);

    let hold = one_named(&spans, "hold");
    assert_eq!(hold.trace_id, TRACE_ID);
    assert_eq!(hold.parent_span_id, websocket.span_id);
    assert_eq!(hold.number("hold_timeout_ms"), 5000.0);

    let resource = &websocket.resource;
    assert_eq!(resource["service.name"], "warmgate");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["service.instance.id"].len(), 36);
    assert_eq!(resource["faas.name"], "chat");
    assert_eq!(resource["faas.version"], "chat-00042-abc");
    assert_eq!(resource["gcp.cloud_run.configuration"], "chat");
}

#[tokio::test]
async fn the_cloud_run_trace_header_is_the_parent_when_there_is_no_traceparent() {
    let receiver = OtlpReceiver::start().await;
    let mut gateway = held_gateway_exporting_over_http(&receiver).await;
    // Answered once the state is ready: the connection below finds it so.
    gateway.set_signal("app", true).await;
    // 1234567890123456789 is 0x112210f47de98115.
    let header = format!("{TRACE_ID}/1234567890123456789;o=1");
    let mut client = gateway
        .ws_with_headers(
            "/ws",
            &["warmgate.v1"],
            &[("x-cloud-trace-context", header.as_str())],
        )
        .await;
    client.until_type("ready").await;
    close(client).await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());

    let spans = receiver.spans();
    let websocket = one_named(&spans, "websocket");
    assert_eq!(websocket.trace_id, TRACE_ID);
    assert_eq!(websocket.parent_span_id, "112210f47de98115");
    assert_eq!(websocket.attribute("trace_parent"), "x-cloud-trace-context");
    assert_eq!(websocket.attribute("state_at_connect"), "ready");
}

#[tokio::test]
async fn check_attempts_and_transitions_arrive_over_grpc_inside_the_startup_trace() {
    let receiver = OtlpReceiver::start().await;
    let closed_port = warmgate_tests::free_port();
    let gateway = Gateway::builder()
        .config(
            Plan::app_signal()
                .check(Check::tcp("cache", format!("127.0.0.1:{closed_port}")).optional())
                .gate(|gate| gate.set("retry_cap", "50ms")),
        )
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", "chat-gateway")
        .env("OTEL_BSP_SCHEDULE_DELAY", "20")
        .spawn()
        .await;

    let failed = receiver
        .until("a failed check attempt", |span| {
            span.name == "check_attempt"
                && span.attributes.get("outcome").map(String::as_str) == Some("failed")
        })
        .await;
    assert_eq!(failed.transport, "grpc");
    assert_eq!(failed.attribute("check.name"), "cache");
    assert_eq!(failed.attribute("check.kind"), "tcp");
    assert!(failed.attribute("error").contains("refused"), "{failed:#?}");
    assert!(failed.number("latency_ms") >= 0.0);
    assert_eq!(failed.resource["service.name"], "chat-gateway");

    gateway.set_signal("app", true).await;
    let startup = receiver
        .until("the startup span", |span| span.name == "startup")
        .await;
    assert_eq!(startup.attribute("outcome"), "degraded");
    assert!(startup.number("startup_ms") >= 0.0);
    assert_eq!(startup.number("n_checks"), 2.0);
    assert_eq!(startup.parent_span_id, "");
    assert_eq!(failed.trace_id, startup.trace_id);
    assert_eq!(failed.parent_span_id, startup.span_id);

    let transition = receiver
        .until("the transition to degraded", |span| {
            span.name == "state_transition"
                && span.attributes.get("to").map(String::as_str) == Some("degraded")
        })
        .await;
    assert_eq!(transition.attribute("from"), "starting");
    assert!(transition.number("seq") >= 1.0);
    assert!(!transition.attribute("reason").is_empty());
    assert_eq!(transition.parent_span_id, startup.span_id);
    assert!(
        transition
            .events
            .iter()
            .any(|event| event["message"] == "readiness state changed" && event["to"] == "degraded"),
        "{transition:#?}"
    );
}

#[tokio::test]
async fn gcp_log_lines_carry_the_trace_and_span_of_the_exported_span() {
    let receiver = OtlpReceiver::start().await;
    let mut gateway = Gateway::builder()
        .config(Plan::app_signal().gate(|gate| gate.set("hold_timeout", "100ms")))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint())
        .env("WARMGATE_LOG_FORMAT", "gcp")
        .env("GOOGLE_CLOUD_PROJECT", "chat-prod")
        .spawn()
        .await;
    let mut client = gateway
        .ws_with_headers("/ws", &["warmgate.v1"], &[("traceparent", TRACEPARENT)])
        .await;
    client.until_type("unavailable").await;
    client.close_frame().await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());

    let refused = gateway
        .log()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("client not admitted"))
        })
        .expect("the refusal is logged");
    let spans = receiver.spans();
    let hold = one_named(&spans, "hold");
    assert_eq!(
        refused["logging.googleapis.com/trace"],
        format!("projects/chat-prod/traces/{TRACE_ID}")
    );
    assert_eq!(
        refused["logging.googleapis.com/spanId"],
        hold.span_id.as_str()
    );
    assert_eq!(refused["logging.googleapis.com/trace_sampled"], true);
}

#[tokio::test]
async fn gcp_log_lines_link_to_traces_even_without_an_exporter() {
    let mut gateway = Gateway::builder()
        .config(Plan::app_signal().gate(|gate| gate.set("hold_timeout", "100ms")))
        .env("WARMGATE_LOG_FORMAT", "gcp")
        .env("GOOGLE_CLOUD_PROJECT", "chat-prod")
        .spawn()
        .await;
    let header = format!("{TRACE_ID}/7;o=1");
    let mut client = gateway
        .ws_with_headers(
            "/ws",
            &["warmgate.v1"],
            &[("x-cloud-trace-context", header.as_str())],
        )
        .await;
    client.until_type("unavailable").await;
    client.close_frame().await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    let log = gateway.log();
    let in_span: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.contains(&"websocket".into()))
        })
        .collect();
    assert!(!in_span.is_empty(), "{log}");
    for line in in_span {
        assert_eq!(
            line["logging.googleapis.com/trace"],
            format!("projects/chat-prod/traces/{TRACE_ID}"),
            "{line}"
        );
    }
}
