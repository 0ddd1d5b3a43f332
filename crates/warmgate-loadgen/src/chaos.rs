//! `chat-load`: the load of `cargo xtask chaos`. Chat clients in rooms
//! sending acknowledged messages, churn clients coming and going (some with
//! bad credentials), probes of `/livez` and `/readyz`, and the gate's state
//! timeline, all at once, until the harness closes this program's stdin
//! (it injects the faults meanwhile). Then one JSON object on stdout.
//!
//! Progress goes to stderr, one line per step, for the harness to wait on:
//! `chat-load: joined N of N chat clients in R rooms` once the chat clients
//! are in their rooms (the harness starts its fault timeline then).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use warmgate_loadgen::report::ChatLoadReport;

use crate::chat::{self, ChatEvent, ChatSettings, Order};
use crate::churn::{self, AttemptSettings, ChurnSettings};
use crate::client::Target;
use crate::clock::Clock;
use crate::probes::Prober;
use crate::timeline::Follower;
use crate::tokens::{AuthArguments, Tokens};

/// How long the chat clients and churn workers may take to wind up once
/// told to stop.
const WIND_UP: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub(crate) struct ChatLoadArguments {
    /// The gate's chat route, `ws://ADDR/ws`; probes and the event stream
    /// use the same listener.
    #[arg(long)]
    url: String,
    #[command(flatten)]
    load: LoadArguments,
    #[command(flatten)]
    auth: AuthArguments,
}

/// The load's shape, shared with `soak`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LoadArguments {
    /// Chat clients that stay connected.
    #[arg(long, default_value_t = 200)]
    pub(crate) chat_clients: usize,
    /// Rooms the chat clients are spread over.
    #[arg(long, default_value_t = 8)]
    pub(crate) rooms: usize,
    /// Each chat client sends a message this often.
    #[arg(long, default_value_t = 1000)]
    pub(crate) message_interval_ms: u64,
    /// Workers that connect, stay a moment and leave, one attempt after
    /// another.
    #[arg(long, default_value_t = 16)]
    pub(crate) churn_workers: usize,
    #[arg(long, default_value_t = 200)]
    pub(crate) stay_min_ms: u64,
    #[arg(long, default_value_t = 1500)]
    pub(crate) stay_max_ms: u64,
    /// With authentication on, one churn attempt in this many carries a
    /// bad credential.
    #[arg(long, default_value_t = 5)]
    pub(crate) unauthorised_every: usize,
    /// An attempt with no `ready` or `unavailable` for this long is silent
    /// (keep it above the gate's `hold_timeout`).
    #[arg(long, default_value_t = 15)]
    pub(crate) attempt_deadline_s: u64,
    #[arg(long, default_value_t = 100)]
    pub(crate) probe_interval_ms: u64,
    /// Probes slower than this are listed.
    #[arg(long, default_value_t = 50)]
    pub(crate) probe_limit_ms: u64,
}

impl LoadArguments {
    pub(crate) fn chat_settings(&self, target: &Target, tokens: &Tokens) -> Arc<ChatSettings> {
        Arc::new(ChatSettings {
            target: target.clone(),
            clients: self.chat_clients,
            rooms: self.rooms,
            message_interval: Duration::from_millis(self.message_interval_ms),
            check_from: tokens.enabled(),
        })
    }

    pub(crate) fn attempt_settings(&self, target: &Target) -> AttemptSettings {
        AttemptSettings {
            target: target.clone(),
            deadline: Duration::from_secs(self.attempt_deadline_s),
        }
    }

    pub(crate) fn churn_settings(&self, target: &Target) -> Arc<ChurnSettings> {
        Arc::new(ChurnSettings {
            attempts: self.attempt_settings(target),
            workers: self.churn_workers,
            stay: (
                Duration::from_millis(self.stay_min_ms),
                Duration::from_millis(self.stay_max_ms.max(self.stay_min_ms)),
            ),
            unauthorised_every: self.unauthorised_every,
        })
    }

    pub(crate) fn prober(&self, target: &Target, clock: Clock) -> Prober {
        Prober::start(
            target.addr,
            clock,
            Duration::from_millis(self.probe_interval_ms),
            Duration::from_millis(self.probe_limit_ms),
        )
    }
}

/// The running chat clients.
pub(crate) struct ChatCrowd {
    pub(crate) orders: watch::Sender<Order>,
    pub(crate) events: mpsc::UnboundedReceiver<ChatEvent>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<chat::ChatRecord>>,
    pub(crate) joined: usize,
}

impl std::fmt::Debug for ChatCrowd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatCrowd")
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

impl ChatCrowd {
    /// Starts the chat clients and waits until each has joined its room or
    /// failed.
    pub(crate) async fn start(
        load: &LoadArguments,
        target: &Target,
        tokens: &Tokens,
    ) -> anyhow::Result<ChatCrowd> {
        let (orders, orders_rx) = watch::channel(Order::Chat);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let tasks = chat::spawn_clients(
            load.chat_clients,
            &load.chat_settings(target, tokens),
            tokens,
            &orders_rx,
            &events_tx,
        )?;
        drop(events_tx);
        let mut joined = 0;
        let mut settled = 0;
        while settled < load.chat_clients {
            match events.recv().await {
                Some(ChatEvent::Joined) => {
                    joined += 1;
                    settled += 1;
                }
                Some(ChatEvent::Failed) => settled += 1,
                Some(ChatEvent::Quiet | ChatEvent::Prefilled) => {}
                None => break,
            }
        }
        Ok(ChatCrowd {
            orders,
            events,
            tasks,
            joined,
        })
    }

    /// Waits for every record, at most [`WIND_UP`] in all.
    pub(crate) async fn records(self) -> Vec<chat::ChatRecord> {
        collect(self.tasks).await
    }
}

/// Awaits every task, at most [`WIND_UP`] in all; a task that does not end
/// in time is left out (and its absence shows in the figures).
pub(crate) async fn collect<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + WIND_UP;
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Ok(result)) = tokio::time::timeout_at(deadline, task).await {
            results.push(result);
        }
    }
    results
}

pub(crate) async fn run(arguments: ChatLoadArguments) -> anyhow::Result<ChatLoadReport> {
    let clock = Clock::start();
    let target = Target::parse(&arguments.url)?;
    let tokens = Arc::new(Tokens::new(&arguments.auth)?);
    let load = &arguments.load;
    let prober = load.prober(&target, clock);
    let follower = Follower::start(target.addr, clock);

    let crowd = ChatCrowd::start(load, &target, &tokens).await?;
    eprintln!(
        "chat-load: joined {} of {} chat clients in {} rooms",
        crowd.joined, load.chat_clients, load.rooms
    );
    let (stop_churn, stop_churn_rx) = watch::channel(false);
    let workers = churn::spawn_workers(&load.churn_settings(&target), &tokens, &stop_churn_rx);
    eprintln!(
        "chat-load: {} churn workers running; close stdin to stop",
        load.churn_workers
    );

    // The harness injects its faults now, and closes stdin when done.
    stdin_closed().await;
    eprintln!("chat-load: stdin closed; winding up");

    let _ = stop_churn.send(true);
    let _ = crowd.orders.send(Order::Abandon);
    let attempts: Vec<churn::Attempt> = collect(workers).await.into_iter().flatten().collect();
    let records = crowd.records().await;
    let probes = tokio::task::spawn_blocking(move || prober.finish()).await?;
    let timeline = follower.finish().await;
    Ok(ChatLoadReport {
        started_unix_ms: clock.started_unix_ms(),
        ended_unix_ms: clock.now_ms(),
        authentication: tokens.enabled(),
        load: format!("{load:?}"),
        chat: chat::summarise(&records, clock),
        attempts: churn::summarise(&attempts, clock),
        attempt_list: attempts
            .iter()
            .map(|attempt| attempt.record(clock))
            .collect(),
        probes,
        timeline,
    })
}

/// Resolves once stdin reaches its end (or cannot be read).
async fn stdin_closed() {
    let (closed_tx, closed_rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 256];
        let mut stdin = std::io::stdin().lock();
        while std::io::Read::read(&mut stdin, &mut buffer).is_ok_and(|read| read > 0) {}
        let _ = closed_tx.send(());
    });
    let _ = closed_rx.await;
}
