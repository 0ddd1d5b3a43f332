//! A running warmgate program: [`GatewayBuilder`] writes its config to a
//! scratch file and starts it on free loopback ports, [`Gateway`] holds the
//! child process, its addresses (read from its serving line) and its log,
//! and stops it: by signal, or by being dropped.
//!
//! Talking to it is other modules' business: HTTP in `http.rs`, the event
//! stream in `events.rs`, WebSockets in `websocket.rs`. Configs come from
//! `plan.rs`.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use warmgate_devservers::ScratchDir;
use warmgate_devservers::process::{Signal, send_signal};
use warmgate_devservers::serving::ServingLine;

use crate::{Plan, http_client, program, scratch_dir, within};

/// Builds a [`Gateway`]: a config and environment, then `spawn`.
#[derive(Debug, Default)]
pub struct GatewayBuilder {
    config: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl GatewayBuilder {
    /// The TOML config to run with (a [`crate::Plan`], usually); without
    /// one, the embedded default.
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    /// An environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// An extra command-line argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the program and waits for its serving line, which says where
    /// it listens.
    pub async fn spawn(self) -> Gateway {
        let mut command = Command::new(program());
        let mut scratch = None;
        if let Some(config) = &self.config {
            let dir = scratch_dir();
            let path = dir.path().join("warmgate.toml");
            std::fs::write(&path, config).unwrap();
            command.arg("--config").arg(path);
            scratch = Some(dir);
        } else {
            command
                .args(["--listen", "127.0.0.1:0"])
                .args(["--admin-listen", "127.0.0.1:0"]);
        }
        command
            .args(&self.args)
            .env("RUST_LOG", "info")
            // A platform's PORT would move the public listener (a test
            // that wants it sets it with `env`).
            .env_remove("PORT")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let log_sink = Arc::clone(&log);
        let log_reader = tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut log = log_sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let line = within("the serving line", async {
            let mut line = String::new();
            stdout.read_line(&mut line).await.unwrap();
            line
        })
        .await;
        let serving = ServingLine::parse_from("warmgate", &line).unwrap_or_else(|error| {
            let log = log.lock().unwrap();
            panic!("{error}\n--- warmgate log ---\n{log}--- end of log ---")
        });
        let admin = serving
            .admin
            .unwrap_or_else(|| panic!("warmgate's serving line names no admin listener: {line:?}"));
        Gateway {
            child,
            log,
            log_reader: Some(log_reader),
            _stdout: stdout,
            public: serving.public,
            admin,
            http: http_client(),
            _scratch: scratch,
        }
    }
}

/// A running warmgate program.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    log: Arc<Mutex<String>>,
    /// Reads stderr into `log` until the process closes it.
    log_reader: Option<tokio::task::JoinHandle<()>>,
    _stdout: BufReader<ChildStdout>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub(crate) http: reqwest::Client,
    /// Holds the config file; removed with the gateway.
    _scratch: Option<ScratchDir>,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// [`Plan::app_signal`] behind an admin control token and a read-only
    /// token, both passed in the environment as an operator would
    /// (`admin_token_env`, `admin_read_token_env`).
    pub async fn with_admin_tokens(control: &str, read: &str) -> Gateway {
        Gateway::builder()
            .config(
                Plan::app_signal()
                    .set("admin_token_env", "WARMGATE_TEST_ADMIN_TOKEN")
                    .set("admin_read_token_env", "WARMGATE_TEST_ADMIN_READ_TOKEN"),
            )
            .env("WARMGATE_TEST_ADMIN_TOKEN", control)
            .env("WARMGATE_TEST_ADMIN_READ_TOKEN", read)
            .spawn()
            .await
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        send_signal(self.pid(), Signal::Terminate).unwrap();
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        send_signal(self.pid(), Signal::Interrupt).unwrap();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the process to exit, and for its last log lines.
    pub async fn exit_status(&mut self) -> ExitStatus {
        let status = within("warmgate to exit", self.child.wait()).await.unwrap();
        if let Some(reader) = self.log_reader.take() {
            within("the rest of the log", reader).await.unwrap();
        }
        status
    }
}

impl Drop for Gateway {
    /// Shows the program's log when a test fails, and only then.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- warmgate log ---\n{}--- end of log ---", self.log());
        }
    }
}
