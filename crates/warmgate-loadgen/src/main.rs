//! `warmgate-loadgen`: drives real clients over loopback for
//! `cargo xtask bench`, `chaos` and `soak`, one scenario per run, and
//! prints its figures as one JSON object on stdout: the scenario's type
//! in the library's `report` module, which xtask reads back with.
//!
//! Every time is taken on the client side with a monotonic clock, per
//! client, and summarised as p50, p99 and max (see `stats`). The harness
//! decides what to compare; this program only measures.

#![forbid(unsafe_code)]

mod chaos;
mod chat;
mod churn;
mod client;
mod clock;
mod fast_client;
mod probes;
mod soak;
mod stats;
mod timeline;
mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use warmgate_loadgen::report::{
    ConnectReport, EchoReport, HoldReport, HttpLoadReport, Release, SignalReport,
};

use crate::client::{ClientLibrary, HttpConnection, Socket, Target};

#[derive(Debug, Parser)]
#[command(name = "warmgate-loadgen", about = "Benchmark clients for warmgate")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Connects one client after another; times TCP connect to the first
    /// (`ready`) frame.
    ConnectSequential {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Connects made first and not counted.
        #[arg(long, default_value_t = 50)]
        warmup: usize,
        /// With a key, every connect sends `Authorization: Bearer` with
        /// one good token (signed before the first connect).
        #[command(flatten)]
        auth: tokens::AuthArguments,
        /// The WebSocket client that connects and times.
        #[arg(long, value_enum, default_value_t = ClientLibrary::Tungstenite)]
        client: ClientLibrary,
        /// Once set up, print `measuring` on stderr and wait for a line on
        /// stdin before the measured part (see `wait_for_go`).
        #[arg(long)]
        wait_for_go: bool,
        /// Milliseconds to wait after each close before the next connect,
        /// so that no connect overlaps the server's teardown of the one
        /// before (0: back to back).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Opens `clients` WebSockets and holds them; optionally measures the
    /// server's RSS, then releases them with a flip and times each `ready`.
    /// Without a flip, every client is expected to be admitted at once (its
    /// first frame is `ready`): the open connections whose memory is
    /// measured.
    Hold {
        #[arg(long)]
        url: String,
        #[arg(long)]
        clients: usize,
        /// Connects in flight at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// The server's processes (repeat for a server of several, such as
        /// nginx's master and workers), for their summed RSS before and
        /// with the clients.
        #[arg(long)]
        pid: Vec<u32>,
        /// Release by `POST`ing `{"ready":true}` to this URL (a signal).
        #[arg(long)]
        flip_post: Option<String>,
        /// Release by listening on this address (a tcp check's target).
        #[arg(long)]
        flip_listen: Option<SocketAddr>,
        /// Wait this long once every client is held, before the flip (so
        /// that a failing check's backoff has reached its cap).
        #[arg(long, default_value_t = 0)]
        settle_ms: u64,
        /// The clients are held transparently (proxy mode without
        /// `warmgate.v1`): a client counts as held once its handshake
        /// completes, and as released at its first frame, which must be the
        /// upstream's `ready`. A frame before the flip fails the run.
        #[arg(long)]
        transparent: bool,
        /// The WebSocket client that connects and times.
        #[arg(long, value_enum, default_value_t = ClientLibrary::Tungstenite)]
        client: ClientLibrary,
        /// Once set up, print `measuring` on stderr and wait for a line on
        /// stdin before the measured part (see `wait_for_go`).
        #[arg(long)]
        wait_for_go: bool,
    },
    /// Times `POST` of a signal to the `ready` frame at a held client, over
    /// many rounds (the signal is set back to not ready between rounds).
    DetectSignal {
        #[arg(long)]
        url: String,
        /// The signal's admin URL, `http://ADMIN/signals/NAME`.
        #[arg(long)]
        signal_url: String,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Echo round trips of a small text message on one connection to a
    /// transparent echo route (no frame before the first echo).
    Echo {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 43)]
        size: usize,
        /// The WebSocket client that connects and times.
        #[arg(long, value_enum, default_value_t = ClientLibrary::Tungstenite)]
        client: ClientLibrary,
        /// Once set up, print `measuring` on stderr and wait for a line on
        /// stdin before the measured part (see `wait_for_go`).
        #[arg(long)]
        wait_for_go: bool,
    },
    /// Keep-alive HTTP GETs from `connections` connections for `seconds`.
    HttpLoad {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Chat clients in rooms, churn (with bad credentials when
    /// authenticating), probes and the state timeline, until stdin closes:
    /// the load of `cargo xtask chaos`.
    ChatLoad(chaos::ChatLoadArguments),
    /// Chat, churn and signal-flip cycles for a set time, sampling the
    /// server's memory and descriptors: the load of `cargo xtask soak`.
    Soak(soak::SoakArguments),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.scenario)) {
        Ok(figures) => {
            println!("{figures}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The report as one line of JSON.
fn json(report: anyhow::Result<impl Serialize>) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&report?)?)
}

async fn run(scenario: Scenario) -> anyhow::Result<String> {
    match scenario {
        Scenario::ConnectSequential {
            url,
            count,
            warmup,
            auth,
            client,
            wait_for_go,
            pause_ms,
        } => {
            let token = tokens::Tokens::new(&auth)?.token(tokens::Credential::Good, "bench")?;
            json(
                connect_sequential(
                    client,
                    &Target::parse(&url)?,
                    token.as_deref(),
                    count,
                    (warmup, wait_for_go),
                    Duration::from_millis(pause_ms),
                )
                .await,
            )
        }
        Scenario::Hold {
            url,
            clients,
            concurrency,
            pid,
            flip_post,
            flip_listen,
            settle_ms,
            transparent,
            client,
            wait_for_go,
        } => {
            let flip = match (flip_post, flip_listen) {
                (Some(url), None) => Some(Flip::Post(url)),
                (None, Some(addr)) => Some(Flip::Listen(addr)),
                (None, None) => None,
                (Some(_), Some(_)) => bail!("give --flip-post or --flip-listen, not both"),
            };
            if wait_for_go && flip.is_none() {
                bail!(
                    "--wait-for-go waits just before the flip; give --flip-post or --flip-listen"
                );
            }
            let settle = Duration::from_millis(settle_ms);
            json(
                hold(
                    Target::parse(&url)?,
                    HoldPlan {
                        clients,
                        concurrency,
                        pids: pid,
                        flip,
                        settle,
                        transparent,
                        library: client,
                        wait_for_go,
                    },
                )
                .await,
            )
        }
        Scenario::DetectSignal {
            url,
            signal_url,
            rounds,
        } => json(detect_signal(&Target::parse(&url)?, &signal_url, rounds).await),
        Scenario::Echo {
            url,
            count,
            size,
            client,
            wait_for_go,
        } => json(echo(client, &Target::parse(&url)?, count, size, wait_for_go).await),
        Scenario::ChatLoad(arguments) => json(chaos::run(arguments).await),
        Scenario::Soak(arguments) => json(soak::run(arguments).await),
        Scenario::HttpLoad {
            url,
            connections,
            seconds,
        } => json(
            http_load(
                &Target::parse(&url)?,
                connections,
                Duration::from_secs_f64(seconds),
            )
            .await,
        ),
    }
}

// === the go ===

/// The line `--wait-for-go` prints on stderr once a scenario is set up.
const MEASURING: &str = "measuring";

/// Says `measuring` on stderr, then waits for a line on stdin: the harness
/// does what it must at that moment (zeroes a profiler's counters, say),
/// then answers, and the measured part starts.
async fn wait_for_go() -> anyhow::Result<()> {
    eprintln!("{MEASURING}");
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await
    .context("the stdin reader failed")?
    .context("cannot read stdin")?;
    if read == 0 {
        bail!("stdin closed before the go");
    }
    Ok(())
}

// === connect ===

/// Connects one after another with `library`, each to its `ready` frame,
/// with `bearer` as the token when given. Each connect is timed from the
/// start of its TCP connect to its first frame, then closed by the client.
/// After the `warmup` connects, waits for the go if asked to.
async fn connect_sequential(
    library: ClientLibrary,
    target: &Target,
    bearer: Option<&str>,
    count: usize,
    (warmup, go): (usize, bool),
    pause: Duration,
) -> anyhow::Result<ConnectReport> {
    let mut samples = Vec::with_capacity(count);
    for index in 0..warmup + count {
        if index > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        if go && index == warmup {
            wait_for_go().await?;
        }
        let started = Instant::now();
        let mut ws = match Socket::open(library, target, bearer).await {
            Ok(ws) => ws,
            Err(client::Refused::Http { status, body }) => {
                bail!("the upgrade was refused with {status}: {body}")
            }
            Err(client::Refused::NoConnection(why) | client::Refused::Broken(why)) => bail!(why),
        };
        let kind = ws.next_type().await?;
        let elapsed = started.elapsed();
        if kind != "ready" {
            bail!("the first frame was `{kind}`, expected `ready`: is the gate ready?");
        }
        if index >= warmup {
            samples.push(elapsed);
        }
        ws.close().await;
    }
    Ok(ConnectReport {
        connect_to_ready: stats::summary(&mut samples),
    })
}

// === hold and release ===

#[derive(Debug, Clone)]
enum Flip {
    Post(String),
    Listen(SocketAddr),
}

/// What one held client reports.
enum Report {
    /// Connected; `held` unless its first frame admitted it.
    Connected {
        held: bool,
    },
    /// Released: its `ready` frame arrived at this instant.
    Released(Instant),
    Failed(String),
}

/// What a `hold` run does.
struct HoldPlan {
    clients: usize,
    /// Connects in flight at once.
    concurrency: usize,
    /// The server's processes, whose RSS is summed.
    pids: Vec<u32>,
    flip: Option<Flip>,
    /// The wait between the last client held and the flip.
    settle: Duration,
    /// Held clients get no frame (see `Scenario::Hold`).
    transparent: bool,
    /// The WebSocket client of every held client.
    library: ClientLibrary,
    /// Wait for the go once every client is held, just before the flip.
    wait_for_go: bool,
}

/// The summed RSS of `pids`, in KiB; `None` for no process.
fn rss_sum_kib(pids: &[u32]) -> anyhow::Result<Option<u64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut total = 0;
    for &pid in pids {
        total += stats::rss_kib(pid)?;
    }
    Ok(Some(total))
}

/// One client of a `hold` run: connects, reports whether it is held, waits
/// for its release when one is expected, and stays open until `finish`.
async fn held_client(
    target: Arc<Target>,
    permits: Arc<Semaphore>,
    report_tx: mpsc::UnboundedSender<Report>,
    mut finish_rx: watch::Receiver<bool>,
    expect_release: bool,
    transparent: bool,
    library: ClientLibrary,
) {
    let connected = async {
        let _permit = permits.acquire().await?;
        let mut ws = Socket::connect(library, &target).await?;
        // A transparent client gets no frame while held: its completed
        // handshake is all there is to see.
        let kind = if transparent {
            None
        } else {
            Some(ws.next_type().await?)
        };
        anyhow::Ok((ws, kind))
    };
    let (mut ws, kind) = match connected.await {
        Ok(connected) => connected,
        Err(error) => {
            let _ = report_tx.send(Report::Failed(format!("{error:#}")));
            return;
        }
    };
    let held = kind.as_deref().is_none_or(|kind| kind == "warming");
    let _ = report_tx.send(Report::Connected { held });
    if expect_release && held {
        let released = if transparent {
            ws.next_type().await.and_then(|kind| {
                if kind == "ready" {
                    Ok(())
                } else {
                    anyhow::bail!("the first upstream frame was `{kind}`, expected `ready`")
                }
            })
        } else {
            ws.until_type("ready").await
        };
        match released {
            Ok(()) => {
                let _ = report_tx.send(Report::Released(Instant::now()));
            }
            Err(error) => {
                let _ = report_tx.send(Report::Failed(format!("{error:#}")));
                return;
            }
        }
    }
    let _ = finish_rx.wait_for(|finish| *finish).await;
    ws.close().await;
}

async fn hold(target: Target, plan: HoldPlan) -> anyhow::Result<HoldReport> {
    let HoldPlan {
        clients,
        concurrency,
        pids,
        flip,
        settle,
        transparent,
        library,
        wait_for_go: go,
    } = plan;
    let rss_idle = rss_sum_kib(&pids)?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let (report_tx, mut report_rx) = mpsc::unbounded_channel();
    let (finish_tx, finish_rx) = watch::channel(false);
    let target = Arc::new(target);
    let expect_release = flip.is_some();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        tasks.push(tokio::spawn(held_client(
            Arc::clone(&target),
            Arc::clone(&permits),
            report_tx.clone(),
            finish_rx.clone(),
            expect_release,
            transparent,
            library,
        )));
    }
    drop(report_tx);

    let mut connected = 0;
    let mut held = 0;
    let mut errors = Vec::new();
    while connected + errors.len() < clients {
        match report_rx.recv().await {
            Some(Report::Connected { held: is_held }) => {
                connected += 1;
                held += usize::from(is_held);
            }
            Some(Report::Failed(error)) => errors.push(error),
            Some(Report::Released(_)) => bail!("a client was released before the flip"),
            None => break,
        }
    }
    let connect_wall = started.elapsed();
    let rss_loaded = rss_sum_kib(&pids)?;

    let mut release = None;
    if let Some(flip) = flip {
        if held != connected {
            bail!(
                "{} of {connected} clients were admitted at once; the gate should hold them",
                connected - held
            );
        }
        tokio::time::sleep(settle).await;
        if go {
            wait_for_go().await?;
        }
        let flipped_at = Instant::now();
        let _listener = match flip {
            Flip::Post(url) => {
                client::post(
                    &url,
                    r#"{"ready":true,"reason":"released by the benchmark"}"#,
                )
                .await?;
                None
            }
            Flip::Listen(addr) => Some(accept_forever(addr).await?),
        };
        let mut samples = Vec::with_capacity(held);
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        while samples.len() + errors.len() < connected {
            tokio::select! {
                report = report_rx.recv() => match report {
                    // A transparent client admitted before the flip shows
                    // only here, by a frame that came first.
                    Some(Report::Released(at)) if at < flipped_at => {
                        bail!("a client got its first frame before the flip; the gate should hold it")
                    }
                    Some(Report::Released(at)) => samples.push(at - flipped_at),
                    Some(Report::Failed(error)) => errors.push(error),
                    Some(Report::Connected { .. }) => {}
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        release = Some(Release {
            released: samples.len(),
            flip_to_ready: stats::summary(&mut samples),
        });
    }
    let _ = finish_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let rss_per_client_kib = match (rss_idle, rss_loaded) {
        (Some(idle), Some(loaded)) if connected > 0 => {
            Some(loaded.saturating_sub(idle) as f64 / connected as f64)
        }
        _ => None,
    };
    Ok(HoldReport {
        clients,
        connected,
        held,
        errors: errors.len(),
        first_error: errors.first().cloned(),
        connect_wall_ms: connect_wall.as_secs_f64() * 1e3,
        connects_per_second: connected as f64 / connect_wall.as_secs_f64(),
        rss_idle_kib: rss_idle,
        rss_loaded_kib: rss_loaded,
        rss_per_client_kib,
        release,
    })
}

/// Listens on `addr` and accepts (and drops) connections until dropped:
/// a dependency coming up.
async fn accept_forever(addr: SocketAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    }))
}

// === signal detection ===

async fn detect_signal(
    target: &Target,
    signal_url: &str,
    rounds: usize,
) -> anyhow::Result<SignalReport> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        client::post(signal_url, r#"{"ready":false,"reason":"benchmark round"}"#).await?;
        // The engine applies the signal just after answering; connect until
        // a client is held.
        let mut ws = loop {
            let mut ws = client::connect(target).await?;
            if client::next_type(&mut ws).await? == "warming" {
                break ws;
            }
            let _ = ws.close(None).await;
            tokio::task::yield_now().await;
        };
        let started = Instant::now();
        client::post(signal_url, r#"{"ready":true,"reason":"benchmark round"}"#).await?;
        client::until_type(&mut ws, "ready").await?;
        samples.push(started.elapsed());
        let _ = ws.close(None).await;
    }
    Ok(SignalReport {
        signal_to_ready: stats::summary(&mut samples),
    })
}

// === echo ===

/// Echo round trips on one connection opened by `library`; after the
/// warm-up (a tenth more, not counted), waits for the go if asked to.
async fn echo(
    library: ClientLibrary,
    target: &Target,
    count: usize,
    size: usize,
    go: bool,
) -> anyhow::Result<EchoReport> {
    let mut ws = Socket::connect(library, target).await?;
    let payload = "x".repeat(size);
    let warmup = count / 10;
    let mut samples = Vec::with_capacity(count);
    for index in 0..warmup + count {
        if go && index == warmup {
            wait_for_go().await?;
        }
        let started = Instant::now();
        ws.echo_once(&payload).await?;
        if index >= warmup {
            samples.push(started.elapsed());
        }
    }
    ws.close().await;
    Ok(EchoReport {
        round_trip: stats::summary(&mut samples),
        size,
    })
}

// === HTTP load ===

async fn http_load(
    target: &Target,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<HttpLoadReport> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = HttpConnection::open(target.addr).await?;
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            while Instant::now() < deadline {
                let status = connection.send("GET", &target.path, "").await?;
                *statuses.entry(status).or_default() += 1;
            }
            anyhow::Ok(statuses)
        }));
    }
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    let mut errors = 0;
    for task in tasks {
        match task.await? {
            Ok(counts) => {
                for (status, count) in counts {
                    *statuses.entry(status).or_default() += count;
                }
            }
            Err(_) => errors += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests: u64 = statuses.values().sum();
    Ok(HttpLoadReport {
        requests,
        seconds,
        requests_per_second: requests as f64 / seconds,
        connection_errors: errors,
        statuses,
    })
}
