//! The operator's tools against the real program: the transition history
//! (`GET /readiness/history`, and the event stream's replay after
//! `Last-Event-ID`), and the command line (`warmgate status`, `signal`,
//! `drain`, `history`) run as the same program, with its table and exit
//! codes: ready, not ready, a token-protected admin listener and a refused
//! connection.

use std::process::Output;

use serde_json::Value;
use warmgate_tests::{Check, Gateway, Plan, free_port, program, scratch_dir, within};

/// A plan whose signal `app` flips on every set.
fn flipping_plan() -> Plan {
    Plan::new().phase("services", [flipping_app()])
}

/// The signal `app`, failing or passing on its first report.
fn flipping_app() -> Check {
    Check::signal("app")
        .set("failure_threshold", 1)
        .set("success_threshold", 1)
}

/// Runs the program with `args` (an operator's command) and `env`.
async fn warmgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(program());
    command
        .args(args)
        .env_remove("WARMGATE_CONFIG")
        .env_remove("WARMGATE_ADMIN_LISTEN")
        .envs(env.iter().copied());
    within("the command to finish", command.output())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

#[tokio::test]
async fn a_consumer_that_reconnects_gets_every_quick_flip_it_missed_in_order() {
    let gateway = Gateway::builder().config(flipping_plan()).spawn().await;
    gateway.set_signal("app", true).await;
    let mut events = gateway.events().await;
    let ready = events.until(|s| s["state"] == "ready").await;
    let last_id = ready.last().unwrap().id.clone();
    drop(events);

    // Six flips while the consumer is away, as fast as the admin listener
    // takes them.
    for i in 0..6 {
        gateway.set_signal("app", i % 2 == 1).await;
    }
    let mut events = gateway.events_after(&last_id).await;
    let mut replayed = Vec::new();
    let current = loop {
        let event = events.next().await.unwrap();
        match event.event.as_str() {
            "transition" => replayed.push(event),
            "readiness" => break event,
            other => panic!("unexpected event {other}: {event:?}"),
        }
    };
    let last: u64 = last_id.parse().unwrap();
    let seqs: Vec<u64> = replayed.iter().map(|e| e.id.parse().unwrap()).collect();
    assert_eq!(seqs, (last + 1..=last + 6).collect::<Vec<u64>>());
    let moves: Vec<(&str, &str)> = replayed
        .iter()
        .map(|e| {
            (
                e.data["from"].as_str().unwrap(),
                e.data["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("ready", "not_ready"),
            ("not_ready", "ready"),
            ("ready", "not_ready"),
            ("not_ready", "ready"),
            ("ready", "not_ready"),
            ("not_ready", "ready"),
        ]
    );
    assert_eq!(replayed[0].data["cause"]["check"], "app");
    assert_eq!(replayed[0].data["cause"]["result"], "signal_not_ready");
    assert_eq!(replayed[1].data["cause"]["result"], "signal_ready");
    // No free text on the public listener.
    assert!(replayed[0].data.get("reason").is_none());
    assert!(replayed[0].data["cause"].get("error").is_none());
    assert_eq!(current.data["state"], "ready");
    assert_eq!(current.id, (last + 6).to_string());

    // The admin listener has the same transitions, with their reasons.
    let history = gateway.admin_get("/readiness/history").await;
    assert_eq!(history.status, 200);
    assert_eq!(history.json["capacity"], 256);
    assert_eq!(history.json["dropped"], 0);
    let transitions = history.json["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 7, "{}", history.text);
    assert_eq!(transitions[0]["from"], "starting");
    assert_eq!(transitions[0]["to"], "ready");
    assert_eq!(transitions[1]["cause"]["error"], "set by a test");
    let unix: Vec<u64> = transitions
        .iter()
        .map(|t| t["unix_ms"].as_u64().unwrap())
        .collect();
    assert!(unix.windows(2).all(|w| w[0] <= w[1]), "{unix:?}");
}

#[tokio::test]
async fn status_signal_history_and_drain_drive_a_gate_from_the_command_line() {
    let mut gateway = Gateway::builder().config(flipping_plan()).spawn().await;
    let admin = gateway.admin.to_string();
    let at = ["--admin-listen", admin.as_str()];

    // Not ready yet: the table says why, and the exit code is 1.
    let status = warmgate(&["status", at[0], at[1]], &[]).await;
    assert_eq!(code(&status), 1, "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.starts_with("state:    starting since "), "{text}");
    assert!(text.contains("pending:  app\n"), "{text}");
    assert!(
        text.contains("CHECK  KIND    REQUIRED  STATUS   FOR"),
        "{text}"
    );
    assert!(
        text.contains("\napp    signal  yes       unknown"),
        "{text}"
    );
    assert!(text.contains("no result yet"), "{text}");

    // The address may come from the variable too.
    let set = warmgate(
        &["signal", "app", "--ready"],
        &[("WARMGATE_ADMIN_LISTEN", admin.as_str())],
    )
    .await;
    assert_eq!(code(&set), 0, "{}", stderr(&set));
    assert_eq!(stdout(&set), "signal `app` set to ready\n");
    let status = warmgate(&["status", at[0], at[1]], &[]).await;
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.starts_with("state:    ready since "), "{text}");
    assert!(
        text.contains("cause:    check `app` signal_ready\n"),
        "{text}"
    );
    assert!(text.contains("app    signal  yes       passing"), "{text}");

    let set = warmgate(
        &[
            "signal",
            "app",
            "--not-ready",
            "--reason",
            "maintenance",
            at[0],
            at[1],
        ],
        &[],
    )
    .await;
    assert_eq!(code(&set), 0, "{}", stderr(&set));
    let status = warmgate(&["status", at[0], at[1]], &[]).await;
    assert_eq!(code(&status), 1);
    assert!(
        stdout(&status).contains("maintenance"),
        "{}",
        stdout(&status)
    );

    // JSON for scripts: the verbose snapshot as the admin listener has it.
    let json = warmgate(&["status", "--json", at[0], at[1]], &[]).await;
    assert_eq!(code(&json), 1);
    let verbose: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(verbose["state"], "not_ready");
    assert_eq!(verbose["checks"][0]["last_error"], "maintenance");

    // The server's refusals are shown, with exit code 1.
    let unknown = warmgate(&["signal", "nope", "--ready", at[0], at[1]], &[]).await;
    assert_eq!(code(&unknown), 1);
    assert!(stderr(&unknown).contains("404"), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no check named `nope`"),
        "{}",
        stderr(&unknown)
    );
    let bad_ttl = warmgate(
        &["signal", "app", "--ready", "--ttl", "soon", at[0], at[1]],
        &[],
    )
    .await;
    assert_eq!(code(&bad_ttl), 1);
    assert!(stderr(&bad_ttl).contains("400"), "{}", stderr(&bad_ttl));

    // A usage error is 2.
    let usage = warmgate(&["signal", "app", at[0], at[1]], &[]).await;
    assert_eq!(code(&usage), 2);
    assert!(stderr(&usage).contains("--ready"), "{}", stderr(&usage));

    // The history, oldest first: starting → ready → not_ready.
    let history = warmgate(&["history", at[0], at[1]], &[]).await;
    assert_eq!(code(&history), 0, "{}", stderr(&history));
    let text = stdout(&history);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{text}");
    assert!(
        lines[0].contains("FROM      TO         LASTED  CAUSE"),
        "{text}"
    );
    assert!(lines[1].contains("  starting  ready      "), "{text}");
    assert!(lines[1].ends_with("check `app` signal_ready"), "{text}");
    assert!(lines[2].contains("  ready     not_ready  "), "{text}");
    assert!(
        lines[2].ends_with("check `app` signal_not_ready: maintenance"),
        "{text}"
    );
    assert!(
        text.ends_with("\n2 transition(s); the ring keeps the latest 256, 0 dropped\n"),
        "{text}"
    );
    let json = warmgate(&["history", "--json", at[0], at[1]], &[]).await;
    let document: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["transitions"][1]["to"], "not_ready");

    // Drain: the process exits cleanly.
    let drain = warmgate(&["drain", at[0], at[1]], &[]).await;
    assert_eq!(code(&drain), 0, "{}", stderr(&drain));
    assert!(gateway.exit_status().await.success());
}

#[tokio::test]
async fn a_token_protected_admin_listener_needs_the_token_the_config_names() {
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let config = flipping_plan().set("admin_token_env", "TEST_ADMIN_TOKEN");
    let gateway = Gateway::builder()
        .config(config.clone())
        .env("TEST_ADMIN_TOKEN", TOKEN)
        .spawn()
        .await;
    // The operator's copy of the same config, pointed at the listener.
    let dir = scratch_dir();
    let file = dir.path().join("warmgate.toml");
    std::fs::write(&file, config.to_toml()).unwrap();
    let file = file.to_str().unwrap();
    let admin = gateway.admin.to_string();
    let set = warmgate(
        &[
            "signal",
            "app",
            "--ready",
            "--config",
            file,
            "--admin-listen",
            admin.as_str(),
        ],
        &[("TEST_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(code(&set), 0, "{}", stderr(&set));
    gateway.until_ready().await;
    let args = ["status", "--config", file, "--admin-listen", admin.as_str()];

    let status = warmgate(&args, &[("TEST_ADMIN_TOKEN", TOKEN)]).await;
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    assert!(stdout(&status).starts_with("state:    ready"));

    let wrong = warmgate(
        &args,
        &[("TEST_ADMIN_TOKEN", "ffffffffffffffffffffffffffffffff")],
    )
    .await;
    assert_eq!(code(&wrong), 2);
    let message = stderr(&wrong);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("`TEST_ADMIN_TOKEN`"), "{message}");
    assert!(
        !message.contains("ffffffff"),
        "the token is never shown: {message}"
    );

    // Without the config, no token is sent: the message says where to get one.
    let without = warmgate(&["status", "--admin-listen", admin.as_str()], &[]).await;
    assert_eq!(code(&without), 2);
    let message = stderr(&without);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("--config"), "{message}");
}

#[tokio::test]
async fn an_operator_with_only_the_read_token_and_none_of_the_servers_secrets_can_read() {
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    const READ_TOKEN: &str = "fedcba9876543210fedcba9876543210";
    // The server's config: both tokens, and a check whose URL is a secret
    // the operator's shell does not have.
    let config = flipping_plan()
        .check(
            Check::new("cache", "redis")
                .optional()
                .set("url_env", "TEST_CACHE_URL"),
        )
        .set("admin_token_env", "TEST_ADMIN_TOKEN")
        .set("admin_read_token_env", "TEST_ADMIN_READ_TOKEN");
    let gateway = Gateway::builder()
        .config(config.clone())
        .env("TEST_ADMIN_TOKEN", TOKEN)
        .env("TEST_ADMIN_READ_TOKEN", READ_TOKEN)
        .env("TEST_CACHE_URL", "redis://127.0.0.1:1/")
        .spawn()
        .await;
    let dir = scratch_dir();
    let file = dir.path().join("warmgate.toml");
    std::fs::write(&file, config.to_toml()).unwrap();
    let file = file.to_str().unwrap();
    let admin = gateway.admin.to_string();
    let reader = [("TEST_ADMIN_READ_TOKEN", READ_TOKEN)];

    // Not ready (the signal is unset): read, with the read token alone.
    let status = warmgate(
        &["status", "--config", file, "--admin-listen", admin.as_str()],
        &reader,
    )
    .await;
    assert_eq!(code(&status), 1, "{}", stderr(&status));
    assert!(
        stdout(&status).starts_with("state:    starting"),
        "{}",
        stdout(&status)
    );
    let history = warmgate(
        &[
            "history",
            "--config",
            file,
            "--admin-listen",
            admin.as_str(),
        ],
        &reader,
    )
    .await;
    assert_eq!(code(&history), 0, "{}", stderr(&history));

    // Draining needs the control token: the refusal says which.
    let drain = warmgate(
        &["drain", "--config", file, "--admin-listen", admin.as_str()],
        &reader,
    )
    .await;
    assert_eq!(code(&drain), 2);
    let message = stderr(&drain);
    assert!(message.contains("403"), "{message}");
    assert!(message.contains("read token"), "{message}");

    // No token at all here: the 401 names the variables to set.
    let bare = warmgate(
        &["status", "--config", file, "--admin-listen", admin.as_str()],
        &[],
    )
    .await;
    assert_eq!(code(&bare), 2);
    let message = stderr(&bare);
    assert!(message.contains("`TEST_ADMIN_TOKEN`"), "{message}");
    assert!(message.contains("`TEST_ADMIN_READ_TOKEN`"), "{message}");

    // The public listener is not the admin one: an error, saying so.
    let public = gateway.public.to_string();
    let wrong = warmgate(&["drain", "--admin-listen", public.as_str()], &[]).await;
    assert_eq!(code(&wrong), 2);
    assert!(
        stderr(&wrong).contains("not the public one"),
        "{}",
        stderr(&wrong)
    );
}

#[tokio::test]
async fn a_refused_connection_names_the_address_and_how_to_point_elsewhere() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    for command in ["status", "history", "drain"] {
        let output = warmgate(&[command, "--admin-listen", address.as_str()], &[]).await;
        assert_eq!(code(&output), 2, "{command}");
        let message = stderr(&output);
        assert!(message.contains(&format!("http://{address}")), "{message}");
        assert!(message.contains("connection refused"), "{message}");
        assert!(message.contains("--admin-listen"), "{message}");
        assert!(stdout(&output).is_empty());
    }
    // 0.0.0.0, as a server bound to every interface has it, means loopback.
    let output = warmgate(
        &["status", "--admin-listen", &format!("0.0.0.0:{port}")],
        &[],
    )
    .await;
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains(&format!("http://127.0.0.1:{port}")));
}
