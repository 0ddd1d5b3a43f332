//! What a measurement ran on, and when: the machine, the date and the
//! commit, for the reports of `bench`, `chaos` and `soak`.

use std::fmt;
use std::process::Command;

use serde_json::{Value, json};

use crate::command::workspace_root;

/// The machine's cores, CPU model, memory and kernel.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    pub(crate) kernel: String,
}

impl Machine {
    /// Reads this machine; anything unreadable is `unknown`.
    pub(crate) fn read() -> Machine {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or_else(
                || "unknown".to_owned(),
                |kib| format!("{} GiB", kib / (1024 * 1024)),
            );
        let kernel = command_output("uname", &["-sr"]).unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cores,
            cpu,
            memory,
            kernel,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "cores": self.cores, "cpu": self.cpu, "kernel": self.kernel, "memory": self.memory })
    }
}

impl fmt::Display for Machine {
    /// One line: `2 cores (CPU), 24 GiB, Linux 6.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cores ({}), {} memory, {}",
            self.cores, self.cpu, self.memory, self.kernel
        )
    }
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    command_output("date", &["-u", "+%Y-%m-%d"]).unwrap_or_else(|| "unknown".to_owned())
}

/// The date and time (UTC), `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn now_utc() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".to_owned())
}

/// The commit the tree is at, with `+ uncommitted changes` when it has some.
pub(crate) fn revision() -> String {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        command_output("git", &["status", "--porcelain"]).is_some_and(|status| !status.is_empty());
    if dirty {
        format!("{commit} + uncommitted changes")
    } else {
        commit
    }
}

/// What a command prints on stdout, trimmed, when it succeeds.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
