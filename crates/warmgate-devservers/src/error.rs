//! The one error type of the devservers crate.

use std::io;
use std::path::PathBuf;

/// Why a development server could not be prepared, started or stopped.
///
/// Every message names the program or path involved and, where there is
/// one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevServerError {
    /// A program the server needs is not installed.
    #[error("{program} not found {searched}: install the Debian package `{package}`")]
    ProgramNotFound {
        program: &'static str,
        searched: String,
        package: &'static str,
    },
    /// PostgreSQL refuses to run as root, and there is no `postgres` user to
    /// run it as instead.
    #[error(
        "running as root, which PostgreSQL refuses, and there is no `postgres` user to run it as: \
         install the Debian package `postgresql` (it creates that user) or run as an unprivileged user"
    )]
    NoPostgresUser,
    /// The `postgres` user cannot reach the server's directory.
    #[error(
        "the `postgres` user cannot enter `{directory}` (mode {mode:o}), so PostgreSQL cannot reach its data: \
         make it traversable (`chmod o+x`) or put the server under /tmp"
    )]
    DirectoryNotTraversable { directory: PathBuf, mode: u32 },
    /// A file system operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A signal could not be sent to a process.
    #[error("cannot send {signal} to process {pid}")]
    Signal {
        signal: crate::process::Signal,
        pid: u32,
        #[source]
        source: io::Error,
    },
    /// A program could not be started at all.
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    /// A program ran and failed.
    #[error("`{command}` failed ({status}); it printed:\n{output}")]
    CommandFailed {
        command: String,
        status: String,
        output: String,
    },
    /// A server was started but never accepted connections.
    #[error(
        "{server} did not start on 127.0.0.1:{port}: {reason}\nits log `{}` ends with:\n{log_tail}",
        log_file.display()
    )]
    StartFailed {
        server: &'static str,
        port: u16,
        reason: String,
        log_file: PathBuf,
        log_tail: String,
    },
    /// A server was asked to stop and did not.
    #[error("{server} (pid {pid}) on 127.0.0.1:{port} did not stop: {reason}")]
    StopFailed {
        server: &'static str,
        pid: u32,
        port: u16,
        reason: String,
    },
    /// A server was asked to start while it is running.
    #[error("{server} on 127.0.0.1:{port} is already running (pid {pid})")]
    AlreadyRunning {
        server: &'static str,
        port: u16,
        pid: u32,
    },
    /// No free port could be reserved on loopback.
    #[error("cannot find a free port on 127.0.0.1")]
    NoFreePort(#[source] io::Error),
    /// The settings file of an existing server is missing a value or malformed.
    #[error("`{}` is not a usable devserver settings file: {reason}", path.display())]
    BadSettingsFile { path: PathBuf, reason: String },
    /// A signing key could not be made, read or used.
    #[error("signing key: {reason}")]
    SigningKey { reason: String },
    /// A line a server printed is not the serving line that says where it
    /// listens (see [`crate::serving`]).
    #[error(
        "{line:?} is not a serving line (`NAME: serving http://ADDR`, then ` (admin http://ADDR)` for warmgate): {reason}"
    )]
    NotAServingLine { line: String, reason: String },
}

impl DevServerError {
    /// True when the server could not bind its port because something else
    /// took it after the port was picked, so another port may well work.
    pub(crate) fn is_port_taken(&self) -> bool {
        matches!(self, DevServerError::StartFailed { log_tail, reason, .. }
            if log_tail.contains("Address already in use") || reason.contains("Address already in use"))
    }
}
