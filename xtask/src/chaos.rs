//! `cargo xtask chaos [--auth jwt|none]`: faults injected into a real
//! system under chat load, and what every client and probe saw.
//!
//! The system (see `stack`): PostgreSQL, Redis, a stand-in auth service
//! (JWKS) and the release build of warmgate on a chat plan, each its own
//! process. The load (`warmgate-loadgen chat-load`, see `loadgen`): chat
//! clients with tokens in rooms sending acknowledged messages, churn
//! clients (some with bad credentials), probes of `/livez` and `/readyz`
//! every 100 ms, and the state timeline from `/readiness/events`. While it
//! runs, this module injects the faults in order, waiting for the gate to
//! show each one and to recover:
//!
//! 1. kill -9 Redis, then restart it;
//! 2. stop PostgreSQL, then start it;
//! 3. SIGSTOP the auth service (it hangs), then SIGCONT;
//! 4. turn a service signal off so clients are held, then SIGTERM warmgate
//!    while some are held and the chat clients are admitted.
//!
//! Then it judges (no panic or crash; every connection attempt admitted,
//! `unavailable` with a reason, or 401; every acked message delivered
//! exactly once to every member of its room connected throughout; state
//! transitions matching the faults; probes answered within 50 ms until
//! warmgate says it stopped listening, and `/readyz` 503 while it drains) and
//! rewrites its section of `docs/reliability.md`. Raw figures and logs stay
//! in `target/chaos`. It fails if a required check fails.

mod judge;
mod loadgen;
pub(crate) mod report;
pub(crate) mod stack;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use warmgate_devservers::process::Signal;
use warmgate_loadgen::report::ChatLoadReport;

use self::loadgen::Loadgen;
use self::stack::{Auth, HOLD_SIGNAL, Stack};
use crate::server::target_dir;

/// Clients authenticate unless `--auth none` says otherwise.
pub(crate) const DEFAULT_AUTH: Auth = Auth::Jwt;

/// The load: chat clients that stay, in rooms, each sending a message
/// every second; churn workers coming and going.
pub(crate) const CHAT_CLIENTS: usize = 200;
pub(crate) const ROOMS: usize = 8;
const MESSAGE_INTERVAL_MS: u64 = 1000;
pub(crate) const CHURN_WORKERS: usize = 16;
/// With authentication, one churn attempt in this many is unauthorised.
pub(crate) const UNAUTHORISED_EVERY: usize = 5;

/// Load before the first fault.
const STEADY: Duration = Duration::from_secs(5);
/// How long a fault that only degrades lasts once the gate shows it.
const SHORT_FAULT: Duration = Duration::from_secs(3);
/// How long a fault that holds clients lasts once the gate shows it:
/// longer than `hold_timeout` (5 s) plus a retry (2–3 s), so some held
/// clients time out and others, back for another try, are released by the
/// recovery.
const HOLDING_FAULT: Duration = Duration::from_secs(8);
/// Load between a recovery and the next fault.
const RECOVERED: Duration = Duration::from_secs(3);
/// Held clients wanted before SIGTERM.
const HELD_BEFORE_SIGTERM: f64 = 8.0;

/// The fault timeline: named instants, in wall time (ms since the epoch).
#[derive(Debug, Default)]
pub(crate) struct Marks {
    list: Vec<(&'static str, f64)>,
}

impl Marks {
    fn mark(&mut self, name: &'static str) {
        let at = unix_ms();
        println!("chaos: {name}");
        self.list.push((name, at));
    }

    pub(crate) fn at(&self, name: &str) -> Option<f64> {
        self.list
            .iter()
            .find(|(mark, _)| *mark == name)
            .map(|(_, at)| *at)
    }

    fn json(&self) -> Value {
        self.list
            .iter()
            .map(|(name, at)| json!({ "mark": name, "at_ms": at }))
            .collect()
    }
}

pub(crate) fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| (since.as_secs_f64() * 1e3).round())
}

/// What the run produced, for the judge.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) auth: Auth,
    pub(crate) marks: Marks,
    /// Why the fault timeline stopped early, if it did.
    pub(crate) aborted: Option<String>,
    /// warmgate's exit status after SIGTERM, or when it died unasked.
    pub(crate) exit: Option<String>,
    pub(crate) exit_success: bool,
    /// warmgate exited before SIGTERM.
    pub(crate) died_early: bool,
    pub(crate) panics: Vec<String>,
    /// When warmgate's first listener closed, from its `stopped listening`
    /// log line (ms since the epoch), if it logged one.
    pub(crate) stopped_listening_ms: Option<f64>,
    pub(crate) load: ChatLoadReport,
    pub(crate) seconds: f64,
}

/// What `cargo xtask chaos` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct ChaosArgs {
    /// jwt: clients send tokens and some churn attempts carry bad ones;
    /// none: no [auth] section, the auth service is still checked
    #[arg(long, value_enum, default_value_t = DEFAULT_AUTH)]
    pub(crate) auth: Auth,
}

impl Default for ChaosArgs {
    fn default() -> Self {
        ChaosArgs { auth: DEFAULT_AUTH }
    }
}

pub(crate) fn run(args: &ChaosArgs) -> anyhow::Result<()> {
    let auth = args.auth;
    let started = Instant::now();
    build()?;
    let dir = target_dir().join("chaos");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mut stack = Stack::start(&dir, auth)?;
    let mut loadgen = Loadgen::start(&chat_load_arguments(&stack))?;
    let mut marks = Marks::default();
    let timeline = inject_faults(&mut stack, &mut loadgen, &mut marks);
    // Whatever happened, stop the load and keep what it measured.
    loadgen.close_stdin();
    let load = loadgen.finish(Duration::from_secs(90), &dir.join("loadgen-output.json"));
    let (exit, exit_success, died_early) = match &timeline {
        Ok(status) => (Some(status.to_string()), status.success(), false),
        Err(_) => match stack.warmgate.exited() {
            Ok(Some(status)) => (
                Some(status.to_string()),
                status.success(),
                marks.at("sigterm").is_none(),
            ),
            _ => (None, false, false),
        },
    };
    stack.keep_logs(&dir);
    let run = Run {
        auth,
        marks,
        aborted: timeline.err().map(|error| format!("{error:#}")),
        exit,
        exit_success,
        died_early,
        panics: stack::panics_in_log(&stack.warmgate_log),
        stopped_listening_ms: judge::stopped_listening_ms(
            &std::fs::read_to_string(&stack.warmgate_log).unwrap_or_default(),
        ),
        load: load?,
        seconds: started.elapsed().as_secs_f64(),
    };
    drop(stack);

    let judged = judge::judge(&run);
    report::print_checks("chaos", &judged.checks);
    let results_path = dir.join("results.json");
    std::fs::write(
        &results_path,
        serde_json::to_string_pretty(&json!({
            "auth": auth.name(),
            "marks": run.marks.json(),
            "aborted": run.aborted,
            "exit": run.exit,
            "panics": run.panics,
            "stopped_listening_ms": run.stopped_listening_ms,
            "load": run.load,
        }))?,
    )
    .with_context(|| format!("cannot write {}", results_path.display()))?;
    let report_path = report::write_section("chaos", "Chaos under load", &judged.markdown)?;
    println!(
        "chaos: {:.0} s; figures and logs in {}, report in {}",
        run.seconds,
        dir.display(),
        report_path.display()
    );
    let failed = report::failed(&judged.checks);
    if !failed.is_empty() {
        bail!(
            "chaos: {} check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Starts the load generator with `args` (for `soak`).
pub(crate) fn loadgen_start(args: &[String]) -> anyhow::Result<Loadgen> {
    Loadgen::start(args)
}

/// The release builds of warmgate, the load generator and the auth
/// service.
pub(crate) fn build() -> anyhow::Result<()> {
    crate::server::release_build().map(drop)
}

fn chat_load_arguments(stack: &Stack) -> Vec<String> {
    let mut args: Vec<String> = vec!["chat-load".into(), "--url".into(), stack.ws_url()];
    args.extend(crowd_arguments(stack, MESSAGE_INTERVAL_MS, CHURN_WORKERS));
    args
}

/// The load both commands put on the stack: the chat crowd (sending every
/// `message_interval_ms`), `churn_workers`, and the unauthorised share,
/// with the stack's tokens.
pub(crate) fn crowd_arguments(
    stack: &Stack,
    message_interval_ms: u64,
    churn_workers: usize,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--chat-clients".into(),
        CHAT_CLIENTS.to_string(),
        "--rooms".into(),
        ROOMS.to_string(),
        "--message-interval-ms".into(),
        message_interval_ms.to_string(),
        "--churn-workers".into(),
        churn_workers.to_string(),
        "--unauthorised-every".into(),
        UNAUTHORISED_EVERY.to_string(),
    ];
    args.extend(stack.auth_arguments());
    args
}

/// Runs the fault timeline; returns warmgate's exit status after SIGTERM.
fn inject_faults(
    stack: &mut Stack,
    loadgen: &mut Loadgen,
    marks: &mut Marks,
) -> anyhow::Result<std::process::ExitStatus> {
    let joined = loadgen.wait_for_line("chat-load: joined", Duration::from_secs(90))?;
    marks.mark("load_joined");
    let expected = format!("joined {CHAT_CLIENTS} of {CHAT_CLIENTS}");
    if !joined.contains(&expected) {
        bail!("not every chat client joined: {joined}");
    }
    loadgen.wait_for_line(
        &format!("chat-load: {CHURN_WORKERS} churn workers"),
        Duration::from_secs(10),
    )?;
    dwell(stack, STEADY)?;

    // 1. Redis, optional: degraded, then ready.
    marks.mark("redis_killed");
    stack.redis.kill()?;
    stack.wait_for_state("degraded", |snapshot| snapshot["state"] == "degraded")?;
    dwell(stack, SHORT_FAULT)?;
    marks.mark("redis_restarting");
    stack.redis.start()?;
    stack.wait_for_state("ready", is_ready)?;
    dwell(stack, RECOVERED)?;

    // 2. PostgreSQL, required: not ready, then ready.
    marks.mark("postgres_stopping");
    stack.postgres.stop()?;
    stack.wait_for_state("not_ready", |snapshot| snapshot["state"] == "not_ready")?;
    dwell(stack, HOLDING_FAULT)?;
    marks.mark("postgres_starting");
    stack.postgres.start()?;
    stack.wait_for_state("ready", is_ready)?;
    dwell(stack, RECOVERED)?;

    // 3. The auth service hangs: its check times out.
    marks.mark("auth_hung");
    stack.auth_service.server.signal(Signal::Stop)?;
    let hung = stack.wait_for_state("not_ready", |snapshot| snapshot["state"] == "not_ready");
    if hung.is_ok() {
        let _ = dwell(stack, HOLDING_FAULT);
    }
    marks.mark("auth_resumed");
    // Resumed whatever happened, so a failure leaves nothing stopped.
    stack.auth_service.server.signal(Signal::Continue)?;
    hung?;
    stack.wait_for_state("ready", is_ready)?;
    dwell(stack, RECOVERED)?;

    // 4. Clients held and admitted, then SIGTERM.
    marks.mark("signal_off");
    stack.set_signal(HOLD_SIGNAL, false)?;
    stack.wait_for_state("not_ready", |snapshot| snapshot["state"] == "not_ready")?;
    let waited = Instant::now();
    while stack.held_clients()? < HELD_BEFORE_SIGTERM {
        if waited.elapsed() > Duration::from_secs(10) {
            bail!(
                "fewer than {HELD_BEFORE_SIGTERM} clients were held 10 s after the signal turned off"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    alive(stack)?;
    marks.mark("sigterm");
    let status = stack.warmgate.stop()?;
    marks.mark("exited");
    println!("chaos: warmgate exited ({status})");
    Ok(status)
}

fn is_ready(snapshot: &Value) -> bool {
    snapshot["state"] == "ready"
}

/// Lets the load run for `duration`, checking that warmgate lives.
fn dwell(stack: &mut Stack, duration: Duration) -> anyhow::Result<()> {
    std::thread::sleep(duration);
    alive(stack)
}

fn alive(stack: &mut Stack) -> anyhow::Result<()> {
    if let Some(status) = stack.warmgate.exited()? {
        bail!("warmgate exited unasked ({status})");
    }
    Ok(())
}
