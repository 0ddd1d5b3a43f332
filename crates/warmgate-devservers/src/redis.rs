//! [`Redis`]: a throwaway `redis-server` on a loopback port.
//!
//! The server keeps everything in a directory of the caller's choosing:
//!
//! ```text
//! <directory>/redis.log           the server's log, appended to by each start
//! <directory>/redis.pid           the server's pid while it runs
//! <directory>/devserver.settings  port and password, for `Redis::open_existing`
//! ```
//!
//! It never persists anything (`--save ""`, `--appendonly no`), so a
//! restarted server starts empty. Questions to the server are RESP spoken
//! over a `TcpStream`, after `AUTH` when there is a password: a started
//! server is ready once the server on its port reports its pid (`INFO
//! server`), and [`Redis::is_accepting_connections`] is a plain `PING`.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::DevServerError;
use crate::command::{self, Progress};
use crate::ephemeral::free_loopback_port;
use crate::process::{self, Signal};
use crate::settings_file::{Settings, write_settings};

/// The name `Redis` uses for itself in messages and settings files.
const SERVER: &str = "redis-server";
const KIND: &str = "redis";

/// How many fresh ports `start_new` tries when another process takes the
/// picked port before the server binds it.
const PORT_ATTEMPTS: usize = 3;

/// How long one question to the server (`PING`, `INFO`) may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// A `redis-server` on `127.0.0.1`, with or without a password.
///
/// The port stays the same for the server's whole life, across
/// [`Redis::stop`], [`Redis::kill`] and [`Redis::start`].
///
/// The server is a child process that never daemonizes. A detached one
/// ([`Redis::start_new_detached`]) runs in its own process group, so that a
/// Ctrl-C meant for this process does not reach it and it outlives this
/// process. A handle that started the server kills it when dropped, unless
/// [`Redis::leave_running`] was called; a handle made by
/// [`Redis::open_existing`] never does.
#[derive(Debug)]
pub struct Redis {
    directory: PathBuf,
    port: u16,
    password: Option<String>,
    program: PathBuf,
    detached: bool,
    process: RedisProcess,
    stop_on_drop: bool,
}

/// How this handle knows the server process.
#[derive(Debug)]
enum RedisProcess {
    /// This handle started it; `None` once it has ended.
    Child(Option<Child>),
    /// Another handle, perhaps in another process, started it; its pid is
    /// in its pid file while it runs.
    Found,
}

// === impl Redis ===

impl Redis {
    /// Starts a server as a child of this process, keeping its files in
    /// `directory`, on a free loopback port, requiring `password` if given;
    /// returns once it answers.
    pub fn start_new(directory: &Path, password: Option<&str>) -> Result<Redis, DevServerError> {
        Redis::start_new_with(directory, password, false)
    }

    /// Like [`Redis::start_new`], but the server runs in its own process
    /// group, so it outlives this process once the handle is passed to
    /// [`Redis::leave_running`].
    pub fn start_new_detached(
        directory: &Path,
        password: Option<&str>,
    ) -> Result<Redis, DevServerError> {
        Redis::start_new_with(directory, password, true)
    }

    /// Finds the server that an earlier call (perhaps in another process)
    /// started with its files in `directory`, running or not. Starting it
    /// again through this handle starts it detached.
    ///
    /// The returned handle never stops the server on drop.
    pub fn open_existing(directory: &Path) -> Result<Redis, DevServerError> {
        let settings = Settings::read(directory, KIND)?;
        Ok(Redis {
            directory: directory.to_owned(),
            port: settings.get_port("port")?,
            password: settings.get_optional("password").map(str::to_owned),
            program: find_redis_server()?,
            detached: true,
            process: RedisProcess::Found,
            stop_on_drop: false,
        })
    }

    /// Starts the server again on its port and returns once it answers.
    /// It starts empty.
    ///
    /// "Answers" means that the server on the port reports this server's
    /// pid, so another server that took the port is never mistaken for it.
    pub fn start(&mut self) -> Result<(), DevServerError> {
        if let Some(pid) = self.running_pid() {
            return Err(DevServerError::AlreadyRunning {
                server: SERVER,
                port: self.port,
                pid,
            });
        }
        let port = self.port;
        let log_file = self.log_file();
        let log_start = command::log_length(&log_file);
        let start_failed = |reason: String| DevServerError::StartFailed {
            server: SERVER,
            port,
            reason,
            log_file: log_file.clone(),
            log_tail: command::log_tail(&log_file, log_start),
        };
        // A pid file left by a killed server would name a dead process.
        let _ = fs::remove_file(self.pid_file());
        let log_error = |source| DevServerError::Io {
            action: "open the redis-server log",
            path: log_file.clone(),
            source,
        };
        // The server logs to stdout; sending stdout and stderr to the log
        // file keeps the errors it prints before logging is set up too.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(log_error)?;
        let log_for_stderr = log.try_clone().map_err(log_error)?;
        let mut redis_server = self.command();
        redis_server
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr);
        if self.detached {
            redis_server.process_group(0);
        }
        let mut child = redis_server
            .spawn()
            .map_err(|source| DevServerError::Spawn {
                command: command::describe(&redis_server, self.password.as_deref()),
                source,
            })?;
        let pid = child.id();
        let password = self.password.as_deref();
        let ready =
            command::wait_until(
                command::READINESS_LIMIT,
                "it did not answer",
                || match child.try_wait() {
                    Ok(Some(status)) => Progress::Failed(format!("it exited ({status})")),
                    Err(error) => Progress::Failed(format!("cannot wait for it: {error}")),
                    Ok(None) if reported_pid(port, password) == Some(pid) => Progress::Done,
                    Ok(None) => Progress::NotYet,
                },
            );
        self.process = RedisProcess::Child(Some(child));
        if let Err(reason) = ready {
            // A server that never became ready is of no use, and one that
            // lingers would hold the port.
            let _ = self.kill();
            return Err(start_failed(reason));
        }
        Ok(())
    }

    /// Stops the server the polite way (SIGTERM) and waits until it has
    /// exited. Stopping a server that is not running does nothing.
    pub fn stop(&mut self) -> Result<(), DevServerError> {
        self.end(Signal::Terminate)
    }

    /// Kills the server at once (SIGKILL), as a crash would, and waits until
    /// it has exited. Killing a server that is not running does nothing.
    pub fn kill(&mut self) -> Result<(), DevServerError> {
        self.end(Signal::Kill)
    }

    /// The URL of the server: `redis://:PASSWORD@127.0.0.1:PORT/` with a
    /// password, `redis://127.0.0.1:PORT/` without one.
    ///
    /// Client libraries read the empty user name as "no user name".
    /// `redis-cli -u` (7.0) does not: it sends `AUTH "" PASSWORD`, which
    /// fails; give it `-a PASSWORD` or `redis://default:PASSWORD@…` instead.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => self.url_with_password(password),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The URL of the server with `password`, right or wrong, for testing
    /// what a wrong credential does.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/", self.port)
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running_pid()
    }

    /// The directory that holds the server's log, pid file and settings.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.directory.join("redis.log")
    }

    /// True when a server on the port answers `PING` (after `AUTH` when
    /// there is a password) right now.
    pub fn is_accepting_connections(&self) -> bool {
        answers_ping(self.port, self.password.as_deref())
    }

    /// Consumes the handle without stopping the server, so that a detached
    /// server outlives this process (as `cargo xtask deps up` needs).
    pub fn leave_running(mut self) {
        self.stop_on_drop = false;
    }

    // === private ===

    fn start_new_with(
        directory: &Path,
        password: Option<&str>,
        detached: bool,
    ) -> Result<Redis, DevServerError> {
        let program = find_redis_server()?;
        fs::create_dir_all(directory).map_err(|source| DevServerError::Io {
            action: "create the redis-server directory",
            path: directory.to_owned(),
            source,
        })?;
        // The server changes into `--dir`, so every path it is given must
        // be absolute.
        let directory = fs::canonicalize(directory).map_err(|source| DevServerError::Io {
            action: "resolve the redis-server directory",
            path: directory.to_owned(),
            source,
        })?;
        let mut redis = Redis {
            directory,
            port: free_loopback_port()?,
            password: password.map(str::to_owned),
            program,
            detached,
            process: RedisProcess::Child(None),
            stop_on_drop: true,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            redis.write_settings()?;
            match redis.start() {
                // The port was free when picked but another process took it
                // before the server bound it; a new port fixes that.
                Err(error) if error.is_port_taken() && attempt < PORT_ATTEMPTS => {
                    redis.port = free_loopback_port()?;
                }
                result => return result.map(|()| redis),
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// The server's command line.
    fn command(&self) -> Command {
        let mut redis_server = Command::new(&self.program);
        redis_server
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.directory)
            .arg("--pidfile")
            .arg(self.pid_file());
        if let Some(password) = &self.password {
            redis_server.arg("--requirepass").arg(password);
        }
        redis_server.current_dir(&self.directory);
        redis_server
    }

    fn pid_file(&self) -> PathBuf {
        self.directory.join("redis.pid")
    }

    /// The pid of the server if it is running.
    fn running_pid(&self) -> Option<u32> {
        let pid = match &self.process {
            RedisProcess::Child(child) => child.as_ref().map(Child::id),
            RedisProcess::Found => command::read_pid_file(&self.pid_file()),
        };
        pid.filter(|&pid| process::is_alive(pid))
    }

    /// Sends `signal` to the server and waits until it has exited.
    fn end(&mut self, signal: Signal) -> Result<(), DevServerError> {
        let Some(pid) = self.running_pid() else {
            self.forget_child();
            return Ok(());
        };
        process::send_signal(pid, signal)?;
        let waited = command::wait_until(command::STOP_LIMIT, "it did not exit", || {
            match &mut self.process {
                // Waiting on a child reaps it, so no zombie is left behind.
                RedisProcess::Child(Some(child)) => match child.try_wait() {
                    Ok(Some(_)) => Progress::Done,
                    Ok(None) => Progress::NotYet,
                    Err(error) => Progress::Failed(format!("cannot wait for it: {error}")),
                },
                _ if process::is_alive(pid) => Progress::NotYet,
                _ => Progress::Done,
            }
        });
        if waited.is_ok() {
            self.forget_child();
            // A killed server leaves its pid file behind.
            let _ = fs::remove_file(self.pid_file());
        }
        waited.map_err(|reason| DevServerError::StopFailed {
            server: SERVER,
            pid,
            port: self.port,
            reason,
        })
    }

    /// Reaps and forgets a child that has exited.
    fn forget_child(&mut self) {
        if let RedisProcess::Child(slot) = &mut self.process
            && let Some(mut child) = slot.take()
        {
            let _ = child.try_wait();
        }
    }

    fn write_settings(&self) -> Result<(), DevServerError> {
        write_settings(
            &self.directory,
            KIND,
            &[
                ("port", &self.port.to_string()),
                ("password", self.password.as_deref().unwrap_or("")),
            ],
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Errors cannot be reported from a drop, and the server's data
            // is never kept, so there is nothing to lose by killing it.
            let _ = self.kill();
        }
    }
}

fn find_redis_server() -> Result<PathBuf, DevServerError> {
    command::find_on_path("redis-server", "redis-server")
}

/// True when a Redis server on `port` answers `PING` with `PONG`, after
/// authenticating with `password` if given.
pub(crate) fn answers_ping(port: u16, password: Option<&str>) -> bool {
    let ping = || -> std::io::Result<bool> {
        let Some(mut reply) = send_authenticated(port, password, &["PING"])? else {
            return Ok(false);
        };
        let mut line = String::new();
        reply.read_line(&mut line)?;
        Ok(line.trim_end() == "+PONG")
    };
    ping().unwrap_or(false)
}

/// The pid that the Redis server on `port` reports (`INFO server`), after
/// authenticating with `password` if given; `None` when nothing answers or
/// the answer is not understood.
pub(crate) fn reported_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let info = || -> std::io::Result<Option<u32>> {
        let Some(mut reply) = send_authenticated(port, password, &["INFO", "server"])? else {
            return Ok(None);
        };
        // The reply is one bulk string: `$LENGTH\r\n`, then that many bytes
        // of `key:value\r\n` lines.
        let mut header = String::new();
        reply.read_line(&mut header)?;
        let Some(length) = header
            .trim_end()
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
        else {
            return Ok(None);
        };
        let mut body = vec![0; length];
        reply.read_exact(&mut body)?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok()))
    };
    info().ok().flatten()
}

/// Connects to the server on `port`, authenticates with `password` if
/// given, and sends `words`; returns the connection positioned at the
/// reply, or `None` when authentication was refused.
fn send_authenticated(
    port: u16,
    password: Option<&str>,
    words: &[&str],
) -> std::io::Result<Option<BufReader<TcpStream>>> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, REPLY_TIMEOUT)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let mut request = Vec::new();
    if let Some(password) = password {
        request.extend(resp_command(&["AUTH", password]));
    }
    request.extend(resp_command(words));
    stream.write_all(&request)?;
    let mut reply = BufReader::new(stream);
    if password.is_some() {
        // `AUTH` answers with a one-line simple string or error.
        let mut line = String::new();
        reply.read_line(&mut line)?;
        if line.trim_end() != "+OK" {
            return Ok(None);
        }
    }
    Ok(Some(reply))
}

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn resp_command(words: &[&str]) -> Vec<u8> {
    let mut encoded = format!("*{}\r\n", words.len());
    for word in words {
        encoded.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    encoded.into_bytes()
}
