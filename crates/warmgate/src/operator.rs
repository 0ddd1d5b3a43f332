//! The operator's commands: `status`, `signal`, `drain` and `history`, each
//! one request (or two) to a running warmgate's admin listener.
//!
//! The address and token come from the same flags, variables and config
//! file as the server's (`--admin-listen`, `--config`, `admin_token_env`),
//! so on the server's host (or in its container) the commands need no
//! arguments. An unspecified address (`0.0.0.0`, `[::]`) means loopback.
//!
//! Exit codes, for scripts: 0 when the command did what it says (`status`:
//! the gate is `ready` or `degraded`); 1 when the gate is not ready
//! (`status`) or the server refused the request (`signal`: an unknown
//! signal, a bad ttl); 2 for usage errors and when the admin listener could
//! not be asked (refused connection, timeout, missing or wrong token).
//!
//! This module talks HTTP with reqwest's blocking client and renders text;
//! what the endpoints answer is decided in `warmgate-http`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use warmgate_config::AdminAccess;

/// How long one request to the admin listener may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit code: the gate is not ready, or the server refused the request.
const EXIT_NO: u8 = 1;
/// Exit code: a usage error, or the admin listener could not be asked.
const EXIT_ERROR: u8 = 2;

/// What the operator asked for.
#[derive(Debug)]
pub(crate) enum OperatorCommand {
    Status {
        json: bool,
    },
    Signal {
        name: String,
        ready: bool,
        reason: Option<String>,
        ttl: Option<String>,
    },
    Drain,
    History {
        json: bool,
    },
}

/// Runs `command` against the admin listener `access` names, printing
/// the result on stdout and errors on stderr; returns the exit code.
pub(crate) fn run(access: &AdminAccess, command: OperatorCommand) -> ExitCode {
    let admin = match AdminClient::new(access) {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match run_with(&admin, command) {
        Ok((text, code)) => {
            print!("{text}");
            ExitCode::from(code)
        }
        Err(Failure { message, code }) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Runs one command: the text to print and the exit code, or a failure.
fn run_with(admin: &AdminClient, command: OperatorCommand) -> Result<(String, u8), Failure> {
    match command {
        OperatorCommand::Status { json } => {
            let verbose = admin.get("/readiness")?;
            let code = match verbose["state"].as_str() {
                Some("ready" | "degraded") => 0,
                _ => EXIT_NO,
            };
            if json {
                return Ok((pretty(&verbose), code));
            }
            let history = admin.get("/readiness/history")?;
            Ok((render_status(&verbose, &history, SystemTime::now()), code))
        }
        OperatorCommand::Signal {
            name,
            ready,
            reason,
            ttl,
        } => {
            let mut body = json!({ "ready": ready });
            if let Some(reason) = reason {
                body["reason"] = json!(reason);
            }
            if let Some(ttl) = &ttl {
                body["ttl"] = json!(ttl);
            }
            let path = format!("/signals/{}", percent_encode(&name));
            admin.post(&path, &body)?;
            let state = if ready { "ready" } else { "not ready" };
            let lease = ttl.map_or_else(String::new, |ttl| {
                format!(" for {ttl} (set it again within that, or it turns not ready)")
            });
            Ok((format!("signal `{name}` set to {state}{lease}\n"), 0))
        }
        OperatorCommand::Drain => {
            admin.post("/drain", &Value::Null)?;
            Ok((
                "draining: readiness turned to draining; the process exits once its clients are told\n"
                    .to_owned(),
                0,
            ))
        }
        OperatorCommand::History { json } => {
            let history = admin.get("/readiness/history")?;
            if json {
                return Ok((pretty(&history), 0));
            }
            Ok((render_history(&history), 0))
        }
    }
}

/// A command that did not succeed: what to print, and the exit code.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn error(message: String) -> Failure {
        Failure {
            message,
            code: EXIT_ERROR,
        }
    }
}

/// The admin listener's address and token, and an HTTP client.
struct AdminClient {
    base: String,
    token: Option<String>,
    /// Where the token comes from, for messages: `WARMGATE_ADMIN_TOKEN
    /// (admin_token_env in /etc/warmgate.toml)`.
    token_source: Option<String>,
    /// Where the file says tokens come from that this process does not
    /// have (their variables are not set here).
    unset_tokens: Vec<String>,
    config_source: String,
    http: reqwest::blocking::Client,
}

impl AdminClient {
    /// The client for `access`: the control token when this process has
    /// it, else the read token (enough for `status` and `history`; the
    /// server refuses it for `signal` and `drain`, and the message says
    /// so).
    fn new(access: &AdminAccess) -> Result<AdminClient, String> {
        warmgate_outbound::install_crypto_provider();
        let http = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
        let held = [&access.control, &access.read]
            .into_iter()
            .flatten()
            .find_map(|credential| {
                let token = credential.token.as_ref()?;
                Some((token.expose().to_owned(), credential.from.clone()))
            });
        let (token, token_source) = match held {
            Some((token, from)) => (Some(token), Some(from)),
            None => (None, None),
        };
        // Named by the file, but not set here: worth saying on a 401.
        let unset = [&access.control, &access.read]
            .into_iter()
            .flatten()
            .filter(|credential| credential.token.is_none())
            .map(|credential| credential.from.clone())
            .collect::<Vec<_>>();
        Ok(AdminClient {
            base: format!("http://{}", connect_address(access.admin_listen)),
            token,
            token_source,
            unset_tokens: unset,
            config_source: access.source.clone(),
            http,
        })
    }

    fn get(&self, path: &str) -> Result<Value, Failure> {
        let request = self.http.get(format!("{}{path}", self.base));
        let (status, body) = self.send(request, path)?;
        if !status.is_success() {
            return Err(Failure::error(self.refusal(status, &body, path)));
        }
        serde_json::from_str(&body).map_err(|error| {
            Failure::error(format!(
                "{}{path} answered {status} with a body that is not JSON: {error}",
                self.base
            ))
        })
    }

    fn post(&self, path: &str, body: &Value) -> Result<(), Failure> {
        let request = self.http.post(format!("{}{path}", self.base));
        let request = if body.is_null() {
            request
        } else {
            request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
        };
        let (status, text) = self.send(request, path)?;
        if status.is_success() {
            return Ok(());
        }
        let message = self.refusal(status, &text, path);
        // An answer about the request itself (unknown signal, bad ttl) is
        // the server's no; an answer about the caller is an error.
        // A 404 without a body is not warmgate's no (its 404 names the
        // signal): the address is not an admin listener.
        let code = match status.as_u16() {
            401 | 403 => EXIT_ERROR,
            404 if text.trim().is_empty() => EXIT_ERROR,
            _ => EXIT_NO,
        };
        Err(Failure { message, code })
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        path: &str,
    ) -> Result<(reqwest::StatusCode, String), Failure> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().map_err(|error| {
            let what = if error.is_timeout() {
                format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
            } else if error.is_connect() {
                connect_error(&error)
            } else {
                error.without_url().to_string()
            };
            Failure::error(format!(
                "cannot reach the admin listener at {}{path}: {what}; is warmgate running there? Point at another with --admin-listen ADDR (or WARMGATE_ADMIN_LISTEN), or --config FILE (or WARMGATE_CONFIG) for its admin_listen",
                self.base
            ))
        })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        Ok((status, text))
    }

    /// Why a request was refused, with what to do for 401 and 403.
    fn refusal(&self, status: reqwest::StatusCode, body: &str, path: &str) -> String {
        let said = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|body| body["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.trim().to_owned());
        let hint = match (status.as_u16(), &self.token_source) {
            (401, Some(source)) => format!(
                "; the admin token from {source} was refused: set it to the server's admin token"
            ),
            (401, None) if !self.unset_tokens.is_empty() => format!(
                "; no admin token is set here: set {}",
                self.unset_tokens.join(", or ")
            ),
            (401, None) => format!(
                "; no admin token is configured here ({}): run with the server's config (--config FILE or WARMGATE_CONFIG) and the variable its admin_token_env names",
                self.config_source
            ),
            (403, Some(source)) => format!(
                "; the token from {source} is the read token: signals and drain need the control token (admin_token_env)"
            ),
            (404, _) if said.is_empty() => format!(
                "nothing is served there; is {} the admin listener (admin_listen), not the public one?",
                self.base
            ),
            _ => String::new(),
        };
        format!("{}{path} answered {status}: {said}{hint}", self.base)
    }
}

/// The address to connect to for a listener bound to `listen`: loopback
/// for an unspecified address.
fn connect_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    }
}

/// "connection refused", from the IO error under reqwest's.
fn connect_error(error: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                _ => io.to_string(),
            };
        }
        source = current.source();
    }
    "cannot connect".to_owned()
}

/// A signal name as one path segment.
fn percent_encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

// === Rendering ===

/// The verbose snapshot as text: the state and since when, what caused
/// it, then one row per check.
fn render_status(verbose: &Value, history: &Value, now: SystemTime) -> String {
    let mut text = String::new();
    let state = verbose["state"].as_str().unwrap_or("?");
    let elapsed_ms = verbose["elapsed_ms"].as_u64().unwrap_or(0);
    let latest = history["transitions"]
        .as_array()
        .and_then(|transitions| transitions.last());
    let (since_unix_ms, since_what) = match latest {
        Some(latest) => (latest["unix_ms"].as_u64().unwrap_or(0), ""),
        None => {
            let now_ms = unix_ms(now);
            (now_ms.saturating_sub(elapsed_ms), " (the start)")
        }
    };
    let ago = unix_ms(now).saturating_sub(since_unix_ms);
    let _ = writeln!(
        text,
        "state:    {state} since {}{since_what}, {} ago",
        rfc3339(since_unix_ms),
        human_ms(ago)
    );
    if let Some(latest) = latest {
        let _ = writeln!(text, "cause:    {}", describe_cause(&latest["cause"]));
    }
    if let Some(phase) = verbose["phase"].as_str() {
        let _ = writeln!(text, "phase:    {phase}");
    }
    let _ = writeln!(text, "pending:  {}", names(&verbose["pending"]));
    let _ = writeln!(text, "degraded: {}", names(&verbose["degraded"]));
    text.push('\n');

    let mut rows = vec![
        [
            "CHECK",
            "KIND",
            "REQUIRED",
            "STATUS",
            "FOR",
            "FAILURES",
            "LAST RESULT",
        ]
        .map(str::to_owned),
    ];
    for check in verbose["checks"].as_array().into_iter().flatten() {
        let since_ms = check["since_ms"].as_u64().unwrap_or(0);
        let attempts = check["attempts"].as_u64().unwrap_or(0);
        let last = match check["last_error"].as_str() {
            Some(error) => error.to_owned(),
            None if attempts == 0 => "no result yet".to_owned(),
            None => "ok".to_owned(),
        };
        let lease = match (
            check["lease"]["ttl_ms"].as_u64(),
            check["lease"]["expires_at_ms"].as_u64(),
        ) {
            (Some(ttl), Some(expires)) => format!(
                " (lease {}, {} left)",
                human_ms(ttl),
                human_ms(expires.saturating_sub(elapsed_ms))
            ),
            _ => String::new(),
        };
        rows.push([
            check["name"].as_str().unwrap_or("?").to_owned(),
            check["kind"].as_str().unwrap_or("?").to_owned(),
            if check["required"].as_bool().unwrap_or(true) {
                "yes".to_owned()
            } else {
                "no".to_owned()
            },
            check["status"].as_str().unwrap_or("?").to_owned(),
            human_ms(elapsed_ms.saturating_sub(since_ms)),
            check["consecutive_failures"]
                .as_u64()
                .unwrap_or(0)
                .to_string(),
            format!("{last}{lease}"),
        ]);
    }
    text.push_str(&table(&rows));
    text
}

/// The history as text, oldest first, then what the ring keeps.
fn render_history(history: &Value) -> String {
    let mut rows = vec![["TIME", "FROM", "TO", "LASTED", "CAUSE"].map(str::to_owned)];
    let transitions = history["transitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for transition in &transitions {
        let mut cause = describe_cause(&transition["cause"]);
        if let Some(error) = transition["cause"]["error"].as_str() {
            let _ = write!(cause, ": {error}");
        }
        rows.push([
            rfc3339_millis(transition["unix_ms"].as_u64().unwrap_or(0)),
            transition["from"].as_str().unwrap_or("?").to_owned(),
            transition["to"].as_str().unwrap_or("?").to_owned(),
            human_ms(transition["previous_state_ms"].as_u64().unwrap_or(0)),
            cause,
        ]);
    }
    let mut text = table(&rows);
    let _ = writeln!(
        text,
        "\n{} transition(s); the ring keeps the latest {}, {} dropped",
        transitions.len(),
        history["capacity"].as_u64().unwrap_or(0),
        history["dropped"].as_u64().unwrap_or(0)
    );
    text
}

/// ``check `redis` failed (connection_refused)``, `startup deadline
/// passed`, `drain requested`.
fn describe_cause(cause: &Value) -> String {
    match cause["kind"].as_str() {
        Some("check") => {
            let check = cause["check"].as_str().unwrap_or("?");
            let result = cause["result"].as_str().unwrap_or("?");
            match cause["error_class"].as_str() {
                Some(class) => format!("check `{check}` {result} ({class})"),
                None => format!("check `{check}` {result}"),
            }
        }
        Some("deadline") => "startup deadline passed".to_owned(),
        Some("drain") => "drain requested".to_owned(),
        _ => cause.to_string(),
    }
}

/// `database, redis`, or `-` for none.
fn names(list: &Value) -> String {
    let names: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(", ")
    }
}

/// Rows as columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[index]);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `850ms`, `12.3s`, `4m10s`, `2h03m`.
fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The time `unix_ms` names, clamped to the year 9999, the last the
/// timestamps here can show (whatever answers at the admin address sends
/// these numbers).
fn at_unix_ms(unix_ms: u64) -> SystemTime {
    const LAST_MS: u64 = 253_402_300_799_000; // 9999-12-31T23:59:59Z
    SystemTime::UNIX_EPOCH + Duration::from_millis(unix_ms.min(LAST_MS))
}

/// `2026-12-01T00:41:02Z`.
fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(at_unix_ms(unix_ms)).to_string()
}

/// `2026-12-01T00:41:02.123Z`.
fn rfc3339_millis(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(at_unix_ms(unix_ms)).to_string()
}

#[cfg(test)]
mod tests;
