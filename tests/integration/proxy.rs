//! Proxy mode end to end: the real program in front of the real stand-in
//! backend (FastAPI on uvicorn, `tests/backend/app.py`). Clients are held
//! and warmed while the backend starts, then relayed to it; close codes
//! cross both ways; the drain reaches proxied clients and the backend;
//! the handshake carries what the backend needs and nothing of warmgate's
//! own protocol; plain HTTP waits for readiness too; and the relay is
//! counted. Every wait is on a frame, a close, a log line or an answer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use warmgate_tests::backend::{Backend, SUBPROTOCOL, assert_sse_unbuffered, sse_path};
use warmgate_tests::proxy::{
    Direction, WireTap, gated_on_backend, gated_on_signal, series_value, until_logged,
};
use warmgate_tests::{CloseCode, Gateway, Message, Plan, Table, free_port, http_client, within};

/// How long the backend takes to start where a test needs it starting:
/// short, since Python itself adds most of a second.
const STARTUP_DELAY: Duration = Duration::from_secs(1);

/// A backend that is already serving.
async fn serving_backend() -> Backend {
    let backend = Backend::start(Duration::ZERO).await;
    backend.wait_healthy().await;
    backend
}

/// A gateway on `plan` (a [`gated_on_signal`] one), made ready by its
/// signal.
async fn ready_gateway(plan: Plan) -> Gateway {
    let gateway = Gateway::builder().config(plan).spawn().await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway
}

/// A gateway whose readiness is the backend's `/healthz`, with the
/// `[gate]` settings given.
async fn gateway_on_backend(backend: &Backend, gate: impl FnOnce(Table) -> Table) -> Gateway {
    Gateway::builder()
        .config(gated_on_backend(backend).gate(gate))
        .spawn()
        .await
}

/// Reads the next message, which must be this text.
async fn expect_text(client: &mut warmgate_tests::WsClient, text: &str) {
    assert_eq!(client.next_message().await, Some(Message::text(text)));
}

async fn scrape(gateway: &Gateway) -> String {
    let reply = gateway.admin_get("/metrics").await;
    assert_eq!(reply.status, 200);
    reply.text
}

fn value(scrape: &str, series: &str) -> f64 {
    series_value(scrape, series).unwrap_or_else(|| panic!("no series {series} in:\n{scrape}"))
}

// === hold, admit, relay ===

#[tokio::test]
async fn a_warmgate_client_is_warmed_while_the_backend_starts_then_talks_to_it() {
    let backend = Backend::start(STARTUP_DELAY).await;
    let gateway = gateway_on_backend(&backend, |gate| {
        gate.set("hold_timeout", "30s")
            .set("warming_interval", "200ms")
    })
    .await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.subprotocol.as_deref(), Some("warmgate.v1"));

    let frames = client.until_type("ready").await;
    let (ready, warming) = frames.split_last().unwrap();
    assert!(
        !warming.is_empty(),
        "admitted without being held: {frames:#?}"
    );
    for frame in warming {
        assert_eq!(frame["type"], "warming", "{frame}");
        assert_eq!(frame["pending"], json!(["backend"]), "{frame}");
    }
    assert_eq!(ready["state"], "ready");
    assert!(ready["waited_ms"].as_u64().unwrap() > 0, "{ready}");

    client.send(Message::text("hello backend")).await;
    expect_text(&mut client, "hello backend").await;
    client
        .send_json(json!({"op": "stream", "text": "tokens arrive in order", "delay_ms": 10}))
        .await;
    for (index, token) in ["tokens", "arrive", "in", "order"].into_iter().enumerate() {
        assert_eq!(
            client.next_json().await,
            json!({"token": token, "index": index})
        );
    }
    assert_eq!(client.next_json().await, json!({"done": true, "tokens": 4}));
}

#[tokio::test]
async fn messages_sent_while_held_reach_the_backend_in_order_before_later_ones() {
    let backend = Backend::start(STARTUP_DELAY).await;
    let gateway = gateway_on_backend(&backend, |gate| gate.set("hold_timeout", "30s")).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "warming");
    let held = ["held 1", "held 2", "held 3"];
    for text in held {
        client.send(Message::text(text)).await;
    }

    client.until_type("ready").await;
    // The backend echoes each replayed message, in order.
    for text in held {
        expect_text(&mut client, text).await;
    }
    client.send(Message::text("after ready")).await;
    expect_text(&mut client, "after ready").await;
    client.send_json(json!({"op": "log"})).await;
    assert_eq!(
        client.next_json().await,
        json!({"received": ["held 1", "held 2", "held 3", "after ready"]})
    );
}

#[tokio::test]
async fn a_transparent_client_held_beside_a_warmgate_client_sees_only_the_backend() {
    let backend = Backend::start(STARTUP_DELAY).await;
    let gateway = gateway_on_backend(&backend, |gate| {
        gate.set("hold_timeout", "30s")
            .set("warming_interval", "100ms")
    })
    .await;
    let mut warmgate = gateway.ws("/ws").await;
    let mut transparent = gateway.ws_with("/ws", &[]).await;
    assert_eq!(transparent.subprotocol, None);
    assert_eq!(warmgate.next_json().await["type"], "warming");
    transparent
        .send(Message::text("sent by the transparent client while held"))
        .await;

    // Both are held on the same gate and admitted by the same flip: the
    // warmgate client was warmed all along, the transparent one was not.
    warmgate.until_type("ready").await;
    // Its first message is the backend's echo: no warmgate frame before.
    expect_text(
        &mut transparent,
        "sent by the transparent client while held",
    )
    .await;
    transparent.send_json(json!({"op": "log"})).await;
    assert_eq!(
        transparent.next_json().await,
        json!({"received": ["sent by the transparent client while held"]})
    );

    warmgate
        .send(Message::text("from the warmgate client"))
        .await;
    expect_text(&mut warmgate, "from the warmgate client").await;
}

// === the backend unreachable, closing or gone ===

#[tokio::test]
async fn a_backend_down_at_admission_refuses_clients_with_upstream_unavailable_and_1013() {
    let mut backend = serving_backend().await;
    let gateway = ready_gateway(gated_on_signal(&backend.ws_url(""))).await;
    // Proxied while the backend is up...
    let mut before = gateway.ws("/ws").await;
    assert_eq!(before.next_json().await["type"], "ready");
    drop(before);

    // ...and refused at admission once it is gone, the gate still ready.
    backend.stop().await;
    let mut client = gateway.ws("/ws").await;
    let frames = client.until_type("unavailable").await;
    assert!(
        frames.iter().all(|frame| frame["type"] != "ready"),
        "{frames:#?}"
    );
    let unavailable = frames.last().unwrap();
    assert_eq!(
        unavailable["reason"], "upstream_unavailable",
        "{unavailable}"
    );
    assert_eq!(unavailable["state"], "ready", "{unavailable}");
    assert!(unavailable["retry_after_ms"].as_u64().is_some());
    let (code, reason) = client.close_frame().await;
    assert_eq!(code, 1013);
    assert!(reason.starts_with("upstream_unavailable"), "{reason}");

    // A transparent client gets the close alone.
    let mut transparent = gateway.ws_with("/ws", &[]).await;
    match transparent.next_message().await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1013),
        other => panic!("expected close 1013 and nothing before it, got {other:?}"),
    }
    let log = gateway.log();
    assert!(
        log.contains("the client's application could not start"),
        "{log}"
    );
}

#[tokio::test]
async fn the_backends_close_code_and_reason_reach_the_client() {
    let backend = serving_backend().await;
    let gateway = ready_gateway(gated_on_signal(&backend.ws_url(""))).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client
        .send_json(json!({"op": "close", "code": 4001, "reason": "bye"}))
        .await;
    assert_eq!(client.close_frame().await, (4001, "bye".to_owned()));
}

#[tokio::test]
async fn a_backend_killed_mid_session_closes_the_client_with_1011() {
    let mut backend = serving_backend().await;
    let gateway = ready_gateway(gated_on_signal(&backend.ws_url(""))).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client.send(Message::text("still there?")).await;
    expect_text(&mut client, "still there?").await;

    backend.stop().await;
    assert_eq!(client.close_frame().await.0, 1011);
    let scrape = scrape(&gateway).await;
    assert_eq!(
        value(&scrape, "warmgate_upstream_failures_total{reason=\"lost\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_backend_shutting_down_gracefully_closes_its_clients_with_its_own_1012() {
    // SIGTERM, as Cloud Run or Kubernetes send a backend they scale in:
    // uvicorn closes its WebSockets with 1012 (service restart), and the
    // client hears that code, not a generic error, so it reconnects.
    let mut backend = serving_backend().await;
    let gateway = ready_gateway(gated_on_signal(&backend.ws_url(""))).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client.send(Message::text("before the restart")).await;
    expect_text(&mut client, "before the restart").await;

    let status = backend.terminate().await;
    assert_eq!(
        client.close_frame().await.0,
        1012,
        "backend {status}: {}",
        backend.log()
    );
    assert_eq!(client.next_message().await, None);
    // A close the backend chose is not a lost backend.
    let scrape = scrape(&gateway).await;
    assert_eq!(
        value(&scrape, "warmgate_upstream_failures_total{reason=\"lost\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_client_close_code_reaches_the_backend_and_the_connection_is_released() {
    let backend = serving_backend().await;
    let mut tap = WireTap::start(backend.addr()).await;
    // The connection's closing line is at debug when nothing was lost.
    let gateway = Gateway::builder()
        .config(gated_on_signal(&tap.url()))
        .env("RUST_LOG", "info,warmgate_gate::connection=debug")
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client.send(Message::text("hello")).await;
    expect_text(&mut client, "hello").await;
    assert_eq!(
        value(&scrape(&gateway).await, "warmgate_upstream_connections"),
        1.0
    );

    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(4000),
            reason: "done".into(),
        })))
        .await;
    assert_eq!(client.close_frame().await.0, 4000);
    // The backend was sent 4000, and answered it: it got the close.
    assert_eq!(tap.next_close(Direction::ToBackend).await.0, 4000);
    assert_eq!(tap.next_close(Direction::FromBackend).await.0, 4000);

    // The connection's last line comes once its backend side is closed.
    let line = until_logged(&gateway, "connection's application ended").await;
    assert!(
        line.contains("relayed 1 messages to the backend and 1 to the client"),
        "{line}"
    );
    assert!(!line.contains("never reached"), "{line}");
    assert_eq!(
        value(&scrape(&gateway).await, "warmgate_upstream_connections"),
        0.0
    );
}

// === drain ===

#[tokio::test]
async fn sigterm_tells_proxied_clients_draining_then_closes_both_sides_with_1001() {
    let backend = serving_backend().await;
    let mut tap = WireTap::start(backend.addr()).await;
    let drain_grace = Duration::from_secs(1);
    let mut gateway =
        ready_gateway(gated_on_signal(&tap.url()).gate(|gate| gate.set("drain_grace", "1s"))).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client.send(Message::text("before the drain")).await;
    expect_text(&mut client, "before the drain").await;

    let signalled = Instant::now();
    gateway.terminate();
    let draining = client.next_json().await;
    assert_eq!(draining["type"], "draining", "{draining}");
    assert!(draining["reconnect_after_ms"].as_u64().is_some());
    // Still relayed during the grace.
    client.send(Message::text("during the grace")).await;
    expect_text(&mut client, "during the grace").await;

    assert_eq!(client.close_frame().await.0, 1001);
    assert!(
        signalled.elapsed() >= drain_grace,
        "closed {:?} after SIGTERM",
        signalled.elapsed()
    );
    // The backend hears the close without waiting for the client's half
    // of the closing handshake (a slow client must not cost the backend its
    // close frame before the process exits).
    assert_eq!(tap.next_close(Direction::ToBackend).await.0, 1001);
    assert_eq!(client.next_message().await, None);
    assert!(gateway.exit_status().await.success());
}

/// A backend that completes the upgrade, then never reads again: it
/// answers no close frame, as a wedged or overloaded backend would not.
async fn deaf_backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let socket = tokio_tungstenite::accept_async(stream).await.unwrap();
            kept.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn at_the_drain_a_backend_that_never_answers_the_close_does_not_hold_its_connection_open() {
    let (backend, _backend_task) = deaf_backend().await;
    let mut gateway = ready_gateway(
        gated_on_signal(&format!("ws://{backend}")).gate(|gate| gate.set("drain_grace", "1s")),
    )
    .await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");

    gateway.terminate();
    assert_eq!(client.next_json().await["type"], "draining");
    assert_eq!(client.close_frame().await.0, 1001);
    assert!(gateway.exit_status().await.success());
    // The connection ended on its own within the close margin: the
    // backend's unanswered close is waited for at most the drain's 0.5 s,
    // and not again when the connection ends (2 s), which would leave it
    // open when the process gives up on it.
    let log = gateway.log();
    assert!(
        !log.contains("connections still open"),
        "the proxied connection outlived the drain:\n{log}"
    );
}

// === the handshake ===

#[tokio::test]
async fn the_backend_sees_the_clients_headers_path_and_query_but_not_warmgate_v1() {
    let backend = serving_backend().await;
    let gateway = ready_gateway(gated_on_signal(&backend.ws_url(""))).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut client = gateway
        .ws_with_headers(
            "/ws?user=ada&room=7",
            &["warmgate.v1"],
            &[
                ("authorization", "Bearer not-checked-without-auth"),
                ("cookie", "session=abc"),
                ("origin", "https://chat.example"),
                ("x-warmgate-sub", "mallory"),
                ("x-forwarded-for", "203.0.113.7"),
                ("traceparent", traceparent),
            ],
        )
        .await;
    assert_eq!(client.subprotocol.as_deref(), Some("warmgate.v1"));
    assert_eq!(client.next_json().await["type"], "ready");
    client.send_json(json!({"op": "headers"})).await;
    let seen = client.next_json().await;
    let headers = &seen["headers"];

    assert_eq!(seen["path"], "/ws", "{seen:#}");
    assert_eq!(seen["query"], "user=ada&room=7", "{seen:#}");
    assert_eq!(seen["subprotocol"], Value::Null, "{seen:#}");
    assert_eq!(headers.get("sec-websocket-protocol"), None, "{seen:#}");
    assert_eq!(headers["authorization"], "Bearer not-checked-without-auth");
    assert_eq!(headers["cookie"], "session=abc");
    assert_eq!(headers["origin"], "https://chat.example");
    assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], gateway.public.to_string());
    assert_eq!(headers.get("x-warmgate-sub"), None, "{seen:#}");
    // The client's trace goes on: its trace id, whoever the parent span.
    let forwarded = headers["traceparent"].as_str().unwrap();
    assert_eq!(forwarded.split('-').nth(1), traceparent.split('-').nth(1));
    assert_eq!(headers["host"], backend.addr().to_string(), "{seen:#}");
}

#[tokio::test]
async fn an_application_subprotocol_is_selected_for_the_client_and_offered_upstream() {
    let backend = serving_backend().await;
    let gateway = ready_gateway(
        gated_on_signal(&backend.ws_url("")).table("upstream", |upstream| {
            upstream.set("subprotocols", [SUBPROTOCOL])
        }),
    )
    .await;
    let mut client = gateway.ws_with("/ws", &["warmgate.v1", SUBPROTOCOL]).await;
    assert_eq!(client.subprotocol.as_deref(), Some(SUBPROTOCOL));
    // It offered warmgate.v1 too, so it still gets warmgate's frames.
    assert_eq!(client.next_json().await["type"], "ready");
    client.send_json(json!({"op": "headers"})).await;
    let seen = client.next_json().await;
    assert_eq!(seen["subprotocol"], SUBPROTOCOL, "{seen:#}");
    assert_eq!(
        seen["headers"]["sec-websocket-protocol"], SUBPROTOCOL,
        "{seen:#}"
    );
}

#[tokio::test]
async fn a_bearer_entry_beside_the_backends_subprotocol_is_accepted_and_never_goes_upstream() {
    let backend = serving_backend().await;
    let gateway = ready_gateway(
        gated_on_signal(&backend.ws_url("")).table("upstream", |upstream| {
            upstream.set("subprotocols", [SUBPROTOCOL])
        }),
    )
    .await;
    // A browser offers its token as a subprotocol beside the application's
    // own: the server selects the application's, so the browser accepts.
    let mut client = gateway
        .ws_with("/ws", &[SUBPROTOCOL, "bearer.not-a-checked-token"])
        .await;
    assert_eq!(client.subprotocol.as_deref(), Some(SUBPROTOCOL));
    client.send_json(json!({"op": "headers"})).await;
    let seen = client.next_json().await;
    assert_eq!(
        seen["headers"]["sec-websocket-protocol"], SUBPROTOCOL,
        "{seen:#}"
    );
}

#[tokio::test]
async fn a_prefix_route_relays_every_path_under_it_and_an_unrouted_upgrade_gets_404() {
    let backend = serving_backend().await;
    let config = gated_on_signal(&backend.ws_url(""))
        .table("upstream", |upstream| upstream.set("http", true))
        .route("/ws/*", "upstream");
    let gateway = Gateway::builder().config(config).spawn().await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;

    let mut client = gateway.ws("/ws/rooms/7?x=1").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client.send_json(json!({"op": "headers"})).await;
    let seen = client.next_json().await;
    assert_eq!(seen["path"], "/ws/rooms/7", "{seen:#}");
    assert_eq!(seen["query"], "x=1", "{seen:#}");

    // No route serves `/chat`: the HTTP proxy would strip the upgrade, so
    // the gate answers 404 itself and the backend never sees it.
    match gateway.try_ws("/chat", &[], &[]).await {
        Err((status, _)) => assert_eq!(status, 404),
        Ok(_) => panic!("an unrouted upgrade was accepted"),
    }
    assert!(!backend.log().contains("/chat"), "{}", backend.log());
}

// === plain HTTP ===

#[tokio::test]
async fn an_http_request_made_while_the_backend_starts_waits_and_is_answered() {
    let backend = Backend::start(STARTUP_DELAY).await;
    let gateway = Gateway::builder()
        .config(
            gated_on_backend(&backend)
                .gate(|gate| gate.set("hold_timeout", "30s"))
                .table("upstream", |upstream| upstream.set("http", true)),
        )
        .spawn()
        .await;
    assert_eq!(gateway.get("/readyz").await.status, 503, "already ready");

    let hello = gateway.get("/api/hello").await;
    assert_eq!(hello.status, 200, "{}", hello.text);
    assert_eq!(hello.json, json!({"hello": "world"}));
    let scrape = scrape(&gateway).await;
    assert_eq!(
        value(
            &scrape,
            "warmgate_upstream_http_requests_total{outcome=\"proxied\"}"
        ),
        1.0
    );
    // It waited: more than the smallest bucket of the wait histogram.
    assert_eq!(
        value(
            &scrape,
            "warmgate_upstream_http_wait_seconds_bucket{le=\"0.0001\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn server_sent_events_are_relayed_as_they_are_produced() {
    let backend = serving_backend().await;
    let gateway = ready_gateway(
        gated_on_signal(&backend.ws_url(""))
            .table("upstream", |upstream| upstream.set("http", true)),
    )
    .await;
    let (n_events, interval) = (4, Duration::from_millis(250));
    let requested = Instant::now();
    let response = within(
        "the proxied event stream",
        http_client()
            .get(gateway.public_url(&sse_path(n_events, interval)))
            .send(),
    )
    .await
    .unwrap();
    assert_sse_unbuffered(response, requested, n_events, interval, "the proxy").await;
}

#[tokio::test]
async fn an_http_request_not_ready_within_hold_timeout_gets_503_with_retry_after() {
    // Nothing listens on the backend's port: the request never gets there.
    let url = format!("ws://127.0.0.1:{}", free_port());
    let hold_timeout = Duration::from_millis(300);
    let gateway = Gateway::builder()
        .config(
            gated_on_signal(&url)
                .gate(|gate| gate.set("hold_timeout", "300ms").set("retry_after", "3s"))
                .table("upstream", |upstream| upstream.set("http", true)),
        )
        .spawn()
        .await;
    let requested = Instant::now();
    let response = within(
        "the 503",
        http_client().get(gateway.public_url("/api/hello")).send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        requested.elapsed() >= hold_timeout,
        "answered after {:?}, before the hold_timeout",
        requested.elapsed()
    );
    assert_eq!(response.headers()["retry-after"], "3");
    let scrape = scrape(&gateway).await;
    assert_eq!(
        value(
            &scrape,
            "warmgate_upstream_http_requests_total{outcome=\"not_ready\"}"
        ),
        1.0
    );
}

// === metrics ===

#[tokio::test]
async fn a_proxied_session_is_counted_in_metrics() {
    let backend = serving_backend().await;
    let gateway = ready_gateway(gated_on_signal(&backend.ws_url(""))).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "ready");
    client.send(Message::text("count me")).await;
    expect_text(&mut client, "count me").await;

    let scrape = scrape(&gateway).await;
    for direction in ["upstream", "downstream"] {
        let messages = format!("warmgate_upstream_messages_total{{direction=\"{direction}\"}}");
        assert_eq!(value(&scrape, &messages), 1.0, "{messages}");
        let bytes = format!("warmgate_upstream_bytes_total{{direction=\"{direction}\"}}");
        assert_eq!(value(&scrape, &bytes), 8.0, "{bytes}");
    }
    assert_eq!(
        value(
            &scrape,
            "warmgate_upstream_dial_duration_seconds_count{outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(value(&scrape, "warmgate_upstream_connections"), 1.0);
}
