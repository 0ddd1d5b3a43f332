//! `cargo xtask conformance`: the Autobahn TestSuite, driven by kosoku,
//! three times over, with a verdict per case for each run:
//!
//! 1. `reference`: bare fastwebsockets (`warmgate-reference`) on its
//!    `/echo`. It is the upstream of the third run, so it is judged on its
//!    own first: a case that fails through the proxy is then the gate's.
//! 2. `echo`: the gate's own `/echo` (the echo application, in process).
//! 3. `proxied`: the gate in proxy mode, kosoku → warmgate → the
//!    reference. The proxy keeps the client's path and the reference
//!    echoes only on `/echo`, so this gate (a second process) routes
//!    `[[route]] path = "/echo"` with `app = "upstream"`.
//!
//! It installs kosoku (pinned) when it is not on the PATH, builds warmgate
//! and the reference in release, and runs them on free loopback ports.
//! Each gate runs a plan that is ready at once (the proxied one once the
//! reference answers `/readyz` too) and allows the suite's 16 MiB
//! messages; no rate limit applies to either route (the message limit is
//! the chat's alone, and `[clients]` sets none by default), so none needs
//! raising. After `/readyz` answers 200, every case but the compression
//! groups runs; then the gate is stopped with SIGTERM and must exit 0. The
//! reports are in `target/autobahn/<run>`, each server's log beside them.
//!
//! The verdict: any FAILED case of either gate run fails the command. The
//! reference fails the cases in [`REFERENCE_KNOWN_FAILURES`] on its own,
//! none of which can reach it through the gate; any other failure of the
//! reference fails the command, since the proxied run would then be judged
//! against an upstream that is itself wrong. The summary puts the three
//! runs side by side and lists every case the proxied run judges
//! differently from the gate's own `/echo`.
//!
//! Time: one full run takes about 12 s on loopback, and 20 s more for
//! each case whose echo never comes (kosoku's wait), so all three run in
//! full, with no subset; [`SUITE_LIMIT`] bounds the three together, as it
//! bounded the one run before. It judges the WebSocket protocol (RFC 6455) only; the
//! warmgate protocol on `/ws` is the integration tests' business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use warmgate_devservers::process;

use crate::command::{self, workspace_root};
use crate::plans;
use crate::server::{self, Server, target_dir, wait_until_ready};

/// The kosoku release installed when none is on the PATH. The figures in
/// docs/protocol.md were measured with it.
const KOSOKU_VERSION: &str = "0.1.0";

/// Case groups left out, and why.
const EXCLUDED: [(&str, &str); 2] = [
    ("12.*", "permessage-deflate, which warmgate does not offer"),
    (
        "13.*",
        "permessage-deflate parameters, which warmgate does not offer",
    ),
];

/// The behaviours of a case, in the order they are reported. A case with
/// any other behaviour (kosoku's `ERROR`, say) counts as failed.
const BEHAVIOURS: [&str; 5] = [
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNIMPLEMENTED",
    "FAILED",
];

/// Cases bare fastwebsockets fails on its own, and why that says nothing
/// about the proxied run.
const REFERENCE_KNOWN_FAILURES: [(&str, &str); 1] = [(
    "7.3.6",
    "fastwebsockets does not hold control frames to 125 octets (RFC 6455 section 5.5) and echoes the \
     126-octet close; through the gate that frame never reaches it, since the gate fails the \
     client's connection with 1002 first",
)];

/// A bound on the three runs together, so a hung case cannot hold CI to
/// its limit. The three take a minute or two.
const SUITE_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The `[gate]` table of both runs: room for 16 MiB messages.
const BIG_MESSAGES_GATE: &str = "[gate]\nmax_message_bytes = 16777216\n";

/// The plan of the gate under the `echo` run: ready at once
/// ([`plans::READY`]), with room for 16 MiB messages.
fn echo_config() -> String {
    format!("{BIG_MESSAGES_GATE}\n{}", plans::READY)
}

/// The plan of the gate under the `proxied` run: the `echo` run's, with
/// `/echo` relayed to the reference at `upstream`, and ready once the
/// reference answers `/readyz` (a check in the ready plan's phase).
fn proxied_config(upstream: SocketAddr) -> String {
    format!(
        r#"{BIG_MESSAGES_GATE}
[upstream]
url = "ws://{upstream}"

[[route]]
path = "/echo"
app = "upstream"

{ready}
[[phase.check]]
name = "upstream"
kind = "http"
url = "http://{upstream}/readyz"
"#,
        ready = plans::READY
    )
}

/// One run of the suite against one server.
struct Run {
    /// `reference`, `echo` or `proxied`; also its folder under
    /// `target/autobahn`.
    name: &'static str,
    /// What was under test, for the summary.
    subject: String,
    report_dir: PathBuf,
    cases: Vec<CaseResult>,
    elapsed: Duration,
    kosoku_status: ExitStatus,
}

impl Run {
    fn failed(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|case| is_failed(&case.behaviour))
            .map(|case| case.id.as_str())
            .collect()
    }
}

pub(crate) fn run() -> anyhow::Result<()> {
    let kosoku = kosoku()?;
    let kosoku_version = installed_kosoku_version();
    if kosoku_version != KOSOKU_VERSION {
        println!(
            "conformance: note: using kosoku {kosoku_version} from the PATH; the figures in docs/protocol.md are from {KOSOKU_VERSION}"
        );
    }
    let warmgate = server::release_build()?;

    let autobahn_dir = target_dir().join("autobahn");
    match std::fs::remove_dir_all(&autobahn_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!("cannot remove the old reports {}", autobahn_dir.display())
            });
        }
    }
    let suite = Suite {
        kosoku,
        autobahn_dir,
        deadline: Instant::now() + SUITE_LIMIT,
    };
    // Whatever stops the gate runs, each gate's exit is judged at the end.
    let mut problems: Vec<String> = Vec::new();

    let reference_dir = suite.report_dir("reference")?;
    let mut reference_command = Command::new(server::release_program("warmgate-reference"));
    reference_command.arg("127.0.0.1:0");
    let mut reference = Server::spawn(
        reference_command,
        "reference",
        &reference_dir.join("reference.log"),
    )?;
    wait_until_ready(reference.public)?;
    let upstream = reference.public;
    let reference_run = suite.run(
        "reference",
        format!("bare fastwebsockets, ws://{upstream}/echo"),
        upstream,
    )?;

    let echo_run = suite.gate_run(&warmgate, "echo", &echo_config(), "", &mut problems)?;

    if let Some(status) = reference.exited()? {
        bail!(
            "the reference exited ({status}) before the proxied run; its log is {}",
            reference_dir.join("reference.log").display()
        );
    }
    let proxied_run = suite.gate_run(
        &warmgate,
        "proxied",
        &proxied_config(upstream),
        &format!(" relayed to ws://{upstream}/echo"),
        &mut problems,
    )?;
    // The reference does not drain; it is simply killed.
    drop(reference);

    let runs = [&reference_run, &echo_run, &proxied_run];
    for run in runs {
        report(run, &kosoku_version);
    }
    compare(&echo_run, &proxied_run);
    summary(&runs, &kosoku_version);

    for run in [&echo_run, &proxied_run] {
        let failed = run.failed();
        if !failed.is_empty() {
            problems.push(format!(
                "the {} run: {} case(s) FAILED ({}); each case's report is in {} (and index.html there)",
                run.name,
                failed.len(),
                failed.join(" "),
                run.report_dir.display()
            ));
        } else if !run.kosoku_status.success() {
            problems.push(format!(
                "the {} run: kosoku exited with {}, yet its report has no FAILED case; see its output above",
                run.name, run.kosoku_status
            ));
        }
    }
    let unexpected: Vec<&str> = reference_run
        .failed()
        .into_iter()
        .filter(|id| {
            !REFERENCE_KNOWN_FAILURES
                .iter()
                .any(|(known, _)| known == id)
        })
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!(
            "the reference (the proxied run's upstream) FAILED {} beyond its known failures, so the proxied run cannot be judged against it; its reports are in {}",
            unexpected.join(" "),
            reference_run.report_dir.display()
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n  "));
    }
    Ok(())
}

// === the runs ===

/// What every run shares: the program, the reports' folder and the bound
/// on all of them.
struct Suite {
    kosoku: PathBuf,
    autobahn_dir: PathBuf,
    deadline: Instant,
}

impl Suite {
    /// A new, empty report folder for the run `name`.
    fn report_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.autobahn_dir.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Starts a gate with `config` under the run `name`, runs the suite
    /// against its `/echo` (which `relayed_to` describes, after the gate's
    /// own address), and stops it. A gate that does not exit 0 after
    /// SIGTERM adds to `problems`; the run is reported either way.
    fn gate_run(
        &self,
        warmgate: &Path,
        name: &'static str,
        config: &str,
        relayed_to: &str,
        problems: &mut Vec<String>,
    ) -> anyhow::Result<Run> {
        let report_dir = self.report_dir(name)?;
        let config_path = report_dir.join("warmgate.toml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log_path = report_dir.join("warmgate.log");
        let mut gateway = Server::start_warmgate(warmgate, &config_path, &log_path, &[])?;
        println!(
            "conformance: the {name} run's warmgate serves http://{}; its log is {}",
            gateway.public,
            log_path.display()
        );
        wait_until_ready(gateway.public)?;
        let run = self.run(
            name,
            format!("warmgate, ws://{}/echo{relayed_to}", gateway.public),
            gateway.public,
        );
        match gateway.stop() {
            Ok(status) if status.success() => {}
            Ok(status) => problems.push(format!(
                "the {name} run: warmgate exited with {status} after SIGTERM instead of 0; its log is {}",
                log_path.display()
            )),
            Err(error) => problems.push(format!("the {name} run: {error:#}")),
        }
        run
    }

    /// Runs every case but the excluded groups against `ws://ADDR/echo`,
    /// within what is left of [`SUITE_LIMIT`], and reads the report.
    /// kosoku exits 1 when a case fails; the report says which.
    fn run(&self, name: &'static str, subject: String, addr: SocketAddr) -> anyhow::Result<Run> {
        let report_dir = self.report_dir(name)?;
        let mut args = vec!["-m".to_owned(), "fuzzingclient".to_owned(), "-o".to_owned()];
        args.push(report_dir.display().to_string());
        for (group, _why) in EXCLUDED {
            args.push("-x".to_owned());
            args.push(group.to_owned());
        }
        args.push(format!("ws://{addr}/echo"));
        println!("conformance: the {name} run: {subject}");
        println!("$ {} {}", self.kosoku.display(), args.join(" "));
        let mut suite = Command::new(&self.kosoku)
            .args(&args)
            .current_dir(workspace_root())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.kosoku.display()))?;
        let started = Instant::now();
        let kosoku_status = loop {
            if let Some(status) = suite.try_wait().context("cannot wait for kosoku")? {
                break status;
            }
            if Instant::now() > self.deadline {
                let _ = suite.kill();
                let _ = suite.wait();
                bail!(
                    "the {name} run: the suite's runs did not finish within {} s together; stopped kosoku",
                    SUITE_LIMIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let elapsed = started.elapsed();
        let cases = read_index(&report_dir)?;
        Ok(Run {
            name,
            subject,
            report_dir,
            cases,
            elapsed,
            kosoku_status,
        })
    }
}

// === kosoku ===

/// The kosoku program: from the PATH, or installed with pip.
fn kosoku() -> anyhow::Result<PathBuf> {
    if let Some(program) = find_kosoku() {
        return Ok(program);
    }
    let requirement = format!("kosoku=={KOSOKU_VERSION}");
    command::pip_install(&requirement, &[])?;
    find_kosoku().context(
        "pip installed kosoku, yet no `kosoku` program is on the PATH or in python3's scripts directories",
    )
}

fn find_kosoku() -> Option<PathBuf> {
    if let Some(program) = process::find_on_path("kosoku") {
        return Some(program);
    }
    // pip may put scripts in a directory that is not on the PATH.
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, sysconfig; print(sysconfig.get_path('scripts')); print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|dir| Path::new(dir.trim()).join("kosoku"))
        .find(|program| program.is_file())
}

/// The version of the kosoku package python3 sees, or `unknown`.
fn installed_kosoku_version() -> String {
    Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('kosoku'))",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

// === the report ===

/// One case's line in `index.json`.
struct CaseResult {
    id: String,
    behaviour: String,
    behaviour_close: String,
    report_file: Option<String>,
}

/// Reads `index.json`: `{agent: {case_id: {behavior, behaviorClose,
/// reportfile, ..}}}`, with one agent (the server under test).
fn read_index(report_dir: &Path) -> anyhow::Result<Vec<CaseResult>> {
    let path = report_dir.join("index.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("kosoku left no report at {}", path.display()))?;
    let index: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let agents = index
        .as_object()
        .with_context(|| format!("{}: expected an object of agents", path.display()))?;
    let mut cases = Vec::new();
    for (agent, agent_cases) in agents {
        let agent_cases = agent_cases.as_object().with_context(|| {
            format!(
                "{}: agent `{agent}`: expected an object of cases",
                path.display()
            )
        })?;
        for (id, case) in agent_cases {
            let text_field = |name: &str| case.get(name).and_then(Value::as_str).map(str::to_owned);
            cases.push(CaseResult {
                id: id.clone(),
                behaviour: text_field("behavior")
                    .with_context(|| format!("{}: case {id} has no `behavior`", path.display()))?,
                behaviour_close: text_field("behaviorClose").unwrap_or_default(),
                report_file: text_field("reportfile"),
            });
        }
    }
    if cases.is_empty() {
        bail!("{} lists no cases", path.display());
    }
    cases.sort_by_key(|case| case_order(&case.id));
    Ok(cases)
}

/// `7.3.6` as `[7, 3, 6]`, so `9.10` sorts after `9.9`.
fn case_order(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|part| part.parse().unwrap_or(u32::MAX))
        .collect()
}

/// How many cases of `cases` had each behaviour: the five of
/// [`BEHAVIOURS`] in order, then any other.
fn counts(cases: &[CaseResult]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases {
        *counts.entry(case.behaviour.as_str()).or_default() += 1;
    }
    let mut listed: Vec<(String, usize)> = BEHAVIOURS
        .iter()
        .map(|behaviour| {
            (
                (*behaviour).to_owned(),
                counts.get(behaviour).copied().unwrap_or(0),
            )
        })
        .collect();
    listed.extend(
        counts
            .iter()
            .filter(|(behaviour, _)| !BEHAVIOURS.contains(behaviour))
            .map(|(behaviour, n)| ((*behaviour).to_owned(), *n)),
    );
    listed
}

/// Prints one run: its counts, then every case that is not plainly OK
/// with what kosoku expected and saw.
fn report(run: &Run, kosoku_version: &str) {
    let name = run.name;
    let summary: Vec<String> = counts(&run.cases)
        .iter()
        .map(|(behaviour, n)| format!("{n} {behaviour}"))
        .collect();
    let excluded: Vec<&str> = EXCLUDED.iter().map(|(group, _)| *group).collect();
    println!(
        "conformance [{name}]: kosoku {kosoku_version}, {} cases ({} excluded: compression is not offered), {:.1} s: {}",
        run.cases.len(),
        excluded.join(" and "),
        run.elapsed.as_secs_f64(),
        summary.join(", ")
    );

    for case in &run.cases {
        let close_ok = matches!(case.behaviour_close.as_str(), "OK" | "INFORMATIONAL");
        if case.behaviour == "OK" && close_ok || case.behaviour == "INFORMATIONAL" {
            continue;
        }
        let details = case_details(&run.report_dir, case);
        let known = REFERENCE_KNOWN_FAILURES
            .iter()
            .find(|(id, _)| name == "reference" && *id == case.id && is_failed(&case.behaviour))
            .map_or_else(String::new, |(_, why)| format!(" [known: {why}]"));
        println!(
            "conformance [{name}]: {} {} (close: {}): {}{known}",
            case.behaviour, case.id, case.behaviour_close, details.description
        );
        println!("    expected: {}", details.expectation);
        println!("    observed: {}; {}", details.result, details.result_close);
    }
    let informational: Vec<&str> = run
        .cases
        .iter()
        .filter(|case| case.behaviour == "INFORMATIONAL")
        .map(|case| case.id.as_str())
        .collect();
    if !informational.is_empty() {
        println!(
            "conformance [{name}]: INFORMATIONAL (behaviour the RFC leaves open): {}",
            informational.join(" ")
        );
    }
    if name == "reference" {
        for (id, _) in REFERENCE_KNOWN_FAILURES {
            if run
                .cases
                .iter()
                .any(|case| case.id == id && !is_failed(&case.behaviour))
            {
                println!(
                    "conformance [{name}]: {id} now passes; it can leave REFERENCE_KNOWN_FAILURES"
                );
            }
        }
    }
}

/// Prints every case the proxied run judged differently from the gate's
/// own `/echo`: what the relay changes.
fn compare(echo: &Run, proxied: &Run) {
    let direct: BTreeMap<&str, &CaseResult> = echo
        .cases
        .iter()
        .map(|case| (case.id.as_str(), case))
        .collect();
    let mut differences = Vec::new();
    for case in &proxied.cases {
        let verdict = |case: &CaseResult| format!("{}/{}", case.behaviour, case.behaviour_close);
        match direct.get(case.id.as_str()) {
            Some(before) if verdict(before) == verdict(case) => {}
            Some(before) => differences.push(format!(
                "{} {} -> {}",
                case.id,
                verdict(before),
                verdict(case)
            )),
            None => differences.push(format!(
                "{} (not in the echo run) {}",
                case.id,
                verdict(case)
            )),
        }
    }
    if differences.is_empty() {
        println!("conformance: the proxied run judged every case as the echo run did");
    } else {
        println!(
            "conformance: the proxied run judged {} case(s) otherwise than the echo run (behaviour/close): {}",
            differences.len(),
            differences.join(", ")
        );
    }
}

/// The three runs side by side, then the closing `N passed, M failed`.
fn summary(runs: &[&Run], kosoku_version: &str) {
    println!(
        "conformance: summary (kosoku {kosoku_version}; 12.* and 13.* excluded: compression is not offered)"
    );
    println!(
        "  {:<10} {:>5} {:>4} {:>10} {:>13} {:>13} {:>6} {:>7}  under test",
        "run", "cases", "OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "time"
    );
    let mut n_passed = 0;
    let mut n_failed = 0;
    for run in runs {
        let count = counts(&run.cases);
        let of = |behaviour: &str| {
            count
                .iter()
                .find(|(name, _)| name == behaviour)
                .map_or(0, |(_, n)| *n)
        };
        let failed = run.failed();
        let known = if run.name == "reference" && !failed.is_empty() {
            format!(" (failed: {})", failed.join(" "))
        } else {
            String::new()
        };
        println!(
            "  {:<10} {:>5} {:>4} {:>10} {:>13} {:>13} {:>6} {:>5.1} s  {}{known}",
            run.name,
            run.cases.len(),
            of("OK"),
            of("NON-STRICT"),
            of("INFORMATIONAL"),
            of("UNIMPLEMENTED"),
            failed.len(),
            run.elapsed.as_secs_f64(),
            run.subject,
        );
        if run.name != "reference" {
            n_passed += of("OK") + of("NON-STRICT") + of("INFORMATIONAL");
            n_failed += failed.len();
        }
    }
    println!("conformance: warmgate (echo and proxied): {n_passed} passed, {n_failed} failed");
}

fn is_failed(behaviour: &str) -> bool {
    !matches!(
        behaviour,
        "OK" | "NON-STRICT" | "INFORMATIONAL" | "UNIMPLEMENTED"
    )
}

/// What a case's own report file says about it.
struct CaseDetails {
    description: String,
    expectation: String,
    result: String,
    result_close: String,
}

fn case_details(report_dir: &Path, case: &CaseResult) -> CaseDetails {
    let report: Value = case
        .report_file
        .as_ref()
        .and_then(|file| std::fs::read_to_string(report_dir.join(file)).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let field = |name: &str| {
        report
            .get(name)
            .and_then(Value::as_str)
            .map_or_else(|| format!("({name} not in the case report)"), str::to_owned)
    };
    let close_code = match report.get("remoteCloseCode") {
        Some(Value::Number(code)) => format!("the server's close code was {code}"),
        _ => "the server sent no close code".to_owned(),
    };
    CaseDetails {
        description: one_line(&field("description")),
        expectation: one_line(&field("expectation")),
        result: one_line(&field("result")),
        result_close: format!("{} ({close_code})", field("resultClose")),
    }
}

/// Autobahn's case texts are HTML fragments over several lines; one line
/// of plain text reads better in a CI log.
fn one_line(text: &str) -> String {
    text.replace("<br>", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
