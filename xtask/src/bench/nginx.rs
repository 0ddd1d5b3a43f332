//! nginx as the benchmarks' comparison proxy: its config (the usual
//! WebSocket reverse proxy in front of one upstream), and the process,
//! started in the foreground on a free loopback port, its processes found
//! for their memory, and stopped with SIGTERM.
//!
//! Installing nginx is `prerequisites`' job; the scenarios that use it are
//! in `proxy`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use warmgate_devservers::process::{self, Signal};

use crate::net::free_loopback_address;
use crate::server::http_request;

/// How long nginx may take to answer `/readyz` through to its upstream.
const START_WAIT: Duration = Duration::from_secs(15);

/// How long nginx may take to exit after SIGTERM (a fast shutdown).
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// How many free ports to try when another process takes the one picked
/// before nginx binds it.
const PORT_TRIES: usize = 3;

/// Connections per worker: both sides of a proxied WebSocket count, so
/// this is room for ten thousand clients on one worker.
pub(super) const WORKER_CONNECTIONS: usize = 20_000;

/// The nginx config of one run: `workers` worker processes, listening on
/// `listen` and proxying every path to the WebSocket (and HTTP) server
/// `upstream`, with its error log, pid file and temporary files under
/// `dir`.
///
/// It is the usual WebSocket reverse proxy: HTTP/1.1 to the upstream with
/// the `Upgrade` and `Connection` headers passed on, `Host` and the
/// `X-Forwarded-*` headers set as warmgate sets them, long read and send
/// timeouts so that a quiet connection is not cut, no access log (warmgate
/// writes none per connection either), `TCP_NODELAY` and warmgate's listen
/// backlog.
pub(super) fn config(
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    workers: usize,
) -> String {
    let dir = dir.display();
    let mut text = String::new();
    let _ = write!(
        text,
        r#"# Written by `cargo xtask bench`; regenerated for every run.
worker_processes {workers};
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;

events {{
    worker_connections {WORKER_CONNECTIONS};
}}

http {{
    access_log off;
    tcp_nodelay on;
    client_body_temp_path {dir}/temp/client_body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;

    server {{
        listen {listen} backlog=4096;

        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"#
    );
    text
}

/// The nginx the benchmarks run, and how many workers it gets.
#[derive(Debug, Clone)]
pub(super) struct Program {
    pub(super) path: PathBuf,
    /// `nginx/1.22.1`.
    pub(super) version: String,
    pub(super) workers: usize,
}

impl Program {
    /// nginx, installed first if it is missing (see `prerequisites`), with
    /// one worker per core: as many as warmgate's runtime has worker
    /// threads (tokio starts one per core), so that neither can use more of
    /// the machine than the other.
    pub(super) fn find() -> anyhow::Result<Program> {
        let path = crate::prerequisites::ensure_program("nginx")?;
        Ok(Program {
            version: version(&path),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            path,
        })
    }
}

/// `nginx/1.22.1`, from `nginx -v`; `nginx` when it says nothing readable.
fn version(program: &Path) -> String {
    Command::new(program)
        .arg("-v")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stderr).into_owned();
            text.trim()
                .strip_prefix("nginx version: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "nginx".to_owned())
}

/// A running nginx (its master process in the foreground), stopped on drop
/// unless it was stopped.
#[derive(Debug)]
pub(super) struct Nginx {
    master: Child,
    pub(super) public: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts `program` with `workers` workers in front of `upstream`, its
    /// files under `dir`, and waits until `GET /readyz` through it answers
    /// 200 (the upstream's static handler).
    pub(super) fn start(
        program: &Path,
        dir: &Path,
        upstream: SocketAddr,
        workers: usize,
    ) -> anyhow::Result<Nginx> {
        std::fs::create_dir_all(dir.join("temp"))
            .with_context(|| format!("cannot create {}", dir.join("temp").display()))?;
        let mut last_error = None;
        for _ in 0..PORT_TRIES {
            let listen = free_loopback_address().context("no port for nginx")?;
            match Nginx::start_on(program, dir, listen, upstream, workers) {
                Ok(nginx) => return Ok(nginx),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nginx did not start")))
    }

    fn start_on(
        program: &Path,
        dir: &Path,
        listen: SocketAddr,
        upstream: SocketAddr,
        workers: usize,
    ) -> anyhow::Result<Nginx> {
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config(dir, listen, upstream, workers))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let error_log = dir.join("error.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&error_log)
            .with_context(|| format!("cannot open {}", error_log.display()))?;
        let master = Command::new(program)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(&error_log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut nginx = Nginx {
            master,
            public: listen,
            dir: dir.to_owned(),
        };
        nginx.wait_until_proxying()?;
        Ok(nginx)
    }

    /// Polls `GET /readyz` through nginx until it answers 200.
    fn wait_until_proxying(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.master.try_wait()? {
                bail!(
                    "nginx exited ({status}) before serving on {}; its log {} says why",
                    self.public,
                    self.dir.join("error.log").display()
                );
            }
            if matches!(
                http_request(self.public, "GET", "/readyz", None),
                Ok((200, _))
            ) {
                return Ok(());
            }
            if started.elapsed() > START_WAIT {
                bail!(
                    "GET http://{}/readyz through nginx did not answer 200 within {} s; its log is {}",
                    self.public,
                    START_WAIT.as_secs(),
                    self.dir.join("error.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's process id and its workers', for their memory.
    pub(super) fn pids(&self) -> Vec<u32> {
        let master = self.master.id();
        let mut pids = vec![master];
        pids.extend(children(master));
        pids
    }

    /// Sends SIGTERM (a fast shutdown) and waits for the master to exit;
    /// it waits for its workers first.
    pub(super) fn stop(&mut self) -> anyhow::Result<()> {
        if self.master.try_wait()?.is_some() {
            return Ok(());
        }
        let workers = children(self.master.id());
        process::send_signal(self.master.id(), Signal::Terminate)?;
        let asked = Instant::now();
        while self.master.try_wait()?.is_none() {
            if asked.elapsed() > EXIT_WAIT {
                for pid in workers {
                    let _ = process::send_signal(pid, Signal::Kill);
                }
                let _ = self.master.kill();
                let _ = self.master.wait();
                bail!(
                    "nginx did not exit within {} s of SIGTERM; killed it",
                    EXIT_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The processes whose parent is `parent`, from `/proc`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
                == Some(parent)
        })
        .collect()
}

/// The parent's process id in a `/proc/PID/stat` line: the second field
/// after the command, which is in parentheses and may hold spaces or
/// parentheses itself.
fn parent_of(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests;
