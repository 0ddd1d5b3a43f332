//! The system under test for `cargo xtask chaos` and `soak`: a real
//! PostgreSQL and Redis (ephemeral, from `warmgate-devservers`), a
//! stand-in auth service (`warmgate-jwks-server`, publishing a key made
//! here), and the release build of warmgate on a chat-shaped plan wired to
//! them, each its own process so that faults can be injected one by one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use warmgate_devservers::{Postgres, Redis, ScratchDir, generate_password};

use crate::auth_service::AuthService;
use crate::server::{Server, http_request, release_program};

/// The key id of the auth service's key.
pub(crate) const KID: &str = "chaos-1";
pub(crate) const ISSUER: &str = "https://auth.chaos.test/";
pub(crate) const AUDIENCE: &str = "chat";

/// The signal the harness turns off to hold clients.
pub(crate) const HOLD_SIGNAL: &str = "agent_supervisor";

/// How long a state change may take to show in `/readiness`.
const STATE_WAIT: Duration = Duration::from_secs(20);

/// Whether clients authenticate (`--auth jwt|none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Auth {
    /// `[auth] mode = "jwt"` with a `jwks` readiness check; clients send
    /// tokens and some attempts carry bad ones.
    Jwt,
    /// No `[auth]` section; the auth service is still checked (`kind =
    /// "http"` on its JWKS URL), so hanging it still matters.
    None,
}

impl Auth {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Auth::Jwt => "jwt",
            Auth::None => "none",
        }
    }
}

/// The plan: the database and the auth service required, Redis optional,
/// one service signal, then the WebSocket wiring. Checks run twice a
/// second so that each fault shows within a couple of seconds.
pub(crate) fn config(auth: Auth) -> String {
    let (auth_section, auth_check) = match auth {
        Auth::Jwt => (
            format!(
                r#"
[auth]
mode = "jwt"
algorithms = ["ES256"]
jwks_url_env = "WARMGATE_AUTH_URL"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
leeway = "30s"
"#
            ),
            r#"kind = "jwks""#.to_owned(),
        ),
        Auth::None => (
            String::new(),
            r#"kind = "http"
url_env = "WARMGATE_AUTH_URL"
expect_status = 200"#
                .to_owned(),
        ),
    };
    format!(
        r#"# Written by cargo xtask chaos / soak: the chat plan with fast checks.

[gate]
startup_deadline = "60s"
retry_cap = "100ms"
hold_timeout = "5s"
{auth_section}
[[phase]]
name = "dependencies"

[[phase.check]]
name = "database"
kind = "postgres"
url_env = "WARMGATE_DATABASE_URL"
timeout = "500ms"
interval = "500ms"

[[phase.check]]
name = "redis"
kind = "redis"
url_env = "WARMGATE_REDIS_URL"
required = false
timeout = "500ms"
interval = "500ms"

[[phase.check]]
name = "auth"
{auth_check}
timeout = "500ms"
interval = "1s"

[[phase]]
name = "services"

[[phase.check]]
name = "{HOLD_SIGNAL}"
kind = "signal"

[[phase]]
name = "integration"

[[phase.check]]
name = "websocket_integration"
kind = "signal"
"#
    )
}

/// The running system. Fields drop in order: warmgate first, the scratch
/// directory that holds the databases last.
#[derive(Debug)]
pub(crate) struct Stack {
    pub(crate) warmgate: Server,
    pub(crate) auth_service: AuthService,
    pub(crate) postgres: Postgres,
    pub(crate) redis: Redis,
    pub(crate) auth: Auth,
    pub(crate) warmgate_log: PathBuf,
    /// Holds the databases' files; removed when the stack drops.
    _scratch: ScratchDir,
}

impl Stack {
    /// Starts everything, with logs and the plan under `dir`, and returns
    /// once `/readyz` answers 200 (the hold signal set).
    pub(crate) fn start(dir: &Path, auth: Auth) -> anyhow::Result<Stack> {
        let scratch = ScratchDir::new("chaos")?;
        println!("stack: starting PostgreSQL and Redis");
        let postgres = Postgres::start_new(&scratch.path().join("postgres"))?;
        let redis = Redis::start_new(&scratch.path().join("redis"), Some(&generate_password()))?;

        let auth_service = AuthService::start(
            Command::new(release_program("warmgate-jwks-server")),
            dir,
            KID,
        )?;
        let auth_url = auth_service.jwks_url();

        let config_file = dir.join("warmgate.toml");
        std::fs::write(&config_file, config(auth))
            .with_context(|| format!("cannot write {}", config_file.display()))?;
        let warmgate_log = dir.join("warmgate.log");
        println!("stack: starting warmgate (auth {})", auth.name());
        let warmgate = Server::start_warmgate(
            &release_program("warmgate"),
            &config_file,
            &warmgate_log,
            &[
                ("WARMGATE_DATABASE_URL", &postgres.url()),
                ("WARMGATE_REDIS_URL", &redis.url()),
                ("WARMGATE_AUTH_URL", &auth_url),
            ],
        )?;
        let stack = Stack {
            warmgate,
            auth_service,
            postgres,
            redis,
            auth,
            warmgate_log,
            _scratch: scratch,
        };
        stack.set_signal(HOLD_SIGNAL, true)?;
        stack.wait_for_state("ready", |snapshot| snapshot["state"] == "ready")?;
        println!(
            "stack: warmgate ready on http://{} (admin http://{})",
            stack.warmgate.public,
            stack.admin()?
        );
        Ok(stack)
    }

    pub(crate) fn admin(&self) -> anyhow::Result<SocketAddr> {
        self.warmgate
            .admin
            .context("warmgate printed no admin address")
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.warmgate.public)
    }

    pub(crate) fn signal_url(&self, name: &str) -> anyhow::Result<String> {
        Ok(format!("http://{}/signals/{name}", self.admin()?))
    }

    /// The load generator's `--auth-*` arguments (none without auth).
    pub(crate) fn auth_arguments(&self) -> Vec<String> {
        match self.auth {
            Auth::None => Vec::new(),
            Auth::Jwt => self.auth_service.loadgen_arguments(ISSUER, AUDIENCE),
        }
    }

    pub(crate) fn set_signal(&self, name: &str, ready: bool) -> anyhow::Result<()> {
        let body = format!(r#"{{"ready":{ready},"reason":"set by the chaos harness"}}"#);
        let (status, answer) = http_request(
            self.admin()?,
            "POST",
            &format!("/signals/{name}"),
            Some(&body),
        )?;
        if !(200..300).contains(&status) {
            bail!("POST /signals/{name} answered {status}: {answer}");
        }
        Ok(())
    }

    /// The public snapshot (`GET /readiness`).
    pub(crate) fn snapshot(&self) -> anyhow::Result<Value> {
        let (status, body) = http_request(self.warmgate.public, "GET", "/readiness", None)?;
        if status != 200 {
            bail!("GET /readiness answered {status}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET /readiness answered {body:?}"))
    }

    /// Polls `/readiness` until `wanted` holds, for at most 20 s.
    pub(crate) fn wait_for_state(
        &self,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let snapshot = self.snapshot();
            if let Ok(snapshot) = &snapshot
                && wanted(snapshot)
            {
                return Ok(snapshot.clone());
            }
            if started.elapsed() > STATE_WAIT {
                let last = match snapshot {
                    Ok(snapshot) => snapshot.to_string(),
                    Err(error) => format!("{error:#}"),
                };
                bail!(
                    "the gate was not {what} within {} s; last: {last}",
                    STATE_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The held `/ws` clients, from `GET /metrics` on the admin listener.
    pub(crate) fn held_clients(&self) -> anyhow::Result<f64> {
        let (status, body) = http_request(self.admin()?, "GET", "/metrics", None)?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        Ok(body
            .lines()
            .filter(|line| {
                line.starts_with("warmgate_connections{")
                    && line.contains(r#"route="/ws""#)
                    && line.contains(r#"stage="held""#)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Copies the PostgreSQL and Redis logs next to the others (their
    /// directories vanish with the stack).
    pub(crate) fn keep_logs(&self, dir: &Path) {
        let _ = std::fs::copy(self.postgres.log_file(), dir.join("postgres.log"));
        let _ = std::fs::copy(self.redis.log_file(), dir.join("redis.log"));
    }
}

/// Lines of warmgate's log that report a panic.
pub(crate) fn panics_in_log(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("panicked"))
        .map(str::to_owned)
        .collect()
}
