//! Helpers for the end-to-end tests: start the real warmgate program as a
//! child process, talk HTTP to it, and read its event stream.
//!
//! Every wait here waits on an event (a line printed, a frame received, a
//! process exiting) and is bounded by [`PATIENCE`] only so that a broken
//! build fails instead of hanging.

#![allow(clippy::unwrap_used)]

pub mod backend;
pub mod jwks;
pub mod otlp;
pub mod proxy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use warmgate_devservers::{Postgres, Redis, ScratchDir};

/// The longest any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test with `what` if it takes past
/// [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up after {PATIENCE:?} waiting for {what}"),
    }
}

/// Runs the program with `args` and `env`, expecting it to refuse to
/// start: it must exit unsuccessfully without serving (nothing on stdout).
/// Returns what it wrote to stderr.
pub async fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(program());
    command.args(args).envs(env.iter().copied());
    let output = within("warmgate to refuse to start", command.output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "it must not have served: {stderr}"
    );
    stderr
}

/// A fresh directory for one test's files, removed when dropped.
pub fn scratch_dir() -> ScratchDir {
    ScratchDir::new("test").unwrap()
}

/// A server and the scratch directory that holds its files: the server is
/// dropped (and so stopped) first, then the directory is removed.
#[derive(Debug)]
pub struct InScratch<T> {
    server: T,
    _dir: ScratchDir,
}

impl<T> InScratch<T> {
    pub fn new(server: T, dir: ScratchDir) -> Self {
        InScratch { server, _dir: dir }
    }
}

impl<T> std::ops::Deref for InScratch<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.server
    }
}

impl<T> std::ops::DerefMut for InScratch<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.server
    }
}

/// Runs a blocking fixture call (initdb, pg_ctl, redis-server) off the
/// async runtime.
pub async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    within(what, tokio::task::spawn_blocking(work))
        .await
        .unwrap()
}

/// A fresh PostgreSQL cluster in its own scratch directory, started or
/// only prepared.
pub async fn new_postgres(started: bool) -> InScratch<Postgres> {
    let dir = scratch_dir();
    let path = dir.path().to_owned();
    let postgres = blocking("a PostgreSQL cluster", move || {
        if started {
            Postgres::start_new(&path)
        } else {
            Postgres::prepare_without_starting(&path)
        }
    })
    .await
    .unwrap();
    InScratch::new(postgres, dir)
}

/// A fresh Redis server in its own scratch directory, requiring
/// `password` if given.
pub async fn new_redis(password: Option<&'static str>) -> InScratch<Redis> {
    let dir = scratch_dir();
    let path = dir.path().to_owned();
    let redis = blocking("a Redis server", move || Redis::start_new(&path, password))
        .await
        .unwrap();
    InScratch::new(redis, dir)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config on free loopback ports whose readiness is in the test's hands:
/// one phase `services` with a required signal `app` (set it with
/// [`Gateway::set_signal`]), then `checks` (more `[[phase.check]]` tables),
/// with the `[gate]` settings given.
pub fn app_signal_plan(gate: &str, checks: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[gate]
{gate}

[[phase]]
name = "services"

[[phase.check]]
name = "app"
kind = "signal"
{checks}
"#
    )
}

/// The path of the warmgate program built for these tests.
///
/// Cargo builds this package's binaries before its integration tests, next
/// to the `deps` folder that holds the test executable. Nextest also says
/// where it is through `CARGO_BIN_EXE_warmgate-e2e` at run time.
pub fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_warmgate-e2e") {
        return PathBuf::from(path);
    }
    let test_executable = std::env::current_exe().unwrap();
    let profile_dir = test_executable.parent().unwrap().parent().unwrap();
    let program = profile_dir.join(format!("warmgate-e2e{}", std::env::consts::EXE_SUFFIX));
    assert!(program.exists(), "{} was not built", program.display());
    program
}

/// Builds a [`Gateway`]: a config and environment, then `spawn`.
#[derive(Debug, Default)]
pub struct GatewayBuilder {
    config: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl GatewayBuilder {
    /// The TOML config to run with; without one, the embedded default.
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

    /// Starts the program and waits for it to print where it listens.
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
        let (public, admin) = parse_serving_line(&line)
            .unwrap_or_else(|| panic!("unexpected first line from warmgate: {line:?}"));
        Gateway {
            child,
            log,
            log_reader: Some(log_reader),
            _stdout: stdout,
            public,
            admin,
            http: http_client(),
            _scratch: scratch,
        }
    }
}

/// An HTTP client. The workspace builds reqwest with rustls but without a
/// built-in crypto provider, so the process installs ring's once.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Reads "warmgate: serving http://A (admin http://B)".
fn parse_serving_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("warmgate: serving http://")?;
    let (public, rest) = rest.split_once(" (admin http://")?;
    let admin = rest.strip_suffix(')')?;
    Some((public.parse().ok()?, admin.parse().ok()?))
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
    http: reqwest::Client,
    /// Holds the config file; removed with the gateway.
    _scratch: Option<ScratchDir>,
}

/// A response's status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = within("an HTTP response", request.send()).await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, json, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.public_url(path))).await
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.admin_url(path))).await
    }

    pub async fn admin_post(&self, path: &str, body: &str) -> Reply {
        self.send(self.http.post(self.admin_url(path)).body(body.to_owned()))
            .await
    }

    /// Sets a signal check through the admin endpoint.
    pub async fn set_signal(&self, name: &str, ready: bool) {
        let body = serde_json::json!({"ready": ready, "reason": "set by a test"}).to_string();
        let reply = self.admin_post(&format!("/signals/{name}"), &body).await;
        assert_eq!(reply.status, 204, "{}", reply.text);
    }

    /// Waits until the gate reports `ready`: the event stream starts with
    /// the current snapshot, so a change that came first is not missed.
    pub async fn until_ready(&self) {
        self.events()
            .await
            .until(|snapshot| snapshot["state"] == "ready")
            .await;
    }

    /// Opens the public event stream.
    pub async fn events(&self) -> EventStream {
        EventStream::connect(&self.public_url("/readiness/events")).await
    }

    /// Opens the public event stream as a consumer that reconnects after
    /// the event `last_event_id`, with the `Last-Event-ID` header.
    pub async fn events_after(&self, last_event_id: &str) -> EventStream {
        EventStream::connect_with(
            &self.public_url("/readiness/events"),
            &[("last-event-id", last_event_id)],
        )
        .await
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
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

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct ServerSentEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// A Server-Sent Events client over a streaming HTTP response.
pub struct EventStream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, &[]).await
    }

    /// Opens the stream with extra request headers.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = http_client().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = within("the event stream to open", request.send())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, skipping keep-alive comments; `None` when the stream
    /// ends.
    pub async fn next(&mut self) -> Option<ServerSentEvent> {
        within("the next server-sent event", async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_event(&block) {
                        return Some(event);
                    }
                    continue;
                }
                match self.body.next().await {
                    Some(chunk) => self
                        .buffer
                        .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap()),
                    None => return None,
                }
            }
        })
        .await
    }

    /// Reads events until one satisfies `what`, returning every event read.
    pub async fn until(&mut self, what: impl Fn(&Value) -> bool) -> Vec<ServerSentEvent> {
        let mut seen = Vec::new();
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended; events so far: {seen:#?}"));
            let done = what(&event.data);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn parse_event(block: &str) -> Option<ServerSentEvent> {
    let mut event = ServerSentEvent {
        event: String::new(),
        id: String::new(),
        data: Value::Null,
    };
    let mut any = false;
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event: ") {
            event.event = value.to_owned();
            any = true;
        } else if let Some(value) = line.strip_prefix("id: ") {
            event.id = value.to_owned();
        } else if let Some(value) = line.strip_prefix("data: ") {
            event.data = serde_json::from_str(value).unwrap();
        }
    }
    any.then_some(event)
}

// === WebSocket clients ===

/// A WebSocket client (tungstenite: an implementation independent of the
/// server's), with helpers that read the warmgate protocol.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Completes a WebSocket upgrade on `stream` (a raw client, for frames no
/// library would send) and reads the 101 response; panics on any other.
pub async fn raw_websocket_upgrade(
    mut stream: tokio::net::TcpStream,
    path: &str,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("the 101 response", stream.read_exact(&mut byte))
            .await
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

impl Gateway {
    /// Opens a WebSocket on the public listener, offering `warmgate.v1`.
    pub async fn ws(&self, path: &str) -> WsClient {
        self.ws_with(path, &["warmgate.v1"]).await
    }

    /// Opens a WebSocket offering the given subprotocols (none is fine).
    pub async fn ws_with(&self, path: &str, subprotocols: &[&str]) -> WsClient {
        self.ws_with_headers(path, subprotocols, &[]).await
    }

    /// Opens a WebSocket offering the given subprotocols, with extra
    /// request headers (a `traceparent`, say).
    pub async fn ws_with_headers(
        &self,
        path: &str,
        subprotocols: &[&str],
        headers: &[(&'static str, &str)],
    ) -> WsClient {
        match self.try_ws(path, subprotocols, headers).await {
            Ok(client) => client,
            Err((status, body)) => panic!("the upgrade was refused with {status}: {body}"),
        }
    }

    /// Like [`Gateway::ws_with_headers`], but a refused upgrade is the
    /// error: its HTTP status and its body (JSON when it is JSON).
    pub async fn try_ws(
        &self,
        path: &str,
        subprotocols: &[&str],
        headers: &[(&'static str, &str)],
    ) -> Result<WsClient, (u16, Value)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{}{path}", self.public);
        let mut request = url.into_client_request().unwrap();
        if !subprotocols.is_empty() {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                subprotocols.join(", ").parse().unwrap(),
            );
        }
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let connected = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await;
        let (stream, response) = match connected {
            Ok(connected) => connected,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                let text = String::from_utf8_lossy(&body).into_owned();
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                return Err((status, value));
            }
            Err(other) => panic!("the WebSocket handshake failed: {other}"),
        };
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|value| value.to_str().unwrap().to_owned());
        Ok(WsClient {
            stream,
            subprotocol,
        })
    }
}

impl WsClient {
    /// The next message from the server, skipping pings and pongs; `None`
    /// once the stream ends.
    pub async fn next_message(&mut self) -> Option<Message> {
        within("the next WebSocket message", async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(message)) => return Some(message),
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    /// The next text frame, parsed as JSON.
    pub async fn next_json(&mut self) -> Value {
        match self.next_message().await {
            Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }

    /// Reads JSON frames until one has `"type": kind`, returning them all.
    pub async fn until_type(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next_json().await;
            let done = message["type"] == kind;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Reads until the server's close frame; its code and reason.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            match self.next_message().await {
                Some(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Message::Close(None)) => return (1005, String::new()),
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    pub async fn send(&mut self, message: Message) {
        use futures_util::SinkExt;
        within("a WebSocket send", self.stream.send(message))
            .await
            .unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string())).await;
    }

    /// Sends a raw frame, for breaking the protocol on purpose.
    pub async fn send_frame(
        &mut self,
        frame: tokio_tungstenite::tungstenite::protocol::frame::Frame,
    ) {
        self.send(Message::Frame(frame)).await;
    }
}
