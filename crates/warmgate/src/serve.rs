//! Binding the listeners, serving, and the drain sequence.
//!
//! Drain has one trigger, the engine's state: SIGTERM, SIGINT and the admin
//! `POST /drain` all ask the engine to drain, and both servers begin their
//! graceful shutdown when the published state turns `draining`. So `/readyz`
//! answers 503 from the first moment of shutdown while in-flight requests
//! finish.

use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use warmgate_config::Config;
use warmgate_core::GateState;
use warmgate_engine::ReadinessHandle;
use warmgate_http::{admin_router, public_router};

use crate::wiring::{LISTENER_SIGNALS, spawn_engine};

/// How long in-flight requests may take to finish once draining begins;
/// inside Cloud Run's 10 s between SIGTERM and SIGKILL.
const DRAIN_GRACE: Duration = Duration::from_secs(8);

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let handle = spawn_engine(&config).context("cannot start the readiness engine")?;
    let public = bind("public", config.listen).await?;
    let admin = bind("admin", config.admin_listen).await?;
    let public_addr = public
        .local_addr()
        .context("cannot read the public address")?;
    let admin_addr = admin
        .local_addr()
        .context("cannot read the admin address")?;
    // One plain line on stdout for people and scripts: where to connect.
    println!("warmgate: serving http://{public_addr} (admin http://{admin_addr})");
    tracing::info!(
        public = %public_addr,
        admin = %admin_addr,
        config = %config.source,
        "listeners bound; probes can connect now"
    );

    let signal_names: Vec<String> = handle.signal_names().map(str::to_owned).collect();
    for name in LISTENER_SIGNALS {
        if signal_names.iter().any(|signal| signal == name) {
            handle
                .set_signal(name, true, None)
                .with_context(|| format!("cannot set the built-in signal `{name}`"))?;
        }
    }
    tokio::spawn(drain_on_os_signal(handle.clone()));

    let public_server = axum::serve(public, public_router(handle.clone()))
        .with_graceful_shutdown(draining(handle.clone()));
    let admin_server = axum::serve(admin, admin_router(handle.clone()))
        .with_graceful_shutdown(draining(handle.clone()));
    let servers = async {
        let (public_result, admin_result) =
            tokio::join!(public_server.into_future(), admin_server.into_future());
        public_result.context("the public listener failed")?;
        admin_result.context("the admin listener failed")
    };
    let grace_over = async {
        draining(handle.clone()).await;
        tokio::time::sleep(DRAIN_GRACE).await;
    };
    tokio::select! {
        result = servers => result?,
        () = grace_over => tracing::warn!(
            grace_ms = DRAIN_GRACE.as_millis() as u64,
            "drain grace period over with requests still open; exiting anyway"
        ),
    }
    tracing::info!("drained; exiting");
    Ok(())
}

async fn bind(which: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the {which} listener to {addr}"))
}

/// Resolves once the published state is `draining`.
async fn draining(handle: ReadinessHandle) {
    let mut snapshot_rx = handle.subscribe();
    // An error means the engine is gone, which is also a reason to stop.
    let _ = snapshot_rx
        .wait_for(|snapshot| snapshot.state == GateState::Draining)
        .await;
}

/// Turns SIGTERM or SIGINT into a drain request.
async fn drain_on_os_signal(handle: ReadinessHandle) {
    let name = wait_for_os_signal().await;
    tracing::warn!(
        signal = name,
        "shutdown signal received; readiness turns to draining and in-flight requests get {DRAIN_GRACE:?} to finish"
    );
    if let Err(error) = handle.drain() {
        tracing::error!(%error, "cannot start draining; exiting without it");
        std::process::exit(1);
    }
}

#[cfg(unix)]
async fn wait_for_os_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM or SIGINT; only POST /drain can stop warmgate");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_os_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}
