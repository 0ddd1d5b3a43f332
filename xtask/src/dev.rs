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
//!
//! `cargo xtask dev --upstream` is proxy mode instead: the stand-in backend
//! (`tests/backend/app.py`, FastAPI on uvicorn, through `backend`) on a
//! free loopback port with its few-second startup, and the gateway in
//! front of it with the config of `docs/proxy.md`, written to
//! `target/dev/upstream.toml`: `/ws` relayed to the backend, plain HTTP
//! proxied, and readiness an `http` check of the backend's `/healthz`.
//! Both start at once, so a client that connects straight away is held
//! while the backend starts, then relayed. It needs neither the
//! databases nor the auth service. Ctrl-C reaches both processes, which
//! stop on it; when either one ends by itself, the other is stopped too.
//!
//! Either way, the programs are built (`cargo build`, untimed: the first
//! build on a machine takes minutes) before any of them starts, and then
//! run from `target/debug` directly, so that the deadlines on their
//! starts measure the starts and never a compilation.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use warmgate_devservers::process::{self, Signal};
use warmgate_devservers::serving::ServingLine;

use crate::auth_service::AuthService;
use crate::backend;
use crate::command::{self, workspace_root};
use crate::deps::deps_up;
use crate::net::free_loopback_port;
use crate::server::{http_request, target_dir};

const SERVICE_SIGNALS: [&str; 2] = ["agent_supervisor", "websocket_bridge"];

/// The key id, issuer and audience of the dev tokens; the last two are the
/// ones `examples/chat.toml` accepts.
const DEV_KID: &str = "dev";

/// What `dev` says when the gateway has stopped: the dependencies it
/// started stay up, for the next run (`deps up` finds them up) or until
/// `deps down`.
const STILL_RUNNING: &str = "dev: the gateway stopped; PostgreSQL and Redis are still running \
     (the next `cargo xtask dev` uses them again); `cargo xtask deps down` stops them";
const DEV_ISSUER: &str = "https://auth.example.com/";
const DEV_AUDIENCE: &str = "chat";

/// How long the backend takes to start under `--upstream` unless told
/// otherwise: long enough to watch a client being held.
const UPSTREAM_STARTUP_DELAY: Duration = Duration::from_secs(5);

/// How much longer than the backend's startup delay a client may be held,
/// for the interpreter's start and a client that connects a little late.
const UPSTREAM_HOLD_MARGIN: Duration = Duration::from_secs(10);

/// The gateway's listeners unless told otherwise.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// What `cargo xtask dev` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct DevArgs {
    /// Where the gateway serves clients
    #[arg(
        long,
        value_name = "ADDR",
        default_value = DEFAULT_LISTEN,
        value_parser = crate::listen_address
    )]
    pub(crate) listen: SocketAddr,
    /// Where the gateway's admin listener serves
    #[arg(
        long,
        value_name = "ADDR",
        default_value = DEFAULT_ADMIN_LISTEN,
        value_parser = crate::listen_address
    )]
    pub(crate) admin_listen: SocketAddr,
    /// Instead of the chat plan: the stand-in backend on a free port, and
    /// the gateway in front of it
    #[arg(long)]
    pub(crate) upstream: bool,
    /// With --upstream, how long the backend takes to start, in seconds,
    /// such as 5 or 0.5 (default 5)
    #[arg(
        long,
        value_name = "S",
        requires = "upstream",
        value_parser = crate::seconds
    )]
    pub(crate) startup_delay: Option<Duration>,
}

/// A program `dev` runs, by its package and binary name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DevProgram {
    package: &'static str,
    binary: &'static str,
}

const GATEWAY: DevProgram = DevProgram {
    package: "warmgate",
    binary: "warmgate",
};

const AUTH_SERVICE: DevProgram = DevProgram {
    package: "warmgate-bench-servers",
    binary: "warmgate-jwks-server",
};

impl DevProgram {
    /// Where `cargo build` (the dev profile) puts it.
    fn path(self) -> PathBuf {
        target_dir().join("debug").join(self.binary)
    }
}

/// The `cargo build` arguments that build `programs`, as `cargo run -p
/// PACKAGE --bin BINARY` would (the dev profile, default features), in one
/// command.
fn build_arguments(programs: &[DevProgram]) -> Vec<&'static str> {
    let mut args = vec!["build"];
    for program in programs {
        args.extend(["-p", program.package, "--bin", program.binary]);
    }
    args
}

/// Builds `programs` before anything starts: a first build takes minutes,
/// which no start deadline should include.
fn build(programs: &[DevProgram]) -> anyhow::Result<()> {
    println!("dev: building the programs first (minutes the first time, seconds after)");
    command::run("cargo", &build_arguments(programs))
}

pub(crate) fn run(args: &DevArgs) -> anyhow::Result<()> {
    let &DevArgs {
        listen,
        admin_listen,
        upstream,
        startup_delay,
    } = args;
    if upstream {
        return run_upstream(
            listen,
            admin_listen,
            startup_delay.unwrap_or(UPSTREAM_STARTUP_DELAY),
        );
    }

    build(&[GATEWAY, AUTH_SERVICE])?;
    let deps = deps_up()?;
    let dev_dir = target_dir().join("dev");
    std::fs::create_dir_all(&dev_dir)
        .with_context(|| format!("cannot create {}", dev_dir.display()))?;
    let auth_service = AuthService::start(auth_service_command(), &dev_dir, DEV_KID)?;
    let auth_url = auth_service.jwks_url();
    let token = auth_service.token("dev-user", DEV_ISSUER, DEV_AUDIENCE, 24 * 3600)?;
    println!("dev: starting the gateway with examples/chat.toml (auth service {auth_url})");
    let mut gateway = gateway_command(listen, admin_listen)
        .env("WARMGATE_DATABASE_URL", &deps.database_url)
        .env("WARMGATE_REDIS_URL", &deps.redis_url)
        .env("WARMGATE_AUTH_URL", &auth_url)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the gateway")?;
    let stdout = gateway.stdout.take().context("the gateway has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) => {
            ServingLine::parse_from("warmgate", &line)
                .context("the gateway did not say where it serves")?;
            println!("{line}");
        }
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
    // Ctrl-C reaches the gateway (the terminal signals the whole process
    // group), which drains and exits; this process only notes it, so that
    // it can still say what is left running.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
        .context("cannot watch for Ctrl-C")?;
    // Relay anything else the gateway prints until it exits.
    for line in lines.map_while(Result::ok) {
        println!("{line}");
    }
    let status = gateway.wait()?;
    println!("{}", STILL_RUNNING);
    if !status.success() && !interrupted.load(Ordering::Relaxed) {
        bail!("the gateway exited with {status}");
    }
    Ok(())
}

/// The built auth service, without arguments (`AuthService::start` adds
/// them).
fn auth_service_command() -> Command {
    Command::new(AUTH_SERVICE.path())
}

/// The built gateway on `examples/chat.toml`, from the workspace root (the
/// config's path is relative to it), on the listeners asked for.
fn gateway_command(listen: SocketAddr, admin_listen: SocketAddr) -> Command {
    let mut command = Command::new(GATEWAY.path());
    command
        .args(["--config", "examples/chat.toml"])
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--admin-listen")
        .arg(admin_listen.to_string())
        .current_dir(workspace_root());
    command
}

// === --upstream ===

/// The stand-in backend on a free port and the gateway in front of it,
/// until Ctrl-C or until either one ends.
fn run_upstream(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    startup_delay: Duration,
) -> anyhow::Result<()> {
    // Everything slow happens before either process starts, so that the
    // hold a user sees is the backend's startup and not a build.
    backend::install()?;
    build(&[GATEWAY])?;
    let port = free_loopback_port()?;
    let dev_dir = target_dir().join("dev");
    std::fs::create_dir_all(&dev_dir)
        .with_context(|| format!("cannot create {}", dev_dir.display()))?;
    let config_path = dev_dir.join("upstream.toml");
    std::fs::write(&config_path, upstream_config(port, startup_delay))
        .with_context(|| format!("cannot write {}", config_path.display()))?;

    let started = Instant::now();
    let mut backend = StopOnDrop(backend::spawn(port, startup_delay)?);
    println!(
        "dev: starting the gateway with {} in front of it",
        config_path.display()
    );
    let mut gateway = StopOnDrop(
        Command::new(GATEWAY.path())
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--admin-listen")
            .arg(admin_listen.to_string())
            .current_dir(workspace_root())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the gateway")?,
    );
    let stdout = gateway
        .0
        .stdout
        .take()
        .context("the gateway has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) => {
            ServingLine::parse_from("warmgate", &line)
                .context("the gateway did not say where it serves")?;
            println!("{line}");
        }
        _ => {
            let status = gateway.0.wait()?;
            bail!("the gateway exited ({status}) before serving; its log above says why");
        }
    }
    println!(
        "dev: the backend is starting (about {startup_delay:?}); until its /healthz answers, \
         WebSocket clients are held and /readyz answers 503\n\
         dev: connect now, and see the client held, then relayed:\n  \
         websocat ws://{listen}/ws   (add --protocol warmgate.v1 for warmgate's warming and ready frames), then type \
         {{\"op\":\"stream\",\"text\":\"hello there world\",\"delay_ms\":200}}\n  \
         or in a browser console: s = new WebSocket('ws://{listen}/ws'); s.onmessage = e => console.log(e.data); s.onopen = () => s.send('hello')\n\
         dev: plain HTTP goes to the backend too: curl http://{listen}/api/hello; \
         readiness: curl http://{listen}/readiness/events\n\
         dev: Ctrl-C stops the gateway and the backend"
    );
    // Says once when the gate turns ready, which the gateway's own log
    // also says, in its words.
    std::thread::spawn(move || {
        let patience = startup_delay + Duration::from_secs(60);
        while started.elapsed() < patience {
            if matches!(http_request(listen, "GET", "/readyz", None), Ok((200, _))) {
                println!(
                    "dev: ready {:.1} s after the start: the backend answers /healthz, and held clients are relayed to it now",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // Relays anything else the gateway prints until it exits.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    // Ctrl-C reaches both processes from the terminal; this only notices
    // one of them ending by itself and stops the other.
    loop {
        if let Some(status) = gateway
            .0
            .try_wait()
            .context("cannot wait for the gateway")?
        {
            drop(backend);
            if !status.success() {
                bail!("the gateway exited with {status}");
            }
            return Ok(());
        }
        if let Some(status) = backend
            .0
            .try_wait()
            .context("cannot wait for the backend")?
        {
            drop(gateway);
            bail!("the backend exited with {status}; the gateway is stopped too");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The gateway's config in front of the backend on `port`: the one in
/// `docs/proxy.md`, with a hold long enough for the backend's startup.
fn upstream_config(port: u16, startup_delay: Duration) -> String {
    let hold_timeout = (startup_delay + UPSTREAM_HOLD_MARGIN).as_secs_f64().ceil();
    format!(
        r#"# Written by `cargo xtask dev --upstream`: the gateway in front of the
# stand-in backend (tests/backend/app.py) on 127.0.0.1:{port}.

[gate]
# The backend takes {startup_delay:?} to start; a client that connects at once
# is held through it.
hold_timeout = "{hold_timeout}s"

[upstream]
url = "ws://127.0.0.1:{port}"
http = true

[[route]]
path = "/ws"
app = "upstream"

[[phase]]
name = "backend"

[[phase.check]]
name = "backend"
kind = "http"
url = "http://127.0.0.1:{port}/healthz"
"#
    )
}

/// A child process that is stopped when this command ends before it:
/// SIGTERM, so that it shuts down as it would in production, and SIGKILL
/// if it is still there after [`STOP_WAIT`].
struct StopOnDrop(Child);

/// How long a stopped process may take to exit: the gateway's drain grace
/// (8 s) and its close margin, with room to spare.
const STOP_WAIT: Duration = Duration::from_secs(12);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = process::send_signal(self.0.id(), Signal::Terminate);
        let asked = Instant::now();
        while asked.elapsed() < STOP_WAIT {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs a JSON body to the admin listener; succeeds on any 2xx.
fn post_json(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<()> {
    let (status, answer) = http_request(addr, "POST", path, Some(body))?;
    if !(200..300).contains(&status) {
        bail!("POST {path} answered {status}: {answer}");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
