//! Client authentication end to end: a real JWKS server, real ES256 tokens,
//! the real program. Every refusal happens before the upgrade and says why.

use serde_json::{Value, json};
use warmgate_devservers::{SigningKey, TokenClaims};
use warmgate_tests::jwks::{AUDIENCE, ISSUER, JwksServer, token, with_jwt_auth};
use warmgate_tests::otlp::OtlpReceiver;
use warmgate_tests::{Gateway, Message, Plan, WsClient, within};

/// A gateway on `plan` (usually [`config`]'s), its signal `app` set, waited
/// until ready.
async fn ready_gateway(plan: Plan) -> Gateway {
    let gateway = Gateway::builder().config(plan).spawn().await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway
}

/// A plan whose only checks are the signal `app` and the JWKS of `jwks`,
/// fetched every second.
fn config(jwks: &JwksServer) -> Plan {
    with_jwt_auth(Plan::app_signal(), jwks.url(), "1s")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Opens `/ws` with `token` in the `Authorization` header.
async fn with_token(gateway: &Gateway, token: &str) -> WsClient {
    gateway
        .ws_with_headers(
            "/ws",
            &["warmgate.v1"],
            &[("authorization", &bearer(token))],
        )
        .await
}

/// The refusal of an upgrade with `token` in the `Authorization` header.
async fn refused_token(gateway: &Gateway, token: &str) -> (u16, Value) {
    refused(
        gateway,
        &["warmgate.v1"],
        &[("authorization", &bearer(token))],
    )
    .await
}

async fn refused(
    gateway: &Gateway,
    subprotocols: &[&str],
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    refused_at(gateway, "/ws", subprotocols, headers).await
}

async fn refused_at(
    gateway: &Gateway,
    path: &str,
    subprotocols: &[&str],
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    match gateway.try_ws(path, subprotocols, headers).await {
        Ok(_) => panic!("the upgrade was accepted; expected a refusal"),
        Err(refusal) => refusal,
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade_with_a_reason() {
    let key = SigningKey::generate("k1").unwrap();
    let impostor = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let gateway = ready_gateway(config(&jwks)).await;

    let (status, body) = refused(&gateway, &["warmgate.v1"], &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "missing_token");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );

    let cases: Vec<(String, &str)> = vec![
        ("Bearer not-a-jwt".to_owned(), "malformed_token"),
        ("Basic dXNlcjpwYXNz".to_owned(), "malformed_token"),
        (
            bearer(
                &key.sign(&TokenClaims {
                    exp: TokenClaims::expiring_in("ada", 0).exp - 120,
                    ..TokenClaims::expiring_in("ada", 0)
                        .issuer(ISSUER)
                        .audience(AUDIENCE)
                })
                .unwrap(),
            ),
            "token_expired",
        ),
        (bearer(&token(&impostor, "ada", 60)), "invalid_signature"),
        (
            bearer(
                &key.sign(
                    &TokenClaims::expiring_in("ada", 60)
                        .issuer(ISSUER)
                        .audience("billing"),
                )
                .unwrap(),
            ),
            "wrong_audience",
        ),
        (
            bearer(
                &key.sign(
                    &TokenClaims::expiring_in("ada", 60)
                        .issuer("https://evil.test/")
                        .audience(AUDIENCE),
                )
                .unwrap(),
            ),
            "wrong_issuer",
        ),
    ];
    for (authorization, expected) in &cases {
        let (status, body) = refused(
            &gateway,
            &["warmgate.v1"],
            &[("authorization", authorization)],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (401, *expected),
            "{body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }

    // A token in the URL is refused unless allowed: URLs end up in logs.
    let valid = token(&key, "ada", 60);
    let (status, body) = refused_at(
        &gateway,
        &format!("/ws?token={valid}"),
        &["warmgate.v1"],
        &[],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "query_token_refused")
    );

    // `bearer.<token>` needs `warmgate.v1` beside it.
    let (status, _) = refused(&gateway, &[&format!("bearer.{valid}")], &[]).await;
    assert_eq!(status, 400);

    // The refusals are counted by error, and none was held or admitted.
    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains("warmgate_auth_refusals_total{error=\"missing_token\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmgate_auth_refusals_total{error=\"malformed_token\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmgate_auth_refusals_total{error=\"token_expired\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmgate_auth_refusals_total{error=\"invalid_signature\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmgate_connections_total{outcome=\"admitted\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_signed_token_whose_registered_claim_has_the_wrong_json_type_is_refused_as_malformed() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let gateway = ready_gateway(config(&jwks)).await;
    let claims = TokenClaims::expiring_in("u1", 300)
        .issuer(ISSUER)
        .audience(AUDIENCE);
    let far = claims.exp + 100_000_000;
    // The published bypass: an `nbf` far ahead, written as a string, was
    // treated as absent and the client admitted.
    let mut as_string = serde_json::to_value(&claims).unwrap();
    as_string["nbf"] = json!(far.to_string());
    let (status, body) = refused_token(&gateway, &key.sign(&as_string).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "malformed_token"),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("`nbf` claim is a string"),
        "{body}"
    );
    // As a number, it is what it says.
    let mut as_number = serde_json::to_value(&claims).unwrap();
    as_number["nbf"] = json!(far);
    let (status, body) = refused_token(&gateway, &key.sign(&as_number).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "token_not_yet_valid")
    );
    // Its neighbours: each registered claim with a wrong type.
    for (name, wrong) in [
        ("exp", json!(null)),
        ("iat", json!("now")),
        ("iss", json!([ISSUER])),
        ("aud", json!({"aud": AUDIENCE})),
        ("sub", json!(42)),
        ("jti", json!(false)),
    ] {
        let mut claims = serde_json::to_value(&claims).unwrap();
        claims[name] = wrong;
        let (status, body) = refused_token(&gateway, &key.sign(&claims).unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (401, "malformed_token"),
            "{name}: {body}"
        );
    }
    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains("warmgate_auth_refusals_total{error=\"malformed_token\"} 7"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_valid_token_admits_by_header_or_subprotocol_and_its_sub_is_the_chat_sender() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let gateway = ready_gateway(config(&jwks)).await;

    let ada = token(&key, "ada", 60);
    let mut by_header = with_token(&gateway, &ada).await;
    assert_eq!(by_header.next_json().await["type"], "ready");

    // A browser's way: the token as a subprotocol entry, never echoed.
    let grace = token(&key, "grace", 60);
    let mut by_subprotocol = gateway
        .ws_with("/ws", &["warmgate.v1", &format!("bearer.{grace}")])
        .await;
    assert_eq!(by_subprotocol.subprotocol.as_deref(), Some("warmgate.v1"));
    assert_eq!(by_subprotocol.next_json().await["type"], "ready");

    by_subprotocol
        .send_json(json!({"type": "chat", "text": "hello", "client_msg_id": "g-1"}))
        .await;
    let chat = by_header.until_type("chat").await.pop().unwrap();
    assert_eq!(chat["from"], "grace");
    assert_eq!(chat["text"], "hello");
}

#[tokio::test]
async fn a_query_token_is_accepted_only_when_allowed() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let gateway =
        ready_gateway(config(&jwks).table("auth", |auth| auth.set("allow_query_token", true)))
            .await;
    let valid = token(&key, "ada", 60);
    let mut client = gateway.ws(&format!("/ws?token={valid}")).await;
    assert_eq!(client.next_json().await["type"], "ready");
}

#[tokio::test]
async fn the_gate_waits_for_the_jwks_and_refuses_with_503_until_it_loads() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    jwks.hang(true);
    let gateway = Gateway::builder().config(config(&jwks)).spawn().await;
    gateway.set_signal("app", true).await;
    let mut events = gateway.events().await;
    // The JWKS check fails its attempts (timeouts) and holds the gate back.
    events
        .until(|s| {
            s["pending"]
                .as_array()
                .is_some_and(|pending| pending.iter().any(|name| name == "auth"))
        })
        .await;
    let readiness = gateway.get("/readiness").await.json;
    assert_ne!(readiness["state"], "ready", "{readiness}");

    let valid = token(&key, "ada", 60);
    let (status, body) = refused_token(&gateway, &valid).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (503, "auth_unavailable")
    );

    jwks.hang(false);
    events.until(|s| s["state"] == "ready").await;
    let mut client = with_token(&gateway, &valid).await;
    assert_eq!(client.next_json().await["type"], "ready");
}

#[tokio::test]
async fn an_unknown_key_id_refreshes_the_jwks_at_most_once_a_minute() {
    let old_key = SigningKey::generate("2026-10").unwrap();
    let new_key = SigningKey::generate("2026-11").unwrap();
    let unknown_key = SigningKey::generate("never-published").unwrap();
    let jwks = JwksServer::start(&[&old_key]).await;
    // The periodic refresh is an hour away: every fetch below is on demand.
    let plan = with_jwt_auth(Plan::app_signal(), jwks.url(), "1h");
    let gateway = Gateway::builder().config(plan).spawn().await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    let fetched_at_start = jwks.requests();

    // The auth service rotates its key; the first token signed with the
    // new one makes warmgate fetch the JWKS again, and it is admitted.
    jwks.publish(&[&old_key, &new_key]);
    let rotated = token(&new_key, "ada", 60);
    let mut client = with_token(&gateway, &rotated).await;
    assert_eq!(client.next_json().await["type"], "ready");
    assert_eq!(jwks.requests(), fetched_at_start + 1);

    // Within the minute, another unknown kid is refused without a fetch.
    let forged = token(&unknown_key, "mallory", 60);
    let (status, body) = refused_token(&gateway, &forged).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "unknown_key")
    );
    assert_eq!(jwks.requests(), fetched_at_start + 1);
}

#[tokio::test]
async fn a_token_that_expires_during_the_session_ends_it_with_token_expired_and_1008() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let gateway = ready_gateway(config(&jwks)).await;
    // Valid for one more second (exp is in whole seconds, leeway is 0).
    let short = token(&key, "ada", 1);
    let mut client = with_token(&gateway, &short).await;
    assert_eq!(client.next_json().await["type"], "ready");
    let error = client.until_type("error").await.pop().unwrap();
    assert_eq!(error["code"], "token_expired");
    assert_eq!(client.close_frame().await.0, 1008);
}

#[tokio::test]
async fn a_token_that_expires_while_its_client_is_held_ends_the_hold_with_token_expired_and_1008() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let mut gateway = Gateway::builder()
        .config(config(&jwks).gate(|gate| gate.set("hold_timeout", "30s")))
        .spawn()
        .await;
    // The keys are loaded, and only the signal `app` (never set) holds the
    // gate back.
    let mut events = gateway.events().await;
    events.until(|s| s["pending"] == json!(["app"])).await;
    // Valid for one more second (exp is in whole seconds, leeway is 0).
    let short = token(&key, "ada", 1);
    let mut client = with_token(&gateway, &short).await;
    assert_eq!(client.next_json().await["type"], "warming");
    let frames = client.until_type("error").await;
    assert!(
        frames.iter().all(|frame| frame["type"] != "ready"),
        "never admitted: {frames:?}"
    );
    assert_eq!(frames.last().unwrap()["code"], "token_expired");
    assert_eq!(client.close_frame().await.0, 1008);

    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains(r#"warmgate_connections_total{outcome="token_expired_while_held"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warmgate_connections{route="/ws",stage="held"} 0"#),
        "{metrics}"
    );
    // The whole log is read once the process has exited.
    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    let log = gateway.log();
    assert!(
        log.contains("a held client's token expired before the gate admitted it"),
        "{log}"
    );
}

#[tokio::test]
async fn no_token_appears_in_logs_spans_metrics_snapshots_or_errors() {
    let key = SigningKey::generate("k1").unwrap();
    let impostor = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let receiver = OtlpReceiver::start().await;
    let gateway = Gateway::builder()
        .config(config(&jwks).table("auth", |auth| auth.set("allow_query_token", true)))
        .env("RUST_LOG", "trace")
        .env("WARMGATE_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;

    let header_token = token(&key, "ada", 60);
    let subprotocol_token = token(&key, "grace", 60);
    let query_token = token(&key, "linus", 60);
    let bad_token = token(&impostor, "mallory", 60);
    let expiring_token = token(&key, "barbara", 1);
    let mut errors = Vec::new();

    let mut by_header = with_token(&gateway, &header_token).await;
    let mut by_subprotocol = gateway
        .ws_with(
            "/ws",
            &["warmgate.v1", &format!("bearer.{subprotocol_token}")],
        )
        .await;
    let mut by_query = gateway.ws(&format!("/ws?token={query_token}")).await;
    let mut expiring = with_token(&gateway, &expiring_token).await;
    for client in [
        &mut by_header,
        &mut by_subprotocol,
        &mut by_query,
        &mut expiring,
    ] {
        errors.push(client.next_json().await.to_string());
    }
    let refusal = refused_token(&gateway, &bad_token).await;
    errors.push(refusal.1.to_string());
    let refusal = refused(
        &gateway,
        &["warmgate.v1"],
        &[("authorization", &format!("Bearer {bad_token}x"))],
    )
    .await;
    errors.push(refusal.1.to_string());
    for message in expiring.until_type("error").await {
        errors.push(message.to_string());
    }
    expiring.close_frame().await;
    for client in [by_header, by_subprotocol, by_query] {
        let mut client = client;
        client.send(Message::Close(None)).await;
        client.close_frame().await;
    }
    // The spans of the closed connections, with their subjects.
    for sub in ["ada", "grace", "linus", "barbara"] {
        receiver
            .until(&format!("the websocket span of {sub}"), |span| {
                span.name == "websocket" && span.attributes.get("sub").is_some_and(|s| s == sub)
            })
            .await;
    }

    let mut places = vec![
        ("log", gateway.log()),
        ("metrics", gateway.admin_get("/metrics").await.text),
        ("admin snapshot", gateway.admin_get("/readiness").await.text),
        ("public snapshot", gateway.get("/readiness").await.text),
        ("spans", format!("{:?}", receiver.spans())),
    ];
    places.extend(errors.into_iter().map(|error| ("frames and errors", error)));
    for secret in [
        &header_token,
        &subprotocol_token,
        &query_token,
        &bad_token,
        &expiring_token,
    ] {
        // The signature alone is enough to tell: it is in no other text.
        let signature = secret.rsplit('.').next().unwrap();
        for (place, text) in &places {
            assert!(!text.contains(signature), "a token reached the {place}");
        }
    }
    // The log did see the connections, so the check above looked at them.
    let log = gateway.log();
    assert!(log.contains("\"sub\":\"ada\""), "{log}");
    assert!(
        log.contains("token_expired") || log.contains("token expired"),
        "{log}"
    );
}

#[tokio::test]
async fn a_flood_of_bad_tokens_is_counted_in_full_but_logged_once_per_kind_and_window() {
    let key = SigningKey::generate("k1").unwrap();
    let impostor = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let mut gateway = Gateway::builder()
        .config(config(&jwks))
        .env("WARMGATE_LOG_FORMAT", "json")
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    let forged = token(&impostor, "mallory", 60);
    for _ in 0..20 {
        let (status, body) = refused_token(&gateway, &forged).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (401, "invalid_signature")
        );
    }
    for _ in 0..5 {
        let (status, _) = refused(&gateway, &["warmgate.v1"], &[]).await;
        assert_eq!(status, 401);
    }
    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains(r#"warmgate_auth_refusals_total{error="invalid_signature"} 20"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warmgate_auth_refusals_total{error="missing_token"} 5"#),
        "{metrics}"
    );

    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    let refusal_lines: Vec<Value> = gateway
        .log()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("WebSocket upgrade refused with 401"))
        })
        .collect();
    // The window is 10 s; the whole test takes far less.
    let kinds: Vec<&str> = refusal_lines
        .iter()
        .map(|line| line["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["invalid_signature", "missing_token"],
        "{refusal_lines:#?}"
    );
    assert!(refusal_lines.iter().all(|line| line["left_out"] == 0));
}

#[tokio::test]
async fn a_flood_past_the_rate_limit_gets_rate_limited_then_1008() {
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let gateway = ready_gateway(
        config(&jwks).gate(|gate| gate.set("messages_per_second", 1).set("message_burst", 3)),
    )
    .await;
    let valid = token(&key, "ada", 60);
    let mut client = with_token(&gateway, &valid).await;
    assert_eq!(client.next_json().await["type"], "ready");
    for n in 0..3 {
        client
            .send_json(json!({"type": "chat", "text": "hi", "client_msg_id": format!("m-{n}")}))
            .await;
        assert_eq!(
            client.until_type("ack").await.pop().unwrap()["client_msg_id"],
            format!("m-{n}")
        );
    }
    // Past the burst: refused, each named, until a whole burst more has
    // been refused in a row; then the connection closes.
    let mut refused_ids = Vec::new();
    let close_code = within("the flood to be closed", async {
        let mut n = 3;
        loop {
            client
                .send_json(
                    json!({"type": "chat", "text": "flood", "client_msg_id": format!("m-{n}")}),
                )
                .await;
            n += 1;
            match client.next_message().await {
                Some(Message::Text(text)) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] == "error" {
                        assert_eq!(frame["code"], "rate_limited", "{frame}");
                        refused_ids.push(frame["client_msg_id"].as_str().unwrap().to_owned());
                    }
                }
                Some(Message::Close(Some(frame))) => return u16::from(frame.code),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close_code, 1008);
    assert!(refused_ids.len() >= 3, "{refused_ids:?}");
    assert_eq!(refused_ids[0], "m-3");
    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains("warmgate_rate_limited_total{action=\"closed\"} 1"),
        "{metrics}"
    );
}
