//! The instruction counts (I1 to I3): each server runs under valgrind's
//! callgrind, and the instructions it executes (all its threads) are
//! counted over a measured stretch of traffic, then divided by the
//! connections, messages or clients in it.
//!
//! The stretch is marked by the load generator's `--wait-for-go`: once its
//! warm-up is done it says `measuring` on stderr and waits; the harness
//! zeroes the counters (`callgrind_control -z`), lets it go on, and once it
//! has exited dumps them (`callgrind_control -d`) and reads the dump's
//! `totals:` line. Every server runs with one runtime worker
//! (`TOKIO_WORKER_THREADS=1`): with two, how the workers share the work
//! moves the count by a few percent from run to run; with one, it repeats
//! to under 1 %, so each is taken once, with the tungstenite client.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use warmgate_loadgen::report::{ConnectReport, EchoReport, HoldReport};

use super::report::Row;
use super::{Bench, Subject};
use crate::loadgen_report;
use crate::plans::{HELD_WITH_ROOM, READY};
use crate::server::{Server, release_program, wait_until_ready_within};

/// How long a server under valgrind (some 50 times slower) may take to say
/// where it serves, and then to answer `/readyz` with 200.
const START_WAIT: Duration = Duration::from_secs(180);

/// The longest one load generator run against a server under valgrind may
/// take.
const LOADGEN_LIMIT: Duration = Duration::from_secs(600);

/// How long a server under valgrind may take to exit after SIGTERM.
const EXIT_WAIT: Duration = Duration::from_secs(60);

/// The pause between the load generator's exit and the dump, in which the
/// server finishes with the last connection's close.
const SETTLE: Duration = Duration::from_millis(500);

/// The warm-up connects before I1's counted ones.
const CONNECT_WARMUP: usize = 20;

/// What the counted traffic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// Sequential connects to `/ws`, each to its `ready` frame, then closed.
    Connect,
    /// Echo round trips on one `/echo` connection.
    Echo,
    /// Held clients on `/ws` released by a signal (warmgate only).
    Release,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Connect => "connect",
            Workload::Echo => "echo",
            Workload::Release => "release",
        }
    }

    /// What one unit of the count is, in figure names.
    fn unit(self) -> &'static str {
        match self {
            Workload::Connect => "per_connection",
            Workload::Echo => "per_message",
            Workload::Release => "per_client",
        }
    }
}

/// One server under callgrind; killed on drop unless it was stopped.
struct Profiled {
    server: Server,
    /// callgrind's output file; `-d` dumps to it with `.1` added.
    out_file: PathBuf,
    callgrind_control: PathBuf,
}

impl Profiled {
    /// Starts `program` with `args` under callgrind, with one runtime
    /// worker, and waits until it says where it serves (`NAME: serving
    /// http://ADDR`); its stderr and valgrind's go to `stem.log`,
    /// callgrind's counts to `stem.callgrind`.
    fn start(
        tools: &Tools,
        program: &Path,
        args: &[String],
        name: &str,
        stem: &Path,
    ) -> anyhow::Result<Profiled> {
        let out_file = stem.with_extension("callgrind");
        let mut command = Command::new(&tools.valgrind);
        command
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(program)
            .args(args)
            .env("TOKIO_WORKER_THREADS", "1")
            .stdin(Stdio::null());
        let server = Server::spawn_within(command, name, &stem.with_extension("log"), START_WAIT)
            .with_context(|| format!("{name} under valgrind"))?;
        Ok(Profiled {
            server,
            out_file,
            callgrind_control: tools.callgrind_control.clone(),
        })
    }

    fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Polls `GET /readyz` until it answers 200.
    fn wait_until_ready(&self) -> anyhow::Result<()> {
        wait_until_ready_within(self.server.public, START_WAIT)
    }

    /// Runs `callgrind_control FLAG PID` (`-z` zeroes, `-d` dumps).
    fn control(&self, flag: &str) -> anyhow::Result<()> {
        let output = Command::new(&self.callgrind_control)
            .args([flag, &self.pid().to_string()])
            .output()
            .context("cannot run callgrind_control")?;
        if !output.status.success() {
            bail!(
                "callgrind_control {flag} {} failed ({}): {}{}",
                self.pid(),
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit (callgrind writes its files
    /// first).
    fn stop(&mut self) -> anyhow::Result<()> {
        self.server.stop_within(EXIT_WAIT)?;
        Ok(())
    }

    /// The instructions counted between the zeroing and the dump.
    fn dumped_total(&self) -> anyhow::Result<u64> {
        let mut dump = self.out_file.clone().into_os_string();
        dump.push(".1");
        let dump = PathBuf::from(dump);
        let text = std::fs::read_to_string(&dump)
            .with_context(|| format!("cannot read callgrind's dump {}", dump.display()))?;
        callgrind_total(&text).with_context(|| format!("no `totals:` line in {}", dump.display()))
    }
}

/// The programs this needs, installed first if missing.
struct Tools {
    valgrind: PathBuf,
    callgrind_control: PathBuf,
}

impl Bench {
    /// I1 to I3: instructions per admitted connection, per echoed message,
    /// and per released held client.
    pub(super) fn instructions(&mut self) -> anyhow::Result<Vec<Row>> {
        let tools = Tools {
            valgrind: crate::prerequisites::ensure_program("valgrind")?,
            callgrind_control: crate::prerequisites::ensure_program("callgrind_control")?,
        };
        let warmgate_connect =
            self.count_instructions(&tools, Workload::Connect, Subject::Warmgate)?;
        let reference_connect =
            self.count_instructions(&tools, Workload::Connect, Subject::Reference)?;
        let floor_connect = self.count_instructions(&tools, Workload::Connect, Subject::Floor)?;
        let warmgate_echo = self.count_instructions(&tools, Workload::Echo, Subject::Warmgate)?;
        let reference_echo = self.count_instructions(&tools, Workload::Echo, Subject::Reference)?;
        let floor_echo = self.count_instructions(&tools, Workload::Echo, Subject::Floor)?;
        let release = self.count_instructions(&tools, Workload::Release, Subject::Warmgate)?;
        let connects = self.sizes.instruction_connects;
        let echoes = self.sizes.instruction_echoes;
        let held = self.sizes.instruction_held_clients;
        Ok(vec![
            Row::ratio(
                "I1",
                &format!(
                    "instructions per admitted connection ({connects} sequential connects to `/ws`): TCP accept, upgrade, `ready` frame, the client's close"
                ),
                "instructions",
                warmgate_connect,
                ("reference", reference_connect),
                1.50,
            ),
            Row::compared(
                "I1 (floor check)",
                "instructions per admitted connection: the reference (fastwebsockets on axum, in the warmgate column) against the floor (fastwebsockets on hyper alone)",
                "instructions",
                reference_connect,
                ("floor", floor_connect),
            ),
            Row::compared(
                "I2",
                &format!(
                    "instructions per echoed message ({echoes} round trips of 43 B on `/echo`)"
                ),
                "instructions",
                warmgate_echo,
                ("reference", reference_echo),
            ),
            Row::compared(
                "I2 (floor check)",
                "instructions per echoed message: the reference (in the warmgate column) against the floor",
                "instructions",
                reference_echo,
                ("floor", floor_echo),
            ),
            Row::measured(
                "I3",
                &format!(
                    "instructions per released held client ({held} held on `/ws`, released by a signal, then closed)"
                ),
                "instructions",
                release,
            ),
        ])
    }

    /// Counts the instructions `subject` executes on `workload`'s measured
    /// traffic, divided by its units; keeps the total, the count and the
    /// quotient as figures `instructions.WORKLOAD.SUBJECT.*`.
    fn count_instructions(
        &mut self,
        tools: &Tools,
        workload: Workload,
        subject: Subject,
    ) -> anyhow::Result<f64> {
        let stem = self.dir.join(format!(
            "instructions-{}-{}",
            workload.name(),
            subject.name()
        ));
        let mut server = match subject {
            Subject::Warmgate => {
                let config = match workload {
                    Workload::Connect | Workload::Echo => READY,
                    Workload::Release => HELD_WITH_ROOM,
                };
                let config_path = stem.with_extension("toml");
                std::fs::write(&config_path, config)
                    .with_context(|| format!("cannot write {}", config_path.display()))?;
                let args = vec![
                    "--config".to_owned(),
                    config_path.display().to_string(),
                    "--listen".to_owned(),
                    "127.0.0.1:0".to_owned(),
                    "--admin-listen".to_owned(),
                    "127.0.0.1:0".to_owned(),
                ];
                Profiled::start(
                    tools,
                    &release_program("warmgate"),
                    &args,
                    "warmgate",
                    &stem,
                )?
            }
            Subject::Reference | Subject::Floor if workload != Workload::Release => {
                let (program, name) = match subject {
                    Subject::Reference => ("warmgate-reference", "reference"),
                    _ => ("warmgate-floor", "floor"),
                };
                Profiled::start(
                    tools,
                    &release_program(program),
                    &["127.0.0.1:0".to_owned()],
                    name,
                    &stem,
                )?
            }
            _ => bail!(
                "no instruction count of {} for {}",
                workload.name(),
                subject.name()
            ),
        };
        if workload != Workload::Release {
            server.wait_until_ready()?;
        }
        let url = |path: &str| format!("ws://{}{path}", server.server.public);
        let mut args: Vec<String> = match workload {
            Workload::Connect => vec![
                "connect-sequential".into(),
                "--url".into(),
                url("/ws"),
                "--count".into(),
                self.sizes.instruction_connects.to_string(),
                "--warmup".into(),
                CONNECT_WARMUP.to_string(),
            ],
            Workload::Echo => vec![
                "echo".into(),
                "--url".into(),
                url("/echo"),
                "--count".into(),
                self.sizes.instruction_echoes.to_string(),
            ],
            Workload::Release => {
                let admin = server
                    .server
                    .admin
                    .context("warmgate printed no admin address")?;
                vec![
                    "hold".into(),
                    "--url".into(),
                    url("/ws"),
                    "--clients".into(),
                    self.sizes.instruction_held_clients.to_string(),
                    "--flip-post".into(),
                    format!("http://{admin}/signals/app"),
                ]
            }
        };
        args.extend([
            "--client".into(),
            "tungstenite".into(),
            "--wait-for-go".into(),
        ]);
        let figures = loadgen_with_go(&args, || server.control("-z"));
        let dumped = figures.and_then(|figures| {
            std::thread::sleep(SETTLE);
            server.control("-d")?;
            Ok(figures)
        });
        let stopped = server.stop();
        let figures = dumped?;
        stopped?;
        let total = server.dumped_total()?;
        // What was counted (a sample of each timing, a released client),
        // and the report to keep.
        let (count, figures) = match workload {
            Workload::Connect => {
                let report: ConnectReport = loadgen_report::parse(&figures)?;
                let count = report
                    .connect_to_ready
                    .as_ref()
                    .map_or(0, |timings| timings.n);
                (count, serde_json::to_value(report)?)
            }
            Workload::Echo => {
                let report: EchoReport = loadgen_report::parse(&figures)?;
                let count = report.round_trip.as_ref().map_or(0, |timings| timings.n);
                (count, serde_json::to_value(report)?)
            }
            Workload::Release => {
                let report: HoldReport = loadgen_report::parse(&figures)?;
                let count = report
                    .release
                    .as_ref()
                    .map_or(0, |release| release.released);
                let wanted = self.sizes.instruction_held_clients;
                if count != wanted || report.errors != 0 {
                    bail!(
                        "under valgrind, {count} of {wanted} held clients were released, with {} errors (the first: {})",
                        report.errors,
                        report.first_error.as_deref().unwrap_or("none")
                    );
                }
                (count, serde_json::to_value(report)?)
            }
        };
        if count == 0 {
            bail!("nothing was counted: {figures}");
        }
        let quotient = total as f64 / count as f64;
        let key = format!("instructions.{}", workload.name());
        self.keep(&key, subject, &figures);
        let prefix = format!("{key}.{}", subject.name());
        self.figures.insert(format!("{prefix}.total"), json!(total));
        self.figures.insert(format!("{prefix}.count"), json!(count));
        self.figures
            .insert(format!("{prefix}.{}", workload.unit()), json!(quotient));
        println!(
            "bench: {} under callgrind, {}: {total} instructions / {count} = {quotient:.0}",
            subject.name(),
            workload.name()
        );
        Ok(quotient)
    }
}

/// Runs the load generator with `args` (which include `--wait-for-go`):
/// once it says `measuring`, calls `at_go`, then lets it go on, and
/// returns its report (JSON, unread) once it has exited.
fn loadgen_with_go(
    args: &[String],
    at_go: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let program = release_program("warmgate-loadgen");
    println!("bench: warmgate-loadgen {}", args.join(" "));
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let result = drive(&mut child, at_go);
    if result.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output();
    let stderr = result?;
    let output = output?;
    if !output.status.success() {
        bail!(
            "warmgate-loadgen {} failed ({}): {}",
            args.join(" "),
            output.status,
            stderr.trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The go and the wait of [`loadgen_with_go`]; returns the load
/// generator's stderr once it has exited.
fn drive(child: &mut Child, at_go: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut stderr = child.stderr.take().context("no stderr")?;
    let (line_tx, line_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut lines = BufReader::new(&mut stderr);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|read| read > 0) {
            if line.trim() == "measuring" {
                let _ = line_tx.send(());
            } else {
                text.push_str(&line);
            }
            line.clear();
        }
        text
    });
    match line_rx.recv_timeout(LOADGEN_LIMIT) {
        Ok(()) => {
            at_go()?;
            let mut stdin = child.stdin.take().context("no stdin")?;
            stdin
                .write_all(b"\n")
                .and_then(|()| stdin.flush())
                .context("cannot give the load generator its go")?;
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let stderr = reader.join().unwrap_or_default();
            bail!(
                "the load generator ended before its measured part: {}",
                stderr.trim()
            );
        }
        Err(mpsc::RecvTimeoutError::Timeout) => bail!(
            "the load generator did not reach its measured part within {} s",
            LOADGEN_LIMIT.as_secs()
        ),
    }
    while child.try_wait()?.is_none() {
        if started.elapsed() > LOADGEN_LIMIT {
            bail!(
                "the load generator took over {} s under valgrind",
                LOADGEN_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(reader.join().unwrap_or_default())
}

/// The `totals: N` of a callgrind dump (its only event is `Ir`).
fn callgrind_total(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|line| line.strip_prefix("totals:"))
        .and_then(|total| total.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests;
