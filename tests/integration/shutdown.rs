//! The first second after SIGTERM, and the end of the drain: the listeners
//! stay open for `shutdown_delay` answering as draining (not after SIGINT),
//! connections without a request in flight never hold the exit, and the
//! log says when the listeners closed and, at a forced exit, what was open.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use warmgate_tests::backend::Backend;
use warmgate_tests::otlp::OtlpReceiver;
use warmgate_tests::{Gateway, Message, Plan, Table, refused_start, within};

async fn ready_gateway(gate: impl FnOnce(Table) -> Table) -> Gateway {
    let gateway = Gateway::builder()
        .config(Plan::app_signal().gate(gate))
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway
}

/// Waits for the exit and returns how long after `signalled` it came.
async fn exit_after(gateway: &mut Gateway, signalled: Instant) -> Duration {
    assert!(gateway.exit_status().await.success());
    signalled.elapsed()
}

/// Sends SIGTERM and waits until the state `draining` is published;
/// returns when the signal was sent.
async fn terminate_and_wait_for_draining(gateway: &Gateway) -> Instant {
    let mut events = gateway.events().await;
    let signalled = Instant::now();
    gateway.terminate();
    events
        .until(|snapshot| snapshot["state"] == "draining")
        .await;
    signalled
}

/// A TCP connection that has sent `bytes` and nothing more.
async fn sent_only(addr: SocketAddr, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

/// The `unix_ms` of the `stopped listening` lines in `log`.
fn stopped_listening(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("stopped listening"))
        .filter_map(|line| {
            let (_, rest) = line.split_once("unix_ms=")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test]
async fn after_sigterm_with_nothing_connected_late_clients_are_told_draining_not_refused() {
    // The default delay, 1 s.
    let mut gateway = ready_gateway(|gate| gate).await;
    let signalled = terminate_and_wait_for_draining(&gateway).await;

    // Clients that a load balancer still routes here.
    let mut late = gateway.ws("/ws").await;
    let refused = late.next_json().await;
    assert_eq!(refused["type"], "unavailable", "{refused}");
    assert_eq!(refused["reason"], "draining", "{refused}");
    assert!(
        refused["retry_after_ms"].as_u64().unwrap() >= 2000,
        "{refused}"
    );
    let (code, reason) = late.close_frame().await;
    assert_eq!(code, 1013);
    assert!(reason.contains("retry after"), "{reason}");
    let mut transparent = gateway.ws_with("/echo", &[]).await;
    assert_eq!(transparent.close_frame().await.0, 1013);
    assert_eq!(gateway.get("/readyz").await.status, 503);
    assert_eq!(gateway.get("/livez").await.status, 200);
    assert_eq!(
        gateway.admin_get("/readiness").await.json["state"],
        "draining"
    );

    let took = exit_after(&mut gateway, signalled).await;
    assert!(
        took >= Duration::from_secs(1),
        "exited {took:?} after SIGTERM"
    );
    let log = gateway.log();
    assert_eq!(stopped_listening(&log).len(), 2, "both listeners: {log}");
    assert!(!log.contains("connections still open"), "{log}");
}

#[tokio::test]
async fn sigint_drains_without_the_shutdown_delay() {
    let mut gateway = ready_gateway(|gate| {
        gate.set("shutdown_budget", "40s")
            .set("drain_grace", "30s")
            .set("shutdown_delay", "20s")
    })
    .await;
    let signalled = Instant::now();
    gateway.interrupt();
    let took = exit_after(&mut gateway, signalled).await;
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGINT"
    );
    assert!(gateway.log().contains("SIGINT"));
    assert_eq!(stopped_listening(&gateway.log()).len(), 2);
}

#[tokio::test]
async fn a_second_sigint_exits_at_once_without_waiting_for_open_clients() {
    let mut gateway = ready_gateway(|gate| {
        gate.set("shutdown_budget", "30s")
            .set("drain_grace", "20s")
            .set("shutdown_delay", "0s")
    })
    .await;
    // An admitted client the drain would wait `drain_grace` for.
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    let mut events = gateway.events().await;
    gateway.interrupt();
    events
        .until(|snapshot| snapshot["state"] == "draining")
        .await;
    assert_eq!(client.next_json().await["type"], "draining");
    let signalled = Instant::now();
    gateway.interrupt();
    let status = gateway.exit_status().await;
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited {:?} after the second SIGINT",
        signalled.elapsed()
    );
    assert!(gateway.log().contains("second SIGINT"));
}

#[tokio::test]
async fn sigint_during_the_shutdown_delay_cuts_it_short() {
    let mut gateway = ready_gateway(|gate| {
        gate.set("shutdown_budget", "40s")
            .set("drain_grace", "30s")
            .set("shutdown_delay", "20s")
    })
    .await;
    let signalled = terminate_and_wait_for_draining(&gateway).await;
    // Still listening, well inside the delay.
    assert_eq!(gateway.get("/readyz").await.status, 503);
    gateway.interrupt();
    let took = exit_after(&mut gateway, signalled).await;
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM"
    );
}

#[tokio::test]
async fn a_zero_shutdown_delay_stops_listening_as_soon_as_nothing_is_open() {
    let mut gateway = ready_gateway(|gate| {
        gate.set("shutdown_budget", "40s")
            .set("drain_grace", "30s")
            .set("shutdown_delay", "0s")
    })
    .await;
    let signalled = Instant::now();
    gateway.terminate();
    let took = exit_after(&mut gateway, signalled).await;
    // The default delay would have kept it a second.
    assert!(
        took < Duration::from_millis(900),
        "exited {took:?} after SIGTERM"
    );
    assert_eq!(stopped_listening(&gateway.log()).len(), 2);
}

#[tokio::test]
async fn connections_without_a_request_in_flight_do_not_hold_the_drain() {
    // Without the fix the exit waits for the force exit at the grace plus
    // a second (11 s), since the head deadline is longer still.
    let mut gateway = ready_gateway(|gate| {
        gate.set("shutdown_budget", "20s")
            .set("drain_grace", "10s")
            .set("handshake_timeout", "60s")
    })
    .await;
    let host = format!("Host: {}\r\n", gateway.public);
    let _cut_after_a_header =
        sent_only(gateway.public, &format!("GET /readyz HTTP/1.1\r\n{host}")).await;
    let _cut_in_the_request_line = sent_only(gateway.public, "GE").await;
    let _cut_on_the_admin_listener = sent_only(
        gateway.admin,
        &format!("GET /readiness HTTP/1.1\r\nHost: {}\r\nAcc", gateway.admin),
    )
    .await;
    // A keep-alive connection, idle after one answer.
    let mut idle = sent_only(
        gateway.public,
        &format!("GET /livez HTTP/1.1\r\n{host}\r\n"),
    )
    .await;
    let mut answer = Vec::new();
    while !String::from_utf8_lossy(&answer).contains("alive") {
        let mut buffer = [0; 1024];
        let n = within("the /livez answer", idle.read(&mut buffer))
            .await
            .unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..n]);
    }

    let signalled = Instant::now();
    gateway.terminate();
    let took = exit_after(&mut gateway, signalled).await;
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM"
    );
    let log = gateway.log();
    assert!(!log.contains("connections still open"), "{log}");
}

#[tokio::test]
async fn the_forced_exit_names_what_was_still_open() {
    let mut gateway = ready_gateway(|gate| gate.set("drain_grace", "1s")).await;
    // A request in flight: its head is whole, its body never comes.
    let _in_flight = sent_only(
        gateway.admin,
        &format!(
            "POST /signals/app HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ready\":",
            gateway.admin
        ),
    )
    .await;
    // An admitted WebSocket that never reads, so never answers the close:
    // the gate gives up on it within the margin, so it is not among what
    // holds the exit.
    let mut deaf = gateway.ws("/ws").await;
    assert_eq!(deaf.next_json().await["type"], "ready");
    // And a connection that sent half a head, which must not be counted.
    let _half = sent_only(gateway.public, "GET /readyz HTTP/1.1\r\n").await;

    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    let log = gateway.log();
    let line = log
        .lines()
        .find(|line| line.contains("connections still open"))
        .unwrap_or_else(|| panic!("no forced exit: {log}"));
    for field in [
        "n_websockets_open=0",
        "n_websockets_held=0",
        "n_http_requests_in_flight=1",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    drop(deaf);
}

// === the shutdown budget ===

/// The default budget: Cloud Run's 10 s between SIGTERM and SIGKILL.
const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// `/chat` is the demo chat; `/ws` is relayed to `backend`; readiness is
/// the `app` signal; spans go to `otlp` over `protocol` (`grpc` or
/// `http/protobuf`), batched for a minute so that only the flush at exit
/// can send them.
async fn gateway_with_every_kind_of_client(
    otlp: &str,
    protocol: &str,
    backend: &Backend,
    gate: impl FnOnce(Table) -> Table,
) -> Gateway {
    let config = Plan::app_signal()
        .gate(gate)
        .upstream(&backend.ws_url(""))
        .route("/chat", "chat");
    let gateway = Gateway::builder()
        .config(config)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway
}

#[tokio::test]
async fn with_the_defaults_held_admitted_and_proxied_clients_drain_and_the_spans_arrive_within_the_budget()
 {
    let receiver = OtlpReceiver::start().await;
    let backend = Backend::start(Duration::ZERO).await;
    backend.wait_healthy().await;
    // Over gRPC, whose exporter sends on the program's runtime: the flush
    // must come before the runtime stops.
    let mut gateway =
        gateway_with_every_kind_of_client(&receiver.grpc_endpoint(), "grpc", &backend, |gate| gate)
            .await;

    // Admitted: a chat client, and one that never reads again, so it never
    // answers the close and the drain runs to its very end.
    let mut admitted = gateway.ws("/chat").await;
    assert_eq!(admitted.next_json().await["type"], "ready");
    let mut deaf = gateway.ws("/chat").await;
    assert_eq!(deaf.next_json().await["type"], "ready");
    // Proxied, talking to the backend.
    let mut proxied = gateway.ws("/ws").await;
    assert_eq!(proxied.next_json().await["type"], "ready");
    proxied.send(Message::text("before the drain")).await;
    assert_eq!(
        proxied.next_message().await,
        Some(Message::text("before the drain"))
    );
    // Held: the gate stops being ready, and a new client waits.
    let mut events = gateway.events().await;
    gateway.set_signal("app", false).await;
    events
        .until(|snapshot| snapshot["state"] == "not_ready")
        .await;
    let mut held = gateway.ws("/chat").await;
    assert_eq!(held.next_json().await["type"], "warming");

    let signalled = Instant::now();
    gateway.terminate();
    let told = held.until_type("unavailable").await;
    assert_eq!(told.last().unwrap()["reason"], "draining");
    assert_eq!(held.close_frame().await.0, 1013);
    admitted.until_type("draining").await;
    proxied.until_type("draining").await;
    // Both finish the closing handshake.
    assert_eq!(admitted.close_frame().await.0, 1001);
    assert_eq!(admitted.next_message().await, None);
    assert_eq!(proxied.close_frame().await.0, 1001);
    assert_eq!(proxied.next_message().await, None);

    let status = gateway.exit_status().await;
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}: {}", gateway.log());
    assert!(took < DEFAULT_BUDGET, "exited {took:?} after SIGTERM");
    // The deaf client held the exit past the grace, until the gate gave up
    // on its close reply, inside the margin.
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(8),
        "exited {took:?} after SIGTERM"
    );
    // The spans were batched for a minute: only the flush at exit sent them.
    let spans = receiver.spans();
    let websockets: Vec<_> = spans
        .iter()
        .filter(|span| span.name == "websocket")
        .collect();
    // Every connection's, the deaf client's too: the gate gives up on its
    // close reply within the margin, so its connection ends (and is
    // counted) before the exit.
    assert_eq!(websockets.len(), 4, "{spans:#?}");
    let drained = websockets
        .iter()
        .filter(|span| {
            span.attribute("outcome") == "admitted" && span.attribute("close_code") == "1001"
        })
        .count();
    assert_eq!(drained, 3, "{websockets:#?}");
    for route in ["/chat", "/ws"] {
        assert!(
            websockets
                .iter()
                .any(|span| span.attribute("route") == route),
            "{route}: {websockets:#?}"
        );
    }
    let log = gateway.log();
    assert!(log.contains("exiting within the shutdown budget"), "{log}");
    drop(deaf);
}

#[tokio::test]
async fn a_collector_that_never_answers_costs_the_spans_not_the_budget() {
    // Accepts connections and never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let backend = Backend::start(Duration::ZERO).await;
    backend.wait_healthy().await;
    let budget = Duration::from_secs(4);
    let mut gateway =
        gateway_with_every_kind_of_client(&endpoint, "http/protobuf", &backend, |gate| {
            gate.set("shutdown_budget", "4s")
                .set("shutdown_delay", "0s")
        })
        .await;
    let mut client = gateway.ws("/chat").await;
    assert_eq!(client.next_json().await["type"], "ready");

    let signalled = Instant::now();
    gateway.terminate();
    let status = gateway.exit_status().await;
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}: {}", gateway.log());
    assert!(took < budget, "exited {took:?} after SIGTERM");
    drop(silent);
}

#[tokio::test]
async fn a_drain_grace_that_cannot_fit_the_budget_is_refused_at_start() {
    let dir = warmgate_tests::scratch_dir();
    let path = dir.path().join("warmgate.toml");
    std::fs::write(&path, "[gate]\ndrain_grace = \"9s\"\n").unwrap();
    let stderr = refused_start(&["--config", path.to_str().unwrap()], &[]).await;
    for needle in [
        "gate.drain_grace",
        "does not fit in `shutdown_budget` (\"10s\")",
        "a `drain_grace` of at most \"7s\", or a `shutdown_budget` of at least \"12s\"",
    ] {
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    }
}

// === the platform's PORT ===

#[tokio::test]
async fn port_moves_the_public_listener_to_every_interface() {
    let port = warmgate_tests::free_port();
    let gateway = Gateway::builder()
        .config(Plan::app_signal())
        .env("PORT", &port.to_string())
        .spawn()
        .await;
    assert_eq!(gateway.public.to_string(), format!("0.0.0.0:{port}"));
    // The admin listener stays where the file put it.
    assert!(gateway.admin.ip().is_loopback());
    let reached = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect(reached).await.unwrap();
}

#[tokio::test]
async fn a_port_that_is_not_a_port_is_refused_at_start() {
    let stderr = refused_start(&[], &[("PORT", "http")]).await;
    assert!(
        stderr.contains("PORT: invalid value \"http\", expected a port number from 1 to 65535"),
        "{stderr}"
    );
}
