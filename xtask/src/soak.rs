//! `cargo xtask soak [--minutes M] [--auth jwt|none]`: the same system as
//! `chaos` (see `chaos::stack`) under steady churn for M minutes (10 by
//! default), checking that warmgate's memory and open file descriptors
//! stay flat.
//!
//! The load (`warmgate-loadgen soak`) runs in 10 s cycles: chat clients
//! stay connected and chat throughout; in each cycle churn workers come and
//! go (some with bad credentials when authenticating) and a crowd of
//! clients is held by turning a signal off and released by turning it on.
//! At the end of each cycle, once the churn and held clients have left, the
//! load generator samples warmgate's RSS and descriptor count from `/proc`,
//! so every sample sees the same population. After the warm-up (a fifth of
//! the run, at most a minute) the last sample must be within 5 % of the
//! first, for both; the command fails otherwise, or on a crash, a silent
//! connection, or an acked chat message lost, duplicated or delivered to
//! another room. It rewrites its section of `docs/reliability.md` (see
//! `judge`); raw figures and logs stay in `target/soak`.

mod judge;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use warmgate_loadgen::report::SoakReport;

use crate::chaos::report;
use crate::chaos::stack::{self, Auth, HOLD_SIGNAL, Stack};
use crate::chaos::{CHAT_CLIENTS, DEFAULT_AUTH, ROOMS, build};
use crate::server::target_dir;

const DEFAULT_MINUTES: f64 = 10.0;
const CYCLE_SECONDS: f64 = 10.0;
const MESSAGE_INTERVAL_MS: u64 = 2000;
const CHURN_WORKERS: usize = 8;
const HELD_PER_CYCLE: usize = 50;
/// A room remembers the last 4,096 `client_msg_id`s it accepted (see
/// `docs/protocol.md`) and keeps its last 1,024 frames for slow readers:
/// bounded buffers that fill with traffic. Before the clock starts, each
/// chat client sends its share of 4,096 per room, and a tenth more, so
/// that they are full before the first sample.
const REMEMBERED_IDS_PER_ROOM: usize = 4096;

/// The prefill messages each chat client sends.
fn prefill_messages() -> usize {
    (REMEMBERED_IDS_PER_ROOM * ROOMS).div_ceil(CHAT_CLIENTS) * 11 / 10
}

/// What `cargo xtask soak` is asked for.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub(crate) struct SoakArgs {
    /// How long the load runs, in minutes (whole or not), after the prefill
    #[arg(long, value_name = "M", default_value_t = DEFAULT_MINUTES, value_parser = minutes)]
    pub(crate) minutes: f64,
    /// jwt: clients send tokens and some churn attempts carry bad ones;
    /// none: no [auth] section
    #[arg(long, value_enum, default_value_t = DEFAULT_AUTH)]
    pub(crate) auth: Auth,
}

impl Default for SoakArgs {
    fn default() -> Self {
        SoakArgs {
            minutes: DEFAULT_MINUTES,
            auth: DEFAULT_AUTH,
        }
    }
}

/// `--minutes`: a number of minutes above 0.
fn minutes(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|minutes| minutes.is_finite() && *minutes > 0.0)
        .ok_or_else(|| format!("expected a number of minutes above 0, got `{text}`"))
}

pub(crate) fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let &SoakArgs { minutes, auth } = args;
    let seconds = minutes * 60.0;
    let started = Instant::now();
    build()?;
    let dir = target_dir().join("soak");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mut stack = Stack::start(&dir, auth)?;
    let mut loadgen_args: Vec<String> = vec![
        "soak".into(),
        "--url".into(),
        stack.ws_url(),
        "--signal-url".into(),
        stack.signal_url(HOLD_SIGNAL)?,
        "--pid".into(),
        stack.warmgate.pid().to_string(),
        "--seconds".into(),
        seconds.to_string(),
        "--cycle-seconds".into(),
        CYCLE_SECONDS.to_string(),
        "--held-per-cycle".into(),
        HELD_PER_CYCLE.to_string(),
        "--prefill-messages".into(),
        prefill_messages().to_string(),
    ];
    loadgen_args.extend(crate::chaos::crowd_arguments(
        &stack,
        MESSAGE_INTERVAL_MS,
        CHURN_WORKERS,
    ));
    let loadgen = crate::chaos::loadgen_start(&loadgen_args)?;
    let load = loadgen.finish::<SoakReport>(
        Duration::from_secs_f64(seconds + 180.0),
        &dir.join("loadgen-output.json"),
    );
    let died_early = stack.warmgate.exited()?;
    let exit = match died_early {
        Some(status) => status,
        None => stack.warmgate.stop()?,
    };
    stack.keep_logs(&dir);
    let panics = stack::panics_in_log(&stack.warmgate_log);
    drop(stack);
    let load = load?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(
            &json!({ "auth": auth.name(), "minutes": minutes, "load": load }),
        )?,
    )?;

    let (checks, markdown) = judge::judge(
        &load,
        auth,
        minutes,
        died_early.is_none() && exit.success() && panics.is_empty(),
        &format!(
            "warmgate {}; exit after SIGTERM: {exit}; panics in its log: {}",
            if died_early.is_some() {
                "died during the soak"
            } else {
                "ran to the end"
            },
            panics.len()
        ),
        started.elapsed().as_secs_f64(),
    );
    report::print_checks("soak", &checks);
    let report_path = report::write_section("soak", "Soak", &markdown)?;
    println!(
        "soak: {:.0} s; figures and logs in {}, report in {}",
        started.elapsed().as_secs_f64(),
        dir.display(),
        report_path.display()
    );
    let failed = report::failed(&checks);
    if !failed.is_empty() {
        bail!(
            "soak: {} check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}
