//! The real dependency probes against real PostgreSQL and Redis servers,
//! started and stopped by the test, and against black-hole servers that
//! accept connections and never answer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use warmgate_tests::{Check, EventStream, Gateway, Plan, blocking, new_postgres, new_redis};

/// One phase `dependencies` of `checks`, then a phase with a required
/// signal `app`, so that the gate's readiness is in the test's hands.
pub(crate) fn plan(checks: impl IntoIterator<Item = Check>) -> Plan {
    Plan::new()
        .gate(|gate| gate.set("retry_cap", "100ms"))
        .phase("dependencies", checks)
        .phase("services", [Check::signal("app")])
}

fn check_status<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    let checks = snapshot["checks"].as_array().unwrap();
    &checks.iter().find(|c| c["name"] == name).unwrap()["status"]
}

async fn verbose_check(gateway: &Gateway, name: &str) -> Value {
    let verbose = gateway.admin_get("/readiness").await.json;
    let checks = verbose["checks"].as_array().unwrap().clone();
    checks.into_iter().find(|c| c["name"] == name).unwrap()
}

async fn ready_gateway(config: Plan, env: &[(&str, String)]) -> (Gateway, EventStream) {
    let mut builder = Gateway::builder().config(config);
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let gateway = builder.spawn().await;
    gateway.set_signal("app", true).await;
    let mut events = gateway.events().await;
    events
        .until(|s| s["state"] == "ready" || s["state"] == "degraded")
        .await;
    (gateway, events)
}

#[tokio::test]
async fn the_gate_waits_for_postgres_to_start_then_turns_ready() {
    let postgres = new_postgres(false).await;
    let config = plan([Check::new("database", "postgres").set("url_env", "TEST_DATABASE_URL")]);
    let gateway = Gateway::builder()
        .config(config)
        .env("TEST_DATABASE_URL", &postgres.url())
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    let mut events = gateway.events().await;
    let starting = events
        .until(|s| check_status(s, "database") == "failing")
        .await;
    let snapshot = &starting.last().unwrap().data;
    assert_eq!(snapshot["state"], "starting");
    assert_eq!(snapshot["phase"], "dependencies");
    assert_eq!(snapshot["pending"], json!(["database"]));
    let database = verbose_check(&gateway, "database").await;
    assert_eq!(
        database["last_error"],
        format!("connection refused to 127.0.0.1:{}", postgres.port())
    );

    let _postgres = blocking("PostgreSQL to start", move || {
        postgres.start().unwrap();
        postgres
    })
    .await;
    let started_at = Instant::now();
    events.until(|s| s["state"] == "ready").await;
    eprintln!(
        "ready {:?} after PostgreSQL accepted connections (retry cap 100ms)",
        started_at.elapsed()
    );
    assert_eq!(gateway.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn stopping_the_optional_redis_degrades_the_gate_and_restarting_it_recovers() {
    let redis = new_redis(None).await;
    let config = plan([Check::redis("redis", &redis.url())
        .optional()
        .set("interval", "50ms")
        .set("failure_threshold", 2)]);
    let (gateway, mut events) = ready_gateway(config, &[]).await;

    let mut redis = blocking("Redis to die", move || {
        let mut redis = redis;
        redis.kill().unwrap();
        redis
    })
    .await;
    let degraded = events.until(|s| s["state"] == "degraded").await;
    assert_eq!(degraded.last().unwrap().data["degraded"], json!(["redis"]));
    assert_eq!(
        gateway.get("/readyz").await.status,
        200,
        "degraded still admits"
    );
    let details = verbose_check(&gateway, "redis").await;
    assert!(details["consecutive_failures"].as_u64().unwrap() >= 2);
    // Past the broken connection, each attempt connects anew and is
    // refused: worded (and classed) as every other check's refusal.
    let last_error = details["last_error"].as_str().unwrap();
    assert!(
        last_error.starts_with("connection refused to 127.0.0.1:"),
        "{last_error}"
    );

    let _redis = blocking("Redis to restart", move || {
        redis.start().unwrap();
        redis
    })
    .await;
    events.until(|s| s["state"] == "ready").await;
}

#[tokio::test]
async fn stopping_the_required_postgres_makes_the_gate_not_ready_until_it_returns() {
    let postgres = new_postgres(true).await;
    let config = plan([Check::postgres("database", &postgres.url())
        .set("interval", "50ms")
        .set("failure_threshold", 2)]);
    let (gateway, mut events) = ready_gateway(config, &[]).await;

    let postgres = blocking("PostgreSQL to stop", move || {
        postgres.stop().unwrap();
        postgres
    })
    .await;
    let not_ready = events.until(|s| s["state"] == "not_ready").await;
    assert_eq!(
        not_ready.last().unwrap().data["pending"],
        json!(["database"])
    );
    assert_eq!(gateway.get("/readyz").await.status, 503);

    let _postgres = blocking("PostgreSQL to start", move || {
        postgres.start().unwrap();
        postgres
    })
    .await;
    events.until(|s| s["state"] == "ready").await;
    assert_eq!(gateway.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn wrong_passwords_fail_clearly_and_no_password_is_ever_shown() {
    let postgres = new_postgres(true).await;
    let redis = new_redis(Some("redis-right-pw-6f1")).await;
    let wrong_postgres = postgres.url_with_password("pg-wrong-pw-93a");
    let wrong_redis = redis
        .url()
        .replace("redis-right-pw-6f1", "redis-wrong-pw-27c");
    let config = plan([
        Check::new("database", "postgres").set("url_env", "TEST_DATABASE_URL"),
        Check::new("redis", "redis").set("url_env", "TEST_REDIS_URL"),
    ]);
    let gateway = Gateway::builder()
        .config(config)
        .env("TEST_DATABASE_URL", &wrong_postgres)
        .env("TEST_REDIS_URL", &wrong_redis)
        .spawn()
        .await;
    let mut events = gateway.events().await;
    events
        .until(|s| {
            check_status(s, "database") == "failing" && check_status(s, "redis") == "failing"
        })
        .await;
    let database = verbose_check(&gateway, "database").await;
    assert_eq!(
        database["last_error"],
        "password authentication failed for user \"app\" (SQLSTATE 28P01)"
    );
    let redis_check = verbose_check(&gateway, "redis").await;
    let error = redis_check["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("authentication failed for redis://:***@127.0.0.1:"),
        "{error}"
    );

    // Neither password, right or wrong, appears anywhere an operator looks.
    let everything = [
        gateway.get("/readiness").await.text,
        gateway.admin_get("/readiness").await.text,
        gateway.get("/readyz").await.text,
        gateway.log(),
    ]
    .join("\n");
    for secret in [
        "pg-wrong-pw-93a",
        "redis-wrong-pw-27c",
        "redis-right-pw-6f1",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

/// A server that accepts every connection and never says a word.
async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn hung_servers_time_out_every_kind_while_the_endpoints_stay_responsive() {
    let (addr, _server) = black_hole().await;
    let config = plan(
        [
            Check::postgres("database", &format!("postgres://app:pw@{addr}/app")),
            Check::redis("redis", &format!("redis://{addr}/")),
            Check::http("auth", &format!("http://{addr}/health")),
        ]
        .map(|check| check.set("timeout", "2s")),
    );
    let gateway = Gateway::builder().config(config).spawn().await;
    // While every attempt hangs for its 2 s, the endpoints answer at once:
    // they read the published snapshot and never wait on a check.
    for path in ["/readyz", "/livez", "/readiness", "/startupz"] {
        let asked = Instant::now();
        let reply = gateway.get(path).await;
        assert!(reply.status == 200 || reply.status == 503, "{path}");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            asked.elapsed()
        );
    }
    let mut events = gateway.events().await;
    events
        .until(|s| {
            ["database", "redis", "auth"]
                .iter()
                .all(|name| check_status(s, name) == "failing")
        })
        .await;
    for name in ["database", "redis", "auth"] {
        let check = verbose_check(&gateway, name).await;
        assert_eq!(check["last_error"], "timed out after 2s", "{name}");
        assert!(
            check["last_latency_ms"].as_f64().unwrap() >= 2000.0,
            "{name}"
        );
    }
}

#[tokio::test]
async fn http_checks_judge_the_status_and_the_body() {
    let gateway_for_auth = Gateway::builder().spawn().await;
    let livez = gateway_for_auth.public_url("/livez");
    let missing = gateway_for_auth.public_url("/nope");
    let config = plan([
        Check::http("alive", &livez).set("expect_body", "alive"),
        Check::http("wrong_body", &livez)
            .set("expect_body", "keys")
            .optional(),
        Check::http("missing", &format!("{missing}?token=http-token-55e")).optional(),
    ]);
    let (gateway, _events) = ready_gateway(config, &[]).await;
    let mut events = gateway.events().await;
    events
        .until(|s| s["degraded"] == json!(["wrong_body", "missing"]))
        .await;
    let wrong_body = verbose_check(&gateway, "wrong_body").await;
    assert_eq!(
        wrong_body["last_error"],
        format!("HTTP 200 from {livez} has no \"keys\" in the first 64 KiB of its body")
    );
    let missing_check = verbose_check(&gateway, "missing").await;
    assert_eq!(
        missing_check["last_error"],
        format!("HTTP 404 from {missing}?…, expected 2xx")
    );
    assert!(!gateway.log().contains("http-token-55e"));
}
