//! The stand-in upstream for the proxy tests: `tests/backend/app.py`, a
//! FastAPI chat service on uvicorn (the kind of backend warmgate guards),
//! run as a child process on a free loopback port.
//!
//! [`Backend::start`] spawns it and returns while it is still starting: it
//! refuses connections until its startup delay has passed, as a Cloud Run
//! instance loading a model does. [`Backend::wait_healthy`] waits until it
//! serves. What the backend answers is documented in `app.py`.
//!
//! The Python comes from the virtualenv `cargo xtask backend --install-only`
//! builds in `target/backend-venv` (`cargo xtask ci` builds it too), or from
//! `WARMGATE_BACKEND_PYTHON`. This module neither installs it nor talks to
//! warmgate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use warmgate_devservers::process::{Signal, send_signal};
use warmgate_devservers::stand_in_backend;

use crate::{PATIENCE, WsClient, free_port, http_client, within};

/// The command that builds the virtualenv, named when it is missing.
const INSTALL_COMMAND: &str = "cargo xtask backend --install-only";

/// Overrides the virtualenv's Python (one with the packages of
/// `tests/backend/requirements.txt`).
const PYTHON_VARIABLE: &str = "WARMGATE_BACKEND_PYTHON";

/// The subprotocol the backend selects unless configured otherwise.
pub const SUBPROTOCOL: &str = "chat.v2";

fn workspace_root() -> PathBuf {
    let tests_package = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_package.parent().unwrap().to_owned()
}

/// The Python that runs the backend: `WARMGATE_BACKEND_PYTHON`, or the
/// virtualenv's, which must exist and be built from the current
/// requirements.
///
/// # Panics
///
/// When the virtualenv is missing or stale, naming the command that
/// builds it.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os(PYTHON_VARIABLE) {
        return PathBuf::from(python);
    }
    let venv = stand_in_backend::venv_dir(&workspace_root());
    let python = stand_in_backend::venv_python(&venv);
    assert!(
        python.is_file(),
        "the test backend's virtualenv is missing ({} not found): run `{INSTALL_COMMAND}` \
         (or set {PYTHON_VARIABLE} to a Python with tests/backend/requirements.txt installed)",
        python.display()
    );
    // xtask keeps a copy of the requirements the venv was built from.
    let wanted =
        std::fs::read_to_string(stand_in_backend::requirements(&workspace_root())).unwrap();
    let built_from = std::fs::read_to_string(venv.join(stand_in_backend::INSTALLED_REQUIREMENTS));
    assert!(
        built_from.is_ok_and(|built_from| built_from == wanted),
        "the test backend's virtualenv ({}) was built from other requirements than \
         tests/backend/requirements.txt: run `{INSTALL_COMMAND}`",
        venv.display()
    );
    python
}

/// A running backend on `127.0.0.1`, killed when dropped. Its stdout and
/// stderr are kept (see [`Backend::log`]) and shown when a test fails.
#[derive(Debug)]
pub struct Backend {
    child: Child,
    port: u16,
    startup_delay: Duration,
    log: Arc<Mutex<String>>,
    /// Read stdout and stderr into `log`; both finish when the process
    /// exits, and are taken once they are awaited.
    log_readers: Vec<JoinHandle<()>>,
}

impl Backend {
    /// Starts the backend on a free loopback port and returns at once:
    /// its port refuses connections for `startup_delay` (and the second or
    /// so Python takes to start), then it serves.
    pub async fn start(startup_delay: Duration) -> Backend {
        Backend::start_on(free_port(), startup_delay)
    }

    fn start_on(port: u16, startup_delay: Duration) -> Backend {
        let mut command = Command::from(stand_in_backend::command(
            &python(),
            &workspace_root(),
            port,
            startup_delay,
        ));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start the backend with {command:?}: {error}"));
        let log = Arc::new(Mutex::new(String::new()));
        let log_readers = vec![
            read_into(child.stdout.take().unwrap(), Arc::clone(&log)),
            read_into(child.stderr.take().unwrap(), Arc::clone(&log)),
        ];
        Backend {
            child,
            port,
            startup_delay,
            log,
            log_readers,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `ws://127.0.0.1:PORT/path`; `path` starts with `/`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr())
    }

    /// `http://127.0.0.1:PORT/path`; `path` starts with `/`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// What the backend has printed so far (uvicorn's log, stdout and
    /// stderr interleaved).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn exited(&self) -> bool {
        self.log_readers.iter().all(JoinHandle::is_finished)
    }

    /// Waits until `GET /healthz` answers 200; fails the test at once if
    /// the backend exits, and after its startup delay plus [`PATIENCE`].
    ///
    /// This polls because the backend is another program that tells no one
    /// it is ready except by serving: there is no event to wait on. The
    /// interval is short so that a test waits no longer than it must.
    pub async fn wait_healthy(&self) {
        let http = http_client();
        let url = self.http_url("/healthz");
        let patience = self.startup_delay + PATIENCE;
        let polling = async {
            loop {
                // Its log follows the panic message, from `Drop`.
                assert!(!self.exited(), "the backend exited before it served");
                let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
                if answer.is_ok_and(|response| response.status() == 200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(patience, polling).await.is_err() {
            panic!("the backend did not serve {url} within {patience:?}");
        }
    }

    /// Kills the backend (SIGKILL, like a crashed instance: open
    /// connections are reset) and waits until it is gone, so its port
    /// refuses connections on return.
    pub async fn stop(&mut self) -> ExitStatus {
        self.child.start_kill().unwrap();
        self.wait_for_exit().await
    }

    /// Sends SIGTERM, as Cloud Run does when it scales an instance in:
    /// uvicorn stops accepting, closes open WebSockets with 1012 and
    /// exits. Waits until it is gone.
    pub async fn terminate(&mut self) -> ExitStatus {
        if let Some(pid) = self.child.id() {
            send_signal(pid, Signal::Terminate).expect("cannot send SIGTERM to the backend");
        }
        self.wait_for_exit().await
    }

    async fn wait_for_exit(&mut self) -> ExitStatus {
        let status = within("the backend to exit", self.child.wait())
            .await
            .unwrap();
        for reader in self.log_readers.drain(..) {
            within("the rest of the backend's log", reader)
                .await
                .unwrap();
        }
        status
    }

    /// Starts the backend again on the same port with the same startup
    /// delay, after [`Backend::stop`] or [`Backend::terminate`] (or kills it
    /// first if it still runs), and returns at once, as [`Backend::start`]
    /// does. The old process's log is kept, followed by the new one's.
    pub async fn restart(&mut self) {
        if self.child.id().is_some() {
            self.stop().await;
        }
        let old_log = self.log();
        let restarted = Backend::start_on(self.port, self.startup_delay);
        restarted.log.lock().unwrap().insert_str(0, &old_log);
        *self = restarted;
    }

    /// Opens a WebSocket offering no subprotocol.
    pub async fn ws(&self, path: &str) -> WsClient {
        self.ws_with(path, &[], &[]).await
    }

    /// Opens a WebSocket offering `subprotocols` (the backend must select
    /// one of them when any is offered: the client fails the handshake
    /// otherwise), with extra request `headers`.
    pub async fn ws_with(
        &self,
        path: &str,
        subprotocols: &[&str],
        headers: &[(&'static str, &str)],
    ) -> WsClient {
        let mut request = self.ws_url(path).into_client_request().unwrap();
        if !subprotocols.is_empty() {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                subprotocols.join(", ").parse().unwrap(),
            );
        }
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (stream, response) = within(
            "the backend's WebSocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await
        .unwrap_or_else(|error| panic!("the backend's WebSocket handshake failed: {error}"));
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|value| value.to_str().unwrap().to_owned());
        WsClient {
            stream,
            subprotocol,
        }
    }
}

/// Appends every line of `output` to `log` until it closes.
fn read_into(
    output: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(output).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    })
}

impl Drop for Backend {
    /// Shows the backend's log when a test fails, and only then.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- backend log ---\n{}--- end of log ---", self.log());
        }
    }
}

/// The query of the backend's `/api/sse`: `n_events` events, one every
/// `interval`, the first after one interval.
pub fn sse_path(n_events: u32, interval: Duration) -> String {
    format!("/api/sse?n={n_events}&interval_ms={}", interval.as_millis())
}

/// Reads an answer to [`sse_path`] and asserts that it is the backend's
/// event stream (`data: 0` to `data: n - 1`), and that its first event
/// arrived before the last was produced: whoever sits between the backend
/// and the client (`via`) did not buffer it.
pub async fn assert_sse_unbuffered(
    response: reqwest::Response,
    requested: std::time::Instant,
    n_events: u32,
    interval: Duration,
    via: &str,
) {
    use futures_util::StreamExt as _;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let mut body = response.bytes_stream();
    let mut received = String::new();
    let mut first_arrived = None;
    while let Some(chunk) = within("the next event", body.next()).await {
        received.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        if first_arrived.is_none() && received.contains("\n\n") {
            first_arrived = Some(requested.elapsed());
        }
    }
    let expected: String = (0..n_events).map(|i| format!("data: {i}\n\n")).collect();
    assert_eq!(received, expected);
    // The backend sleeps an interval before each event, so the last one
    // is produced no sooner than this after the request.
    let last_produced = interval * n_events;
    let first_arrived = first_arrived.unwrap();
    assert!(
        first_arrived < last_produced,
        "the first event arrived after {first_arrived:?}, when the last was produced \
         ({last_produced:?}): {via} buffered the stream"
    );
}
