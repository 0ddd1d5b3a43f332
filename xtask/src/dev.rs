//! `cargo xtask dev`: PostgreSQL and Redis (through `deps up`), a stand-in
//! auth service, then the gateway running `examples/chat.toml` wired to
//! them.
//!
//! The auth service is `warmgate-jwks-server` publishing a key made here
//! (kept in `target/dev`); a token signed with it, valid for a day, is
//! printed for trying the chat page or a client. The plan's two service
//! signals are set through the admin listener once the gateway serves,
//! standing in for the application that would set them.
//! `websocket_integration` the gateway sets itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::auth_service::AuthService;
use crate::command::workspace_root;
use crate::deps::deps_up;
use crate::server::{http_request, target_dir};

const SERVICE_SIGNALS: [&str; 2] = ["agent_supervisor", "websocket_bridge"];

/// The key id, issuer and audience of the dev tokens; the last two are the
/// ones `examples/chat.toml` accepts.
const DEV_KID: &str = "dev";
const DEV_ISSUER: &str = "https://auth.example.com/";
const DEV_AUDIENCE: &str = "chat";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut admin_listen: SocketAddr = "127.0.0.1:9090".parse()?;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("`{arg}` needs a value such as 127.0.0.1:8080"))?;
        let addr = value.parse().with_context(|| {
            format!("`{arg} {value}`: expected an address such as 127.0.0.1:8080")
        })?;
        match arg.as_str() {
            "--listen" => listen = addr,
            "--admin-listen" => admin_listen = addr,
            other => {
                bail!("unknown option `{other}`; expected --listen ADDR or --admin-listen ADDR")
            }
        }
    }

    let deps = deps_up()?;
    let dev_dir = target_dir().join("dev");
    std::fs::create_dir_all(&dev_dir)
        .with_context(|| format!("cannot create {}", dev_dir.display()))?;
    let mut jwks_command = Command::new("cargo");
    jwks_command
        .args([
            "run",
            "--quiet",
            "-p",
            "warmgate-bench-servers",
            "--bin",
            "warmgate-jwks-server",
            "--",
        ])
        .current_dir(workspace_root());
    let auth_service = AuthService::start(jwks_command, &dev_dir, DEV_KID)?;
    let auth_url = auth_service.jwks_url();
    let token = auth_service.token("dev-user", DEV_ISSUER, DEV_AUDIENCE, 24 * 3600)?;
    println!("dev: starting the gateway with examples/chat.toml (auth service {auth_url})");
    let mut gateway = Command::new("cargo")
        .args([
            "run",
            "--quiet",
            "-p",
            "warmgate",
            "--",
            "--config",
            "examples/chat.toml",
        ])
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--admin-listen")
        .arg(admin_listen.to_string())
        .env("WARMGATE_DATABASE_URL", &deps.database_url)
        .env("WARMGATE_REDIS_URL", &deps.redis_url)
        .env("WARMGATE_AUTH_URL", &auth_url)
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start `cargo run -p warmgate`")?;
    let stdout = gateway.stdout.take().context("the gateway has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line.starts_with("warmgate: serving") => println!("{line}"),
        Some(Ok(line)) => bail!("the gateway said {line:?} instead of where it serves"),
        _ => {
            let status = gateway.wait()?;
            bail!("the gateway exited ({status}) before serving; its log above says why");
        }
    }
    for signal in SERVICE_SIGNALS {
        post_json(
            admin_listen,
            &format!("/signals/{signal}"),
            r#"{"ready":true,"reason":"set by cargo xtask dev"}"#,
        )
        .with_context(|| format!("cannot set the signal `{signal}`"))?;
    }
    println!(
        "dev: set {}; watch readiness with `curl http://{listen}/readiness/events`",
        SERVICE_SIGNALS.join(" and ")
    );
    println!(
        "dev: a token for `dev-user`, valid for a day:\n  {token}\n\
         dev: for the chat page at http://{listen}/, run in the browser console\n  \
         sessionStorage.setItem('warmgate.token', '{token}')\n\
         and reload; other clients send `Authorization: Bearer <token>`"
    );
    println!("dev: Ctrl-C stops the gateway; `cargo xtask deps down` stops PostgreSQL and Redis");
    // Relay anything else the gateway prints until it exits.
    for line in lines.map_while(Result::ok) {
        println!("{line}");
    }
    let status = gateway.wait()?;
    if !status.success() {
        bail!("the gateway exited with {status}");
    }
    Ok(())
}

/// POSTs a JSON body to the admin listener; succeeds on any 2xx.
fn post_json(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<()> {
    let (status, answer) = http_request(addr, "POST", path, Some(body))?;
    if !(200..300).contains(&status) {
        bail!("POST {path} answered {status}: {answer}");
    }
    Ok(())
}
