//! `cargo xtask conformance`: the Autobahn TestSuite against the gate's
//! `/echo` route, driven by kosoku, with a verdict per case.
//!
//! It installs kosoku (pinned) when it is not on the PATH, builds warmgate
//! in release, runs it on free loopback ports with a plan that is ready at
//! once and allows the suite's 16 MiB messages, waits for `/readyz`, runs
//! every case except the compression groups, stops warmgate with SIGTERM,
//! and reads the report kosoku leaves in `target/autobahn`. Any FAILED case fails the command. It judges the
//! WebSocket protocol (RFC 6455) only; the warmgate protocol on `/ws` is the
//! integration tests' business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::command::{self, workspace_root};
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

/// A bound on the whole suite, so a hung case cannot hold CI to its limit.
/// A full run takes a few minutes.
const SUITE_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The plan the gate runs under the suite: ready at once (its only check is
/// the listener signal warmgate sets itself), with room for 16 MiB messages.
const CONFORMANCE_CONFIG: &str = r#"[gate]
max_message_bytes = 16777216

[[phase]]
name = "integration"

[[phase.check]]
name = "http_listener"
kind = "signal"
"#;

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask conformance` takes no arguments, got `{extra}`");
    }
    let kosoku = kosoku()?;
    let kosoku_version = installed_kosoku_version();
    if kosoku_version != KOSOKU_VERSION {
        println!(
            "conformance: note: using kosoku {kosoku_version} from the PATH; the figures in docs/protocol.md are from {KOSOKU_VERSION}"
        );
    }
    let program = server::release_build()?;

    let target_dir = target_dir();
    let report_dir = target_dir.join("autobahn");
    match std::fs::remove_dir_all(&report_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot remove the old report {}", report_dir.display()));
        }
    }
    std::fs::create_dir_all(&report_dir)
        .with_context(|| format!("cannot create {}", report_dir.display()))?;
    let log_path = report_dir.join("warmgate.log");
    // The suite's performance cases (9.*) send messages of up to 16 MiB,
    // so the gate under test allows them; everything else is the default.
    let config_path = report_dir.join("warmgate.toml");
    std::fs::write(&config_path, CONFORMANCE_CONFIG)
        .with_context(|| format!("cannot write {}", config_path.display()))?;

    let mut gateway = Server::start_warmgate(&program, &config_path, &log_path, &[])?;
    println!(
        "conformance: warmgate serves http://{}; its log is {}",
        gateway.public,
        log_path.display()
    );
    wait_until_ready(gateway.public)?;
    let suite = run_suite(&kosoku, &report_dir, gateway.public);
    let exit = gateway.stop();
    let suite_status = suite?;

    let cases = read_index(&report_dir)?;
    let failed = report(&cases, &report_dir, &kosoku_version);
    if failed > 0 {
        bail!(
            "{failed} conformance case(s) FAILED; each case's report is in {} (and index.html there); warmgate's log is {}",
            report_dir.display(),
            log_path.display()
        );
    }
    if !suite_status.success() {
        bail!(
            "kosoku exited with {suite_status}, yet its report has no FAILED case; see its output above"
        );
    }
    match exit {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!(
            "warmgate exited with {status} after SIGTERM instead of 0; its log is {}",
            log_path.display()
        ),
        Err(error) => Err(error),
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
    if command::on_path("kosoku") {
        return Some(PathBuf::from("kosoku"));
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

/// Runs every case but the excluded groups against `/echo`, bounded by
/// [`SUITE_LIMIT`]. kosoku exits 1 when a case fails; the report says which.
fn run_suite(kosoku: &Path, report_dir: &Path, public: SocketAddr) -> anyhow::Result<ExitStatus> {
    let url = format!("ws://{public}/echo");
    let mut args = vec!["-m".to_owned(), "fuzzingclient".to_owned(), "-o".to_owned()];
    args.push(report_dir.display().to_string());
    for (group, _why) in EXCLUDED {
        args.push("-x".to_owned());
        args.push(group.to_owned());
    }
    args.push(url);
    println!("$ {} {}", kosoku.display(), args.join(" "));
    let mut suite = Command::new(kosoku)
        .args(&args)
        .current_dir(workspace_root())
        .spawn()
        .with_context(|| format!("cannot start `{}`", kosoku.display()))?;
    let started = Instant::now();
    loop {
        if let Some(status) = suite.try_wait().context("cannot wait for kosoku")? {
            return Ok(status);
        }
        if started.elapsed() > SUITE_LIMIT {
            let _ = suite.kill();
            let _ = suite.wait();
            bail!(
                "kosoku did not finish within {} s; stopped it",
                SUITE_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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

/// Prints the counts, then every case that is not plainly OK, then the
/// closing `N passed, M failed` line. Returns the number failed.
fn report(cases: &[CaseResult], report_dir: &Path, kosoku_version: &str) -> usize {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases {
        *counts.entry(case.behaviour.as_str()).or_default() += 1;
    }
    let count = |behaviour: &str| counts.get(behaviour).copied().unwrap_or(0);
    let mut summary: Vec<String> = BEHAVIOURS
        .iter()
        .map(|behaviour| format!("{} {behaviour}", count(behaviour)))
        .collect();
    summary.extend(
        counts
            .iter()
            .filter(|(behaviour, _)| !BEHAVIOURS.contains(behaviour))
            .map(|(behaviour, n)| format!("{n} {behaviour}")),
    );
    let excluded: Vec<&str> = EXCLUDED.iter().map(|(group, _)| *group).collect();
    println!(
        "conformance: kosoku {kosoku_version}, {} cases ({} excluded: compression is not offered): {}",
        cases.len(),
        excluded.join(" and "),
        summary.join(", ")
    );

    for case in cases {
        let failed = is_failed(&case.behaviour);
        let close_ok = matches!(case.behaviour_close.as_str(), "OK" | "INFORMATIONAL");
        if case.behaviour == "OK" && close_ok || case.behaviour == "INFORMATIONAL" {
            continue;
        }
        let details = case_details(report_dir, case);
        println!(
            "conformance: {} {} (close: {}): {}",
            case.behaviour, case.id, case.behaviour_close, details.description
        );
        if failed || case.behaviour != "OK" || !close_ok {
            println!("    expected: {}", details.expectation);
            println!("    observed: {}; {}", details.result, details.result_close);
        }
    }
    let informational: Vec<&str> = cases
        .iter()
        .filter(|case| case.behaviour == "INFORMATIONAL")
        .map(|case| case.id.as_str())
        .collect();
    if !informational.is_empty() {
        println!(
            "conformance: INFORMATIONAL (behaviour the RFC leaves open): {}",
            informational.join(" ")
        );
    }

    let n_failed = cases
        .iter()
        .filter(|case| is_failed(&case.behaviour))
        .count();
    let n_passed = count("OK") + count("NON-STRICT") + count("INFORMATIONAL");
    if count("UNIMPLEMENTED") > 0 {
        println!(
            "conformance: {} UNIMPLEMENTED (neither passed nor failed)",
            count("UNIMPLEMENTED")
        );
    }
    println!("conformance: {n_passed} passed, {n_failed} failed");
    n_failed
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
