//! The load generator as a child process for `chaos` and `soak`: its
//! progress lines (stderr) are relayed and can be waited on, its report
//! (stdout) is collected and read strictly (see `loadgen_report`), and
//! closing its stdin tells `chat-load` to stop.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;

use crate::server::release_program;

/// A running `warmgate-loadgen`, killed on drop unless it finished.
#[derive(Debug)]
pub(crate) struct Loadgen {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    command_line: String,
}

impl Loadgen {
    pub(crate) fn start(args: &[String]) -> anyhow::Result<Loadgen> {
        let program = release_program("warmgate-loadgen");
        let command_line = format!("warmgate-loadgen {}", args.join(" "));
        println!("$ {command_line}");
        let mut child = Command::new(&program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdin = child.stdin.take();
        let mut stdout = child
            .stdout
            .take()
            .context("the load generator has no stdout")?;
        let stderr = child
            .stderr
            .take()
            .context("the load generator has no stderr")?;
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                println!("  {line}");
                let _ = line_tx.send(line);
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Ok(Loadgen {
            child,
            stdin,
            lines,
            stdout: Some(stdout),
            command_line,
        })
    }

    /// Waits for a progress line that starts with `prefix`, for at most
    /// `limit`, and returns it.
    pub(crate) fn wait_for_line(
        &mut self,
        prefix: &str,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "the load generator did not say `{prefix}…` within {} s",
                    limit.as_secs()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the load generator ended before saying `{prefix}…`")
                }
            }
        }
    }

    /// Closes its stdin (`chat-load` stops then).
    pub(crate) fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits for it to exit, for at most `limit`, and returns its report.
    /// Output that does not read as an `R` is kept at `unread`, for a look.
    pub(crate) fn finish<R: DeserializeOwned>(
        mut self,
        limit: Duration,
        unread: &Path,
    ) -> anyhow::Result<R> {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{} took over {} s; stopped it",
                    self.command_line,
                    limit.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = self
            .stdout
            .take()
            .map(|thread| thread.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() {
            bail!(
                "{} failed ({status}); its last lines are above",
                self.command_line
            );
        }
        crate::loadgen_report::parse(&stdout).map_err(|error| {
            match std::fs::write(unread, &stdout) {
                Ok(()) => error.context(format!("its output is in {}", unread.display())),
                Err(_) => error,
            }
        })
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
