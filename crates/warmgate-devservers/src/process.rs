//! Asking the operating system about processes, users and programs without
//! running another program: sending a signal to a process, whether a
//! process is alive, the current user id, whether a user exists, and where
//! a program is on the `PATH`.
//!
//! The workspace forbids unsafe code; `rustix` makes the system calls
//! safely. This module starts no process and knows nothing about the
//! servers; `command` runs programs, and `postgres` and `redis` use both.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rustix::process::{Pid, Signal as RawSignal};

use crate::DevServerError;

/// The signals the servers and tools of this workspace are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: PostgreSQL rereads its settings.
    Hangup,
    /// SIGINT: what Ctrl-C sends.
    Interrupt,
    /// SIGKILL: the process ends at once, as in a crash.
    Kill,
    /// SIGTERM: the process shuts down cleanly, as on a platform's stop.
    Terminate,
    /// SIGSTOP: the process hangs until it is continued.
    Stop,
    /// SIGCONT: a stopped process runs again.
    Continue,
}

impl Signal {
    /// The signal's name without its `SIG` prefix, as `kill -TERM` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "HUP",
            Signal::Interrupt => "INT",
            Signal::Kill => "KILL",
            Signal::Terminate => "TERM",
            Signal::Stop => "STOP",
            Signal::Continue => "CONT",
        }
    }

    fn raw(self) -> RawSignal {
        match self {
            Signal::Hangup => RawSignal::HUP,
            Signal::Interrupt => RawSignal::INT,
            Signal::Kill => RawSignal::KILL,
            Signal::Terminate => RawSignal::TERM,
            Signal::Stop => RawSignal::STOP,
            Signal::Continue => RawSignal::CONT,
        }
    }
}

impl fmt::Display for Signal {
    /// `SIGTERM`, `SIGKILL`, ….
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

// === processes ===

/// The process id `pid` as the kernel takes it, or `None` for 0 and for
/// numbers past `i32::MAX`, which as a negative pid would reach a whole
/// process group (or, for -1, every process this user may signal).
fn kernel_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// Sends `signal` to process `pid` (one process, never a group).
pub fn send_signal(pid: u32, signal: Signal) -> Result<(), DevServerError> {
    let failed = |source| DevServerError::Signal {
        signal,
        pid,
        source,
    };
    let target = kernel_pid(pid).ok_or_else(|| failed(io::ErrorKind::InvalidInput.into()))?;
    rustix::process::kill_process(target, signal.raw()).map_err(|errno| failed(errno.into()))
}

/// True while process `pid` exists and has not exited.
///
/// A process that has exited but was not yet reaped (a zombie) counts as
/// gone: in a container whose first process never reaps orphans, a killed
/// daemon stays a zombie forever, and `kill(pid, 0)` would call it alive.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, fields)| !fields.trim_start().starts_with('Z')),
        Err(_) if Path::new("/proc/self").exists() => false,
        // Without a /proc file system, `kill(pid, 0)` is the next best
        // question; a process of another user answers EPERM and exists.
        Err(_) => {
            kernel_pid(pid).is_some_and(|target| match rustix::process::test_kill_process(target) {
                Ok(()) => true,
                Err(errno) => errno == rustix::io::Errno::PERM,
            })
        }
    }
}

// === users ===

/// The effective user id of this process: the one permissions are checked
/// against, and what `id -u` prints.
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// True when this process runs as root (PostgreSQL refuses to, for one).
pub fn running_as_root() -> bool {
    current_uid() == 0
}

/// True when `/etc/passwd` has a user named `name`.
///
/// Only the local user database is read: a user that only a directory
/// service (NSS, LDAP) knows is not found. The users asked about here, such
/// as `postgres`, are made locally by their Debian packages, and reading
/// the file needs neither unsafe code nor a C library call.
pub fn user_exists(name: &str) -> Result<bool, DevServerError> {
    let path = Path::new("/etc/passwd");
    match fs::read_to_string(path) {
        Ok(passwd) => Ok(passwd_has_user(&passwd, name)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DevServerError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// True when a line of `passwd` (the `/etc/passwd` format, `name:x:uid:…`)
/// names the user `name`.
fn passwd_has_user(passwd: &str, name: &str) -> bool {
    !name.is_empty()
        && passwd
            .lines()
            .filter(|line| !line.starts_with('#'))
            .any(|line| line.split(':').next() == Some(name))
}

// === programs ===

/// The first executable file named `program` in a directory of the `PATH`,
/// as a shell would find it.
///
/// Written here rather than taken from a crate: it is a few lines, and the
/// crates that do it bring several dependencies for platforms this
/// workspace does not run on.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|directory| directory.join(program))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests;
