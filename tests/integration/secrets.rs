//! Secrets stay secret: a plan with a password and a token in the query of
//! every URL kind (PostgreSQL, Redis, HTTP, the JWKS, the OTLP endpoint),
//! an admin token and OTLP headers, run at `RUST_LOG=trace` with spans
//! exported, shows none of them in any log line, exported span, metric,
//! snapshot, event or error. Some checks pass and some fail, so both paths
//! are seen.
//!
//! The OTLP endpoint gets a run of its own per transport and outcome: a user,
//! a password and a query token in the endpoint, over HTTP and over gRPC,
//! with exports that succeed, that are answered 404, that are answered 401
//! by a collector quoting the token back (which the exporter logs), and that
//! are refused, each at `RUST_LOG=trace`, where the exporter and the HTTP and
//! gRPC clients under it log the most.

use serde_json::Value;
use warmgate_devservers::SigningKey;
use warmgate_tests::jwks::{AUDIENCE, ISSUER, JwksServer};
use warmgate_tests::otlp::OtlpReceiver;
use warmgate_tests::{
    Check, Gateway, Plan, free_port, http_client, new_postgres, new_redis, program, scratch_dir,
    within,
};

const PG_QUERY: &str = "s3cr3t-pg-QUERY";
const PG_WRONG_PASSWORD: &str = "s3cr3t-pg-PASSWORD";
const REDIS_PASSWORD: &str = "s3cr3t-redis-PASSWORD";
const REDIS_WRONG_PASSWORD: &str = "s3cr3t-redis-WRONG";
const REDIS_QUERY: &str = "s3cr3t-redis-QUERY";
const HTTP_PASSWORD: &str = "s3cr3t-http-PASSWORD";
const HTTP_QUERY: &str = "s3cr3t-http-QUERY";
const JWKS_PASSWORD: &str = "s3cr3t-jwks-PASSWORD";
const JWKS_QUERY: &str = "s3cr3t-jwks-QUERY";
const OTLP_PASSWORD: &str = "s3cr3t-otlp-PASSWORD";
const OTLP_HEADER: &str = "s3cr3t-otlp-HEADER";
const OTLP_QUERY: &str = "s3cr3t-otlp-QUERY";
const ADMIN_TOKEN: &str = "s3cr3t-admin-TOKEN-7d41";
const HMAC_SECRET: &str = "s3cr3t-hmac-SECRET-0f9e8d7c6b5a49382716";

/// Fails the test naming every secret found in `output`, and where.
fn assert_no_secret(secrets: &[&str], what: &str, output: &str) {
    if let Some(leak) = leak(secrets, what, output) {
        panic!("{leak}");
    }
}

/// Names every secret found in `output`, and the lines that show them.
fn leak(secrets: &[&str], what: &str, output: &str) -> Option<String> {
    let leaked: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|secret| output.contains(secret))
        .collect();
    if leaked.is_empty() {
        return None;
    }
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| leaked.iter().any(|secret| line.contains(secret)))
        .take(20)
        .collect();
    Some(format!(
        "{leaked:?} leaked into {what}; the lines that show them:\n{}",
        lines.join("\n")
    ))
}

/// Runs `warmgate check-config` on `config` with `env`, and returns what it
/// printed on stdout and stderr.
async fn check_config_output(config: &Plan, env: &[(&str, &str)]) -> String {
    let dir = scratch_dir();
    let path = dir.path().join("warmgate.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let mut command = tokio::process::Command::new(program());
    command
        .arg("check-config")
        .arg(&path)
        .env("RUST_LOG", "trace")
        .envs(env.iter().copied());
    let output = within("check-config", command.output()).await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// GETs an admin path with the admin token, and returns the body.
async fn admin_text(gateway: &Gateway, path: &str) -> String {
    let response = within(
        "an admin response",
        http_client()
            .get(gateway.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send(),
    )
    .await
    .unwrap();
    assert!(response.status().is_success(), "{path}");
    response.text().await.unwrap()
}

fn check<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {snapshot}"))
}

#[tokio::test]
async fn no_url_password_query_token_or_header_reaches_any_output() {
    let postgres = new_postgres(true).await;
    let redis = new_redis(Some(REDIS_PASSWORD)).await;
    let key = SigningKey::generate("k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let receiver = OtlpReceiver::start().await;
    let closed_port = free_port();
    // The JWKS server answers 200 at its JWKS path and 404 elsewhere, which
    // makes it the HTTP checks' server too.
    let jwks_addr = jwks
        .url()
        .strip_prefix("http://")
        .unwrap()
        .split_once('/')
        .unwrap()
        .0
        .to_owned();
    let database_url = format!("{}?application_name={PG_QUERY}", postgres.url());
    let app_password = postgres
        .url()
        .split_once("app:")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0
        .to_owned();
    let pg_port = postgres.port();
    let redis_port = redis.port();
    let config = Plan::new()
        .set("admin_token_env", "TEST_ADMIN_TOKEN")
        .gate(|gate| gate.set("retry_cap", "100ms"))
        .table("auth", |auth| {
            auth.set("mode", "jwt")
                .set("algorithms", ["ES256"])
                .set(
                    "jwks_url",
                    format!("http://jwks:{JWKS_PASSWORD}@{jwks_addr}/.well-known/jwks.json?token={JWKS_QUERY}"),
                )
                .set("issuer", ISSUER)
                .set("audience", AUDIENCE)
        })
        .phase(
            "dependencies",
            [
                Check::new("database", "postgres").set("url_env", "TEST_DATABASE_URL"),
                Check::postgres(
                    "database_wrong_password",
                    &format!("postgres://app:{PG_WRONG_PASSWORD}@127.0.0.1:{pg_port}/app?application_name={PG_QUERY}"),
                )
                .optional(),
                Check::redis(
                    "cache",
                    &format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/?token={REDIS_QUERY}"),
                ),
                Check::redis(
                    "cache_wrong_password",
                    &format!("redis://:{REDIS_WRONG_PASSWORD}@127.0.0.1:{redis_port}/?token={REDIS_QUERY}"),
                )
                .optional(),
                Check::http(
                    "api",
                    &format!("http://probe:{HTTP_PASSWORD}@{jwks_addr}/.well-known/jwks.json?token={HTTP_QUERY}"),
                ),
                Check::http(
                    "api_missing",
                    &format!("http://probe:{HTTP_PASSWORD}@{jwks_addr}/nope?token={HTTP_QUERY}"),
                )
                .optional(),
                Check::http(
                    "api_down",
                    &format!("https://probe:{HTTP_PASSWORD}@127.0.0.1:{closed_port}/health?token={HTTP_QUERY}"),
                )
                .optional(),
            ],
        )
        .phase("auth", [Check::jwks("keys")]);
    let otlp_endpoint = format!(
        "{}/?token={OTLP_QUERY}",
        receiver
            .http_endpoint()
            .replace("http://", &format!("http://otlp:{OTLP_PASSWORD}@"))
    );
    let otlp_headers = format!("x-collector-token={OTLP_HEADER}");
    let env = [
        ("TEST_DATABASE_URL", database_url.as_str()),
        ("TEST_ADMIN_TOKEN", ADMIN_TOKEN),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", otlp_headers.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("RUST_LOG", "trace"),
    ];
    let secrets = [
        app_password.as_str(),
        PG_QUERY,
        PG_WRONG_PASSWORD,
        REDIS_PASSWORD,
        REDIS_WRONG_PASSWORD,
        REDIS_QUERY,
        HTTP_PASSWORD,
        HTTP_QUERY,
        JWKS_PASSWORD,
        JWKS_QUERY,
        OTLP_PASSWORD,
        OTLP_HEADER,
        OTLP_QUERY,
        ADMIN_TOKEN,
    ];

    let mut builder = Gateway::builder().config(config.clone());
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    let mut gateway = builder.spawn().await;
    let mut seen = gateway
        .events()
        .await
        .until(|snapshot| {
            snapshot["state"] == "degraded"
                && ["database_wrong_password", "cache_wrong_password"]
                    .iter()
                    .all(|name| check(snapshot, name)["status"] == "failing")
                && ["api_missing", "api_down"]
                    .iter()
                    .all(|name| check(snapshot, name)["status"] == "failing")
        })
        .await;
    let verbose: Value = serde_json::from_str(&admin_text(&gateway, "/readiness").await).unwrap();
    // The failures are the ones meant, so their errors were produced.
    assert!(
        check(&verbose, "database_wrong_password")["last_error"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{verbose}"
    );
    assert!(
        check(&verbose, "cache_wrong_password")["last_error"]
            .as_str()
            .unwrap()
            .starts_with("authentication failed for redis://:***@"),
        "{verbose}"
    );
    assert_eq!(
        check(&verbose, "api_missing")["last_error"],
        format!("HTTP 404 from http://probe:***@{jwks_addr}/nope?…, expected 2xx")
    );
    receiver
        .until("a check attempt exported", |span| {
            span.name == "check_attempt"
                && span.attributes.get("check.name").map(String::as_str) == Some("api_down")
        })
        .await;

    let mut outputs = vec![
        ("public /readiness", gateway.get("/readiness").await.text),
        ("/readyz", gateway.get("/readyz").await.text),
        ("/startupz", gateway.get("/startupz").await.text),
        ("admin /readiness", verbose.to_string()),
        ("admin /metrics", admin_text(&gateway, "/metrics").await),
    ];
    // A new stream starts with the current snapshot.
    seen.extend(gateway.events().await.until(|_| true).await);
    let events_text: Vec<String> = seen
        .iter()
        .map(|event| format!("{} {} {}", event.event, event.id, event.data))
        .collect();
    outputs.push(("/readiness/events", events_text.join("\n")));
    outputs.push((
        "check-config",
        check_config_output(&config, &env[..2]).await,
    ));

    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    outputs.push(("the log (stderr)", gateway.log()));
    outputs.push(("the exported spans", format!("{:#?}", receiver.spans())));
    for (what, output) in &outputs {
        assert_no_secret(&secrets, what, output);
    }
}

#[tokio::test]
async fn the_hmac_secret_reaches_no_output() {
    let receiver = OtlpReceiver::start().await;
    let config = Plan::app_signal()
        .set("admin_token_env", "TEST_ADMIN_TOKEN")
        .table("auth", |auth| {
            auth.set("mode", "jwt")
                .set("secret_env", "TEST_AUTH_SECRET")
        });
    let env = [
        ("TEST_AUTH_SECRET", HMAC_SECRET),
        ("TEST_ADMIN_TOKEN", ADMIN_TOKEN),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("RUST_LOG", "trace"),
    ];
    let mut builder = Gateway::builder().config(config.clone());
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    let mut gateway = builder.spawn().await;
    let set = http_client()
        .post(gateway.admin_url("/signals/app"))
        .bearer_auth(ADMIN_TOKEN)
        .body("{\"ready\": true}")
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.status());
    gateway.until_ready().await;
    let outputs = [
        ("public /readiness", gateway.get("/readiness").await.text),
        ("admin /readiness", admin_text(&gateway, "/readiness").await),
        ("admin /metrics", admin_text(&gateway, "/metrics").await),
        (
            "check-config",
            check_config_output(&config, &env[..2]).await,
        ),
    ];
    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    for (what, output) in outputs.iter().chain(&[
        ("the log (stderr)", gateway.log()),
        ("the exported spans", format!("{:#?}", receiver.spans())),
    ]) {
        assert_no_secret(&[HMAC_SECRET, ADMIN_TOKEN], what, output);
    }
}

/// How one run of
/// [`otlp_endpoint_secrets_reach_no_log_line_whether_exports_succeed_or_fail`]
/// exports.
struct OtlpRun {
    what: &'static str,
    /// The variable that names the endpoint, or `None` for the file's
    /// `otlp_endpoint`.
    variable: Option<&'static str>,
    /// The endpoint, with the user, password and query token in it.
    endpoint: String,
    protocol: &'static str,
    /// Whether the receiver takes the spans.
    succeeds: bool,
}

/// `base` (`http://host:port`) with the OTLP user and password, `path` and
/// the query token.
fn otlp_url(base: &str, path: &str) -> String {
    format!(
        "{}{path}?token={OTLP_QUERY}",
        base.replace("http://", &format!("http://otlp:{OTLP_PASSWORD}@"))
    )
}

#[tokio::test]
async fn otlp_endpoint_secrets_reach_no_log_line_whether_exports_succeed_or_fail() {
    let receiver = OtlpReceiver::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let runs = [
        OtlpRun {
            what: "HTTP export taken by the receiver",
            variable: Some("OTEL_EXPORTER_OTLP_ENDPOINT"),
            endpoint: otlp_url(&receiver.http_endpoint(), "/"),
            protocol: "http/protobuf",
            succeeds: true,
        },
        OtlpRun {
            what: "HTTP export answered 404",
            variable: Some("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            endpoint: otlp_url(&receiver.http_endpoint(), "/nowhere"),
            protocol: "http/protobuf",
            succeeds: false,
        },
        OtlpRun {
            what: "HTTP export answered 401 by a collector quoting the token",
            variable: Some("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            endpoint: otlp_url(&receiver.http_endpoint(), "/refuse"),
            protocol: "http/protobuf",
            succeeds: false,
        },
        OtlpRun {
            what: "HTTP export refused",
            variable: None,
            endpoint: otlp_url(&closed, "/"),
            protocol: "http/protobuf",
            succeeds: false,
        },
        OtlpRun {
            what: "gRPC export taken by the receiver",
            variable: Some("OTEL_EXPORTER_OTLP_ENDPOINT"),
            endpoint: otlp_url(&receiver.grpc_endpoint(), "/"),
            protocol: "grpc",
            succeeds: true,
        },
        OtlpRun {
            what: "gRPC export refused",
            variable: Some("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            endpoint: otlp_url(&closed, "/"),
            protocol: "grpc",
            succeeds: false,
        },
    ];
    let mut logs = Vec::new();
    for run in runs {
        let mut config = Plan::app_signal();
        if run.variable.is_none() {
            config = config.table("telemetry", |telemetry| {
                telemetry
                    .set("otlp_endpoint", &run.endpoint)
                    .set("otlp_protocol", run.protocol)
            });
        }
        let mut builder = Gateway::builder()
            .config(config)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", run.protocol)
            .env("OTEL_BSP_SCHEDULE_DELAY", "20")
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
            .env("RUST_LOG", "trace");
        if let Some(variable) = run.variable {
            builder = builder.env(variable, &run.endpoint);
        }
        let mut gateway = builder.spawn().await;
        gateway.set_signal("app", true).await;
        gateway.until_ready().await;
        if run.succeeds {
            receiver
                .until(run.what, |span| {
                    span.transport == run.protocol.split('/').next().unwrap()
                })
                .await;
        }
        gateway.terminate();
        assert!(gateway.exit_status().await.success(), "{}", run.what);
        let log = gateway.log();
        if !run.succeeds {
            // The exports were tried and failed, so the failure paths ran.
            assert!(
                log.contains("cannot flush the last spans") || log.contains("export failed"),
                "{}: no failed export in the log:\n{log}",
                run.what
            );
        }
        logs.push((run.what, log));
    }
    // Every run first, so that a failure names every run that leaks.
    let leaks: Vec<String> = logs
        .iter()
        .filter_map(|(what, log)| {
            leak(
                &[OTLP_PASSWORD, OTLP_QUERY],
                &format!("the log of the {what}"),
                log,
            )
        })
        .collect();
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
