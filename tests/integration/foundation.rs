//! The foundation end to end: config, probes endpoints, the event stream,
//! signals and drain, against the real program.

use serde_json::{Value, json};
use tokio::net::TcpListener;
use warmgate_tests::{Check, Gateway, Plan, free_port, scratch_dir};

fn plan_with_a_tcp_dependency(port: u16) -> Plan {
    Plan::new()
        .gate(|gate| gate.set("retry_cap", "20ms"))
        .phase(
            "dependencies",
            [Check::tcp("database", format!("127.0.0.1:{port}"))],
        )
        .phase("services", [Check::signal("agent_supervisor")])
}

#[tokio::test]
async fn a_closed_dependency_holds_the_gate_until_it_opens_and_the_signal_is_set() {
    let port = free_port();
    let mut gateway = Gateway::builder()
        .config(plan_with_a_tcp_dependency(port))
        .spawn()
        .await;

    let readyz = gateway.get("/readyz").await;
    assert_eq!(readyz.status, 503);
    assert_eq!(readyz.json["state"], "starting");
    assert_eq!(
        readyz.json["pending"],
        json!(["database", "agent_supervisor"])
    );
    let startupz = gateway.get("/startupz").await;
    assert_eq!(startupz.status, 503);
    assert_eq!(gateway.get("/livez").await.json, json!({"status": "alive"}));

    let mut events = gateway.events().await;
    let first = events.next().await.unwrap();
    assert_eq!(first.event, "readiness");
    assert_eq!(first.data["state"], "starting");
    assert_eq!(first.data["phase"], "dependencies");
    assert_eq!(first.id, first.data["seq"].to_string());

    // The dependency appears; the gate moves on to the services phase.
    let _database = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut seen = vec![first];
    seen.extend(events.until(|s| s["phase"] == "services").await);
    let services = &seen.last().unwrap().data;
    assert_eq!(services["pending"], json!(["agent_supervisor"]));
    assert_eq!(services["checks"][0]["status"], "passing");

    gateway.set_signal("agent_supervisor", true).await;
    seen.extend(events.until(|s| s["state"] == "ready").await);
    assert_eq!(gateway.get("/readyz").await.status, 200);
    assert_eq!(gateway.get("/startupz").await.status, 200);
    let readiness = gateway.get("/readiness").await.json;
    assert_eq!(readiness["state"], "ready");
    assert_eq!(readiness["phase"], Value::Null);

    // Every change arrived in order.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|e| e.data["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let phases: Vec<&Value> = seen.iter().map(|e| &e.data["phase"]).collect();
    let first_services = phases.iter().position(|p| *p == "services").unwrap();
    assert!(
        phases[..first_services]
            .iter()
            .all(|p| *p == "dependencies")
    );

    // SIGTERM: the stream says draining, ends, and the process exits 0.
    gateway.terminate();
    let draining = events.until(|s| s["state"] == "draining").await;
    assert_eq!(draining.last().unwrap().data["phase"], Value::Null);
    assert!(events.next().await.is_none());
    assert!(gateway.exit_status().await.success());
}

#[tokio::test]
async fn a_signal_set_through_the_admin_listener_is_visible_as_soon_as_it_answers() {
    let gateway = Gateway::builder().config(Plan::app_signal()).spawn().await;
    // No wait on an event anywhere below: each answer came after the
    // snapshot that shows it.
    gateway.set_signal("app", true).await;
    assert_eq!(gateway.get("/readiness").await.json["state"], "ready");
    assert_eq!(gateway.get("/readyz").await.status, 200);
    for round in 0..10 {
        let reason = format!("restarting, round {round}");
        let body = json!({"ready": false, "reason": reason}).to_string();
        assert_eq!(gateway.admin_post("/signals/app", &body).await.status, 204);
        let verbose = gateway.admin_get("/readiness").await.json;
        let app = verbose["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|check| check["name"] == "app")
            .unwrap()
            .clone();
        assert_eq!(app["last_error"], reason.as_str(), "{verbose}");
    }
}

#[tokio::test]
async fn the_embedded_default_plan_is_ready_without_any_outside_service() {
    let gateway = Gateway::builder().spawn().await;
    let mut events = gateway.events().await;
    events.until(|s| s["state"] == "ready").await;
    let readyz = gateway.get("/readyz").await;
    assert_eq!(readyz.status, 200);
    assert_eq!(readyz.json["state"], "ready");
}

#[tokio::test]
async fn the_admin_endpoint_drains_and_the_process_exits_cleanly() {
    let mut gateway = Gateway::builder().spawn().await;
    let mut events = gateway.events().await;
    events.until(|s| s["state"] == "ready").await;
    let verbose = gateway.admin_get("/readiness").await.json;
    assert_eq!(verbose["checks"][0]["attempts"], 1);
    let reply = gateway
        .admin_post("/signals/nope", r#"{"ready":true}"#)
        .await;
    assert_eq!(reply.status, 404);
    let reply = gateway
        .admin_post("/signals/http_listener", "not json")
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(gateway.admin_post("/drain", "").await.status, 202);
    events.until(|s| s["state"] == "draining").await;
    assert!(gateway.exit_status().await.success());
}

#[tokio::test]
async fn environment_overrides_take_the_place_of_the_config_listeners() {
    let port = free_port();
    let gateway = Gateway::builder()
        .config(plan_with_a_tcp_dependency(1))
        .env("WARMGATE_LISTEN", &format!("127.0.0.1:{port}"))
        .spawn()
        .await;
    assert_eq!(gateway.public.port(), port);
}

#[tokio::test]
async fn a_bad_config_names_the_file_the_key_and_what_was_expected_and_exits_non_zero() {
    let dir = scratch_dir();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[phase]]\nname = \"dependencies\"\n\n[[phase.check]]\nname = \"database\"\nkind = \"tcp\"\naddr = \"127.0.0.1:5432\"\ntimeout = \"5x\"\n",
    )
    .unwrap();
    let output = tokio::process::Command::new(warmgate_tests::program())
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("phase[0].check[0].timeout"), "{stderr}");
    assert!(stderr.contains("\"5x\""), "{stderr}");
    assert!(stderr.contains("expected a duration"), "{stderr}");
}

#[tokio::test]
async fn check_config_prints_the_plan_or_the_error() {
    let dir = scratch_dir();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, plan_with_a_tcp_dependency(5432).to_toml()).unwrap();
    let output = tokio::process::Command::new(warmgate_tests::program())
        .arg("check-config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("\"database\": tcp"), "{stdout}");
    assert!(stdout.contains("agent_supervisor"), "{stdout}");

    std::fs::write(&path, "listen = 8080\n").unwrap();
    let output = tokio::process::Command::new(warmgate_tests::program())
        .arg("check-config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("listen"), "{stderr}");
}

#[tokio::test]
async fn check_config_shows_the_listeners_the_server_would_bind() {
    let dir = scratch_dir();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:7001\"\n").unwrap();
    let listen = |args: &'static [&'static str], env: &'static [(&'static str, &'static str)]| {
        let path = path.clone();
        async move {
            let output = tokio::process::Command::new(warmgate_tests::program())
                .args(args)
                .arg("check-config")
                .arg(&path)
                .env_remove("PORT")
                .env_remove("WARMGATE_LISTEN")
                .envs(env.iter().copied())
                .output()
                .await
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            let stdout = String::from_utf8(output.stdout).unwrap();
            stdout
                .lines()
                .find_map(|line| line.strip_prefix("  listen = "))
                .unwrap_or_else(|| panic!("no listen line: {stdout}"))
                .to_owned()
        }
    };
    assert_eq!(listen(&[], &[]).await, "127.0.0.1:7001");
    // As the server would: a platform's PORT, then the variable, then the
    // flag, each over the one before.
    assert_eq!(listen(&[], &[("PORT", "9000")]).await, "0.0.0.0:9000");
    assert_eq!(
        listen(
            &[],
            &[("PORT", "9000"), ("WARMGATE_LISTEN", "127.0.0.1:7002")]
        )
        .await,
        "127.0.0.1:7002"
    );
    assert_eq!(
        listen(&["--listen", "127.0.0.1:7003"], &[("PORT", "9000")]).await,
        "127.0.0.1:7003"
    );
    // The file named after check-config wins over WARMGATE_CONFIG.
    let output = tokio::process::Command::new(warmgate_tests::program())
        .arg("check-config")
        .arg(&path)
        .env("WARMGATE_CONFIG", "/nonexistent/warmgate.toml")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn every_shipped_example_config_is_valid() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n_checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // The chat example reads its URLs from the environment.
            let output = tokio::process::Command::new(warmgate_tests::program())
                .arg("check-config")
                .arg(&path)
                .env(
                    "WARMGATE_DATABASE_URL",
                    "postgres://app:pw@127.0.0.1:5432/app",
                )
                .env("WARMGATE_REDIS_URL", "redis://127.0.0.1:6379/")
                .env("WARMGATE_AUTH_URL", "http://127.0.0.1:8080/livez")
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            n_checked += 1;
        }
    }
    assert!(n_checked >= 2);
}
