//! Server processes for the xtask commands that run them (warmgate, and the
//! benchmarks' comparison servers): started on free loopback ports, found
//! by the line they print, waited on until `/readyz` answers 200, and
//! stopped with SIGTERM.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use warmgate_devservers::process::{self, Signal};
use warmgate_devservers::serving::ServingLine;

use crate::command::workspace_root;

/// How long warmgate may take to say where it serves, and then to turn
/// `/readyz` to 200 (its default plan is ready within milliseconds).
const START_WAIT: Duration = Duration::from_secs(30);

/// How long warmgate may take to exit after SIGTERM: its default shutdown
/// budget (10 s), with room to spare.
const EXIT_WAIT: Duration = Duration::from_secs(15);

/// The packages of [`release_build`]. The workspace-hack crate (kept by
/// `cargo hakari`) makes their third-party features those of warmgate
/// built alone, which `cargo build --release -p warmgate` (the
/// `Dockerfile`'s from-source stage) gives; the tidy test holds it so.
pub(crate) const RELEASE_PACKAGES: [&str; 3] =
    ["warmgate", "warmgate-loadgen", "warmgate-bench-servers"];

/// The release build of warmgate, the load generator and the comparison
/// and stand-in servers, in one command; returns warmgate's path.
///
/// Every command that runs or ships a release warmgate builds through
/// here, so that cargo resolves one feature set: the binary that
/// otel-smoke runs, deploy-check checks and the image ships is the one
/// bench measures, and CI builds it once.
pub(crate) fn release_build() -> anyhow::Result<PathBuf> {
    let mut args = vec!["build", "--release"];
    for package in RELEASE_PACKAGES {
        args.extend(["-p", package]);
    }
    crate::command::run("cargo", &args)?;
    Ok(release_program("warmgate"))
}

/// A program of the release build.
pub(crate) fn release_program(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

/// A running server (warmgate, or a benchmark's comparison server), killed
/// on drop unless it was stopped.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    pub(crate) public: SocketAddr,
    /// The admin listener, for warmgate.
    pub(crate) admin: Option<SocketAddr>,
}

impl Server {
    /// Starts warmgate (`program`) with `config_path` on free loopback
    /// ports, with `env` added to its environment, and waits for the line
    /// that says where it serves. Its log goes to `log_path`.
    pub(crate) fn start_warmgate(
        program: &Path,
        config_path: &Path,
        log_path: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let mut command = Command::new(program);
        command
            .arg("--config")
            .arg(config_path)
            .envs(env.iter().copied())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
        Server::spawn(command, "warmgate", log_path)
    }

    /// Starts `command`, a server that prints its serving line
    /// (`NAME: serving http://ADDR`, and ` (admin http://ADDR)` for
    /// warmgate; see `warmgate_devservers::serving`) as its first line, and
    /// waits for that line. Its stderr goes to `log_path`.
    pub(crate) fn spawn(command: Command, name: &str, log_path: &Path) -> anyhow::Result<Server> {
        Server::spawn_within(command, name, log_path, START_WAIT)
    }

    /// [`Server::spawn`], waiting at most `start_wait` for the line (a
    /// server under valgrind takes far longer than the usual 30 s).
    pub(crate) fn spawn_within(
        mut command: Command,
        name: &str,
        log_path: &Path,
        start_wait: Duration,
    ) -> anyhow::Result<Server> {
        let log = File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut child = command
            .current_dir(workspace_root())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child
            .stdout
            .take()
            .with_context(|| format!("{name} has no stdout"))?;
        let (line_tx, line_rx) = mpsc::channel();
        // The reader thread hands over the first line, then relays the rest
        // so the server never blocks on a full pipe.
        let relay_name = name.to_owned();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let _ = line_tx.send(lines.next());
            for line in lines {
                println!("{relay_name}: {line}");
            }
        });
        let mut server = Server {
            child,
            public: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
        };
        let line = match line_rx.recv_timeout(start_wait) {
            Ok(Some(line)) => line,
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait()?;
                bail!(
                    "{name} exited ({status}) before saying where it serves; its log {} says why",
                    log_path.display()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "{name} said nothing on stdout within {} s; its log is {}",
                start_wait.as_secs(),
                log_path.display()
            ),
        };
        let serving = ServingLine::parse_from(name, &line).with_context(|| {
            format!(
                "{name} did not say where it serves; its log is {}",
                log_path.display()
            )
        })?;
        (server.public, server.admin) = (serving.public, serving.admin);
        Ok(server)
    }

    /// The process id, for its memory figures.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_within(EXIT_WAIT)
    }

    /// [`Server::stop`], waiting at most `exit_wait` for the exit.
    pub(crate) fn stop_within(&mut self, exit_wait: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::Terminate)?;
        let asked = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("cannot wait for warmgate")? {
                return Ok(status);
            }
            if asked.elapsed() > exit_wait {
                bail!(
                    "the server did not exit within {} s of SIGTERM",
                    exit_wait.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `GET /readyz` until it answers 200.
pub(crate) fn wait_until_ready(public: SocketAddr) -> anyhow::Result<()> {
    wait_until_ready_within(public, START_WAIT)
}

/// [`wait_until_ready`], waiting at most `start_wait`.
pub(crate) fn wait_until_ready_within(
    public: SocketAddr,
    start_wait: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let status = readyz_status(public);
        if matches!(status, Ok(200)) {
            return Ok(());
        }
        if started.elapsed() > start_wait {
            let last = match status {
                Ok(status) => format!("it last answered {status}"),
                Err(error) => format!("the last attempt failed: {error:#}"),
            };
            bail!(
                "GET http://{public}/readyz did not answer 200 within {} s; {last}",
                start_wait.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status code of one `GET /readyz`.
fn readyz_status(public: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&public, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {public}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status_line = response.lines().next().unwrap_or_default();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))
}

pub(crate) fn target_dir() -> PathBuf {
    warmgate_devservers::target_dir(&workspace_root())
}

impl Server {
    /// The exit status if the process has exited, without waiting.
    pub(crate) fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .context("cannot ask whether the server runs")
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, SIGTERM, …) to the process.
    pub(crate) fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        Ok(process::send_signal(self.child.id(), signal)?)
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), with a
/// JSON body when `body` is given; returns the status and the body.
/// Bodies are small here, so neither chunked nor compressed answers are
/// handled beyond reading to the end.
pub(crate) fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut payload = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        payload.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    payload
}
