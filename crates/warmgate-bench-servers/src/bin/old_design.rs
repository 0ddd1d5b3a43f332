//! A replica of the readiness design warmgate replaces, for benchmarks
//! only. Usage: `warmgate-old-design ADDR DEPENDENCY_ADDR...`.
//!
//! Every WebSocket handshake validates readiness itself, before upgrading:
//! 1. it polls the startup phase every 100 ms until it is ready;
//! 2. it checks the dependency groups in sequence (the dependencies, each a
//!    TCP connect to a given address, then the in-process services, then
//!    the integration), each with up to 3 tries 100 ms apart;
//! 3. then it upgrades, sends `{"type":"ready"}` and echoes.
//!
//! Nothing is published or shared between handshakes. The replica is kind
//! to the old design: its phase is ready from the start, its dependencies
//! answer on loopback, and it leaves out the 0.5 s sleep the old Redis
//! check made on every healthy connection. Its cost is therefore a lower
//! bound on what the old design paid per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use fastwebsockets::upgrade::IncomingUpgrade;
use tokio::net::TcpStream;

const PHASE_POLL: Duration = Duration::from_millis(100);
const PHASE_TIMEOUT: Duration = Duration::from_secs(10);
const TRIES: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct App {
    startup_complete: AtomicBool,
    dependencies: Vec<SocketAddr>,
    agent_supervisor_up: AtomicBool,
    websocket_bridge_up: AtomicBool,
    integration_wired: AtomicBool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = warmgate_bench_servers::listen_address()?;
    let dependencies = std::env::args()
        .skip(2)
        .map(|text| {
            text.parse()
                .with_context(|| format!("dependency `{text}` is not an address"))
        })
        .collect::<anyhow::Result<Vec<SocketAddr>>>()?;
    let app = Arc::new(App {
        startup_complete: AtomicBool::new(true),
        dependencies,
        agent_supervisor_up: AtomicBool::new(true),
        websocket_bridge_up: AtomicBool::new(true),
        integration_wired: AtomicBool::new(true),
    });
    let router = Router::new().route("/ws", get(handshake)).with_state(app);
    warmgate_bench_servers::serve("old-design", listen, router).await
}

async fn handshake(
    State(app): State<Arc<App>>,
    upgrade: IncomingUpgrade,
) -> axum::response::Response {
    // 1. Poll the startup phase.
    let mut waited = Duration::ZERO;
    while !app.startup_complete.load(Ordering::Acquire) && waited < PHASE_TIMEOUT {
        tokio::time::sleep(PHASE_POLL).await;
        waited += PHASE_POLL;
    }
    // 2. The groups, in sequence, each with retries. The old design let a
    //    client in "degraded mode" when validation failed, so the result
    //    only decides a log line.
    let mut valid = true;
    for dependency in &app.dependencies {
        valid &= with_retries(|| async {
            matches!(
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dependency)).await,
                Ok(Ok(_))
            )
        })
        .await;
    }
    for service in [&app.agent_supervisor_up, &app.websocket_bridge_up] {
        valid &= with_retries(|| async { service.load(Ordering::Acquire) }).await;
    }
    valid &= with_retries(|| async { app.integration_wired.load(Ordering::Acquire) }).await;
    if !valid {
        eprintln!("old-design: validation failed; admitting in degraded mode");
    }
    // 3. Upgrade.
    warmgate_bench_servers::accept(upgrade, true)
}

async fn with_retries<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for attempt in 1..=TRIES {
        if check().await {
            return true;
        }
        if attempt < TRIES {
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
    false
}
