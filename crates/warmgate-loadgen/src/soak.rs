//! `soak`: the load of `cargo xtask soak`, for a set time, in cycles (10 s
//! by default). Chat clients stay connected and chat throughout; in each
//! cycle churn workers come and go, and a crowd of clients is held by
//! turning a signal off and released by turning it back on. At the end of
//! each cycle, once every churn and held client has left, the warmgate
//! process's resident memory and open file descriptors are sampled from
//! `/proc`, so every sample sees the same population: the chat clients
//! only. The harness judges the samples; this program only measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::{mpsc, watch};
use warmgate_loadgen::report::{HeldCrowds, Prefill, ProcessSample, SoakReport};

use crate::chaos::{ChatCrowd, LoadArguments, collect};
use crate::chat::{self, ChatEvent, Order};
use crate::churn::{self, Attempt, Outcome};
use crate::client::{self, Target};
use crate::clock::Clock;
use crate::stats;
use crate::timeline::{Follower, StateEvent};
use crate::tokens::{AuthArguments, Credential, Tokens};

/// The pause between a cycle's start and the signal turning off.
const BEFORE_FLIP: Duration = Duration::from_secs(1);

/// How long the gate may take to turn (not) ready after a signal flip, and
/// a held crowd to be held or released.
const FLIP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub(crate) struct SoakArguments {
    /// The gate's chat route, `ws://ADDR/ws`.
    #[arg(long)]
    url: String,
    /// The admin URL of the signal to flip, `http://ADMIN/signals/NAME`.
    #[arg(long)]
    signal_url: String,
    /// The warmgate process to sample.
    #[arg(long)]
    pid: u32,
    /// How long to soak.
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// One cycle of churn and flip, and one sample at its end.
    #[arg(long, default_value_t = 10.0)]
    cycle_seconds: f64,
    /// The share of each cycle during which churn workers run.
    #[arg(long, default_value_t = 0.6)]
    churn_share: f64,
    /// Clients held and released by each cycle's flip.
    #[arg(long, default_value_t = 50)]
    held_per_cycle: usize,
    /// Before the soak's clock starts, each chat client sends this many
    /// messages (up to 16 a second), so that the rooms' bounded buffers (the
    /// remembered ids, the frames kept for slow readers) are full before
    /// the first sample.
    #[arg(long, default_value_t = 0)]
    prefill_messages: usize,
    #[command(flatten)]
    load: LoadArguments,
    #[command(flatten)]
    auth: AuthArguments,
}

/// One sample of the warmgate process.
#[derive(Debug)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    threads: Option<u64>,
}

impl Sample {
    fn take(pid: u32, at: Duration) -> anyhow::Result<Sample> {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("cannot list the descriptors of process {pid}"))?
            .count();
        let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("Threads:"))
                    .and_then(|count| count.trim().parse().ok())
            });
        Ok(Sample {
            at,
            rss_kib: stats::rss_kib(pid)?,
            fds,
            threads,
        })
    }

    fn report(&self) -> ProcessSample {
        ProcessSample {
            at_s: self.at.as_secs_f64(),
            rss_kib: self.rss_kib,
            fds: self.fds,
            threads: self.threads,
        }
    }
}

pub(crate) async fn run(arguments: SoakArguments) -> anyhow::Result<SoakReport> {
    if !(arguments.cycle_seconds > 0.0 && arguments.seconds > 0.0) {
        bail!("--seconds and --cycle-seconds must be greater than zero");
    }
    let clock = Clock::start();
    let target = Target::parse(&arguments.url)?;
    let tokens = Arc::new(Tokens::new(&arguments.auth)?);
    let load = &arguments.load;
    let prober = load.prober(&target, clock);
    let follower = Follower::start(target.addr, clock);
    let mut crowd = ChatCrowd::start(load, &target, &tokens).await?;
    eprintln!(
        "soak: joined {} of {} chat clients in {} rooms",
        crowd.joined, load.chat_clients, load.rooms
    );

    let prefill_started = Instant::now();
    let prefilled = prefill(&mut crowd, arguments.prefill_messages).await;
    let prefill_seconds = prefill_started.elapsed().as_secs_f64();
    eprintln!(
        "soak: prefilled: {prefilled} of {} chat clients sent {} messages each in {prefill_seconds:.0} s",
        crowd.joined, arguments.prefill_messages
    );

    let cycle = Duration::from_secs_f64(arguments.cycle_seconds);
    let total = Duration::from_secs_f64(arguments.seconds);
    let churn_span = cycle.mul_f64(arguments.churn_share.clamp(0.0, 1.0));
    let churn_settings = load.churn_settings(&target);
    let attempt_settings = Arc::new(load.attempt_settings(&target));
    let started = Instant::now();
    let mut samples = vec![Sample::take(arguments.pid, Duration::ZERO)?];
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut releases: Vec<Duration> = Vec::new();
    let mut held_total = 0;
    let mut flip_problems: Vec<String> = Vec::new();
    let mut cycles = 0;
    while started.elapsed() < total {
        let cycle_start = tokio::time::Instant::now();
        cycles += 1;
        let (stop_churn, stop_churn_rx) = watch::channel(false);
        let workers = churn::spawn_workers(&churn_settings, &tokens, &stop_churn_rx);

        tokio::time::sleep_until(cycle_start + BEFORE_FLIP).await;
        match flip(
            &arguments,
            &attempt_settings,
            &tokens,
            follower.latest(),
            cycles,
        )
        .await
        {
            Ok(flipped) => {
                held_total += flipped.held;
                releases.extend(flipped.releases);
                attempts.extend(flipped.attempts);
                if let Some(problem) = flipped.problem {
                    flip_problems.push(format!("cycle {cycles}: {problem}"));
                }
            }
            Err(error) => flip_problems.push(format!("cycle {cycles}: {error:#}")),
        }

        tokio::time::sleep_until(cycle_start + churn_span).await;
        let _ = stop_churn.send(true);
        attempts.extend(collect(workers).await.into_iter().flatten());
        tokio::time::sleep_until(cycle_start + cycle).await;
        let sample = Sample::take(arguments.pid, started.elapsed())?;
        eprintln!(
            "soak: {:>5.0} s: rss {} KiB, {} fds",
            sample.at.as_secs_f64(),
            sample.rss_kib,
            sample.fds
        );
        samples.push(sample);
    }
    let soaked = started.elapsed();

    // Wind up the chat: quiet, then each client's last message.
    let _ = crowd.orders.send(Order::Quiet);
    let mut quiet = 0;
    let quiet_by = tokio::time::Instant::now() + Duration::from_secs(10);
    while quiet < crowd.joined {
        match tokio::time::timeout_at(quiet_by, crowd.events.recv()).await {
            Ok(Some(ChatEvent::Quiet)) => quiet += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = crowd.orders.send(Order::Finish);
    let records = crowd.records().await;
    let probes = tokio::task::spawn_blocking(move || prober.finish()).await?;
    let timeline = follower.finish().await;
    Ok(SoakReport {
        started_unix_ms: clock.started_unix_ms(),
        ended_unix_ms: clock.now_ms(),
        authentication: tokens.enabled(),
        load: format!("{load:?}"),
        seconds: soaked.as_secs_f64(),
        cycle_seconds: arguments.cycle_seconds,
        cycles,
        prefill: Prefill {
            messages_per_client: arguments.prefill_messages,
            clients: prefilled,
            seconds: prefill_seconds,
        },
        samples: samples.iter().map(Sample::report).collect(),
        held: HeldCrowds {
            per_cycle: arguments.held_per_cycle,
            held: held_total,
            released: releases.len(),
            flip_to_ready: stats::summary(&mut releases),
            problems: flip_problems,
        },
        quiet_clients: quiet,
        chat: chat::summarise(&records, clock),
        attempts: churn::summarise(&attempts, clock),
        probes,
        timeline,
    })
}

/// Has every chat client send `messages` messages, and waits until they
/// have (at most ten times as long as the pace allows, plus a minute: a
/// busy machine delivers them slower);
/// returns how many clients finished. The clients chat normally after.
async fn prefill(crowd: &mut ChatCrowd, messages: usize) -> usize {
    if messages == 0 {
        return crowd.joined;
    }
    let _ = crowd.orders.send(Order::Prefill { messages });
    let limit = chat::PREFILL_PERIOD.saturating_mul(u32::try_from(messages).unwrap_or(u32::MAX))
        * 10
        + Duration::from_secs(60);
    let by = tokio::time::Instant::now() + limit;
    let mut finished = 0;
    while finished < crowd.joined {
        match tokio::time::timeout_at(by, crowd.events.recv()).await {
            Ok(Some(ChatEvent::Prefilled)) => finished += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = crowd.orders.send(Order::Chat);
    finished
}

/// What one flip did.
struct Flipped {
    held: usize,
    releases: Vec<Duration>,
    attempts: Vec<Attempt>,
    /// What went wrong, if anything.
    problem: Option<String>,
}

/// Turns the signal off, holds a crowd, turns it on (whatever happened
/// meanwhile), and times each release.
async fn flip(
    arguments: &SoakArguments,
    settings: &Arc<churn::AttemptSettings>,
    tokens: &Arc<Tokens>,
    mut latest: watch::Receiver<Option<StateEvent>>,
    cycle: usize,
) -> anyhow::Result<Flipped> {
    client::post(
        &arguments.signal_url,
        r#"{"ready":false,"reason":"the soak holds a crowd"}"#,
    )
    .await?;
    let not_ready = |event: &Option<StateEvent>| {
        event
            .as_ref()
            .is_some_and(|event| !matches!(event.state(), "ready" | "degraded"))
    };
    // The borrow `wait_for` returns locks the channel: it is dropped at
    // once, so the follower can go on publishing.
    let turned = tokio::time::timeout(FLIP_WAIT, async {
        latest.wait_for(not_ready).await.map(drop)
    })
    .await;
    let mut problem = match turned {
        Ok(Ok(())) => None,
        _ => Some("the gate did not turn not ready after the signal turned off".to_owned()),
    };

    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(arguments.held_per_cycle);
    if problem.is_none() {
        for index in 0..arguments.held_per_cycle {
            let settings = Arc::clone(settings);
            let held_tx = held_tx.clone();
            let token = tokens.token(Credential::Good, &format!("held-{cycle}-{index}"))?;
            tasks.push(tokio::spawn(async move {
                let (mut attempt, ws) = churn::attempt(
                    &settings,
                    Credential::Good,
                    token.as_deref(),
                    Some(&held_tx),
                )
                .await;
                if let Some(ws) = ws {
                    let stay = Duration::from_millis(200 + fastrand::u64(0..800));
                    attempt.stay = Some(churn::stay_and_leave(ws, stay).await);
                }
                attempt
            }));
        }
    }
    drop(held_tx);
    let mut held = 0;
    let held_by = tokio::time::Instant::now() + FLIP_WAIT;
    while held < tasks.len() {
        match tokio::time::timeout_at(held_by, held_rx.recv()).await {
            Ok(Some(_)) => held += 1,
            Ok(None) | Err(_) => break,
        }
    }
    if problem.is_none() && held < arguments.held_per_cycle {
        problem = Some(format!(
            "only {held} of {} clients were held",
            arguments.held_per_cycle
        ));
    }
    let flipped_at = Instant::now();
    client::post(
        &arguments.signal_url,
        r#"{"ready":true,"reason":"the soak releases its crowd"}"#,
    )
    .await?;
    let attempts = collect(tasks).await;
    let releases = attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Outcome::Admitted { held: true }))
        .map(|attempt| attempt.ended.saturating_duration_since(flipped_at))
        .collect();
    Ok(Flipped {
        held,
        releases,
        attempts,
        problem,
    })
}
