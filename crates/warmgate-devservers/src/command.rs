//! Running the server programs: finding them, running them as the right
//! user, capturing what they print, and waiting with a bound.
//!
//! This module knows nothing about PostgreSQL or Redis themselves; the
//! `postgres` and `redis` modules do. Signals, the user id and whether a
//! process is alive are the `process` module's, which runs no program.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{DevServerError, process};

/// How long a server may take to accept connections after it was started.
///
/// This bounds a fixture, not a test assertion: a loaded CI machine can be
/// slow to start PostgreSQL, and a generous limit costs nothing when the
/// server is quick.
pub(crate) const READINESS_LIMIT: Duration = Duration::from_secs(30);

/// How long a server may take to exit after it was told to stop.
pub(crate) const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How often a bounded wait checks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many lines of a log or of a program's output an error quotes.
const TAIL_LINES: usize = 20;

// === finding programs ===

/// Finds `program` in a directory of the `PATH`, or names the Debian
/// `package` that provides it.
pub(crate) fn find_on_path(
    program: &'static str,
    package: &'static str,
) -> Result<PathBuf, DevServerError> {
    process::find_on_path(program).ok_or(DevServerError::ProgramNotFound {
        program,
        searched: "on PATH".to_owned(),
        package,
    })
}

// === running programs ===

/// Describes `command` for a message, with `secret` (if any) masked.
pub(crate) fn describe(command: &Command, secret: Option<&str>) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|arg| {
        let arg = arg.to_string_lossy();
        match secret {
            Some(secret) if !secret.is_empty() && arg.contains(secret) => {
                arg.replace(secret, "***")
            }
            _ => arg.into_owned(),
        }
    }));
    words.join(" ")
}

/// Runs `command` to completion, feeding it `input` on stdin, and returns
/// what it printed on stdout and stderr; fails unless it exits with success.
pub(crate) fn run(
    command: &mut Command,
    input: Option<&str>,
    secret: Option<&str>,
) -> Result<String, DevServerError> {
    let output = run_unchecked(command, input, secret)?;
    let printed = printed(&output);
    if output.status.success() {
        Ok(printed)
    } else {
        Err(DevServerError::CommandFailed {
            command: describe(command, secret),
            status: output.status.to_string(),
            output: tail(&printed),
        })
    }
}

/// Runs `command` to completion, feeding it `input` on stdin, whatever its
/// exit status.
pub(crate) fn run_unchecked(
    command: &mut Command,
    input: Option<&str>,
    secret: Option<&str>,
) -> Result<Output, DevServerError> {
    let described = describe(command, secret);
    let spawn_error = |source| DevServerError::Spawn {
        command: described.clone(),
        source,
    };
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(spawn_error)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // The input is a few short lines, far below a pipe's capacity, so
        // writing it all before reading any output cannot deadlock. Dropping
        // `stdin` afterwards closes it, which ends the program's input.
        stdin.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    child.wait_with_output().map_err(spawn_error)
}

/// What a finished program printed, stdout then stderr.
pub(crate) fn printed(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

// === running as the `postgres` user ===

/// Which user the PostgreSQL programs run as.
#[derive(Debug, Clone)]
pub(crate) enum RunAs {
    /// The current user, who is not root.
    CurrentUser,
    /// The current user is root, which PostgreSQL refuses, so the programs
    /// run as the `postgres` user through `runuser`.
    PostgresUser { runuser: PathBuf },
}

impl RunAs {
    /// Decides how to run PostgreSQL's programs from the current user id.
    pub(crate) fn detect() -> Result<RunAs, DevServerError> {
        if !process::running_as_root() {
            return Ok(RunAs::CurrentUser);
        }
        if !process::user_exists("postgres")? {
            return Err(DevServerError::NoPostgresUser);
        }
        let runuser = find_on_path("runuser", "util-linux")?;
        Ok(RunAs::PostgresUser { runuser })
    }

    /// A command that runs `program` as the chosen user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::CurrentUser => Command::new(program),
            RunAs::PostgresUser { runuser } => {
                let mut command = Command::new(runuser);
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
        }
    }

    /// Makes `path` and everything under it belong to the chosen user.
    pub(crate) fn give_ownership(&self, path: &Path) -> Result<(), DevServerError> {
        match self {
            RunAs::CurrentUser => Ok(()),
            RunAs::PostgresUser { .. } => {
                let mut chown = Command::new("chown");
                chown.args([
                    OsStr::new("-R"),
                    OsStr::new("postgres:postgres"),
                    path.as_os_str(),
                ]);
                run(&mut chown, None, None).map(drop)
            }
        }
    }
}

// === pid files ===

/// Reads a pid file's first line.
pub(crate) fn read_pid_file(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

// === waiting ===

/// What one look at a starting or stopping server found.
#[derive(Debug)]
pub(crate) enum Progress {
    /// The awaited state was reached.
    Done,
    /// Not yet; look again shortly.
    NotYet,
    /// It will never be reached, for this reason.
    Failed(String),
}

/// Calls `look` every few milliseconds until it reports `Done` or `Failed`,
/// or `limit` passes; returns the reason on failure or timeout.
pub(crate) fn wait_until(
    limit: Duration,
    what: &str,
    mut look: impl FnMut() -> Progress,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match look() {
            Progress::Done => return Ok(()),
            Progress::Failed(reason) => return Err(reason),
            Progress::NotYet if Instant::now() >= deadline => {
                return Err(format!("{what} within {} s", limit.as_secs()));
            }
            #[expect(
                clippy::disallowed_methods,
                reason = "synchronous set-up code, on the caller's own thread, polling a child process that offers no event"
            )]
            Progress::NotYet => thread::sleep(POLL_INTERVAL),
        }
    }
}

// === logs ===

/// The current length of a log file, so that a later error can quote only
/// what was written after this point.
pub(crate) fn log_length(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// The last lines written to the log at `path` after byte `since`.
pub(crate) fn log_tail(path: &Path, since: u64) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return "(no log was written)".to_owned();
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(since)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return "(the log cannot be read)".to_owned();
    }
    let text = tail(&String::from_utf8_lossy(&bytes));
    if text.is_empty() {
        "(nothing)".to_owned()
    } else {
        text
    }
}

/// The last few lines of `text`.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}
