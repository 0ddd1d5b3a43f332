//! Serves the embedded example on `127.0.0.1:8090`: clients that connect
//! to `/ws` in the first three seconds are held and warmed (offer the
//! subprotocol `warmgate.v1` to see the frames), then answered once the
//! "model" is loaded. `/readyz` is the readiness probe. SIGTERM or Ctrl-C
//! drains: clients are told, then closed with 1001 after `drain_grace`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use warmgate_example_embedded::{MODEL_LOADED, router, start_engine};
use warmgate_gate::GateSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handle = start_engine()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    println!("embedded example: ws://{}/ws", listener.local_addr()?);
    let loader = handle.clone();
    tokio::spawn(async move {
        // Standing in for loading a model.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Err(error) = loader.set_signal(MODEL_LOADED, true, None) {
            eprintln!("cannot set {MODEL_LOADED}: {error}");
        }
    });
    let (routes, gate) = router(handle.clone());
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let drained = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("draining: clients are told, then closed after drain_grace");
        if let Err(error) = handle.drain() {
            eprintln!("cannot drain: {error}");
        }
        // Every WebSocket is closed by drain_grace; a second more for the
        // closing handshakes.
        let grace = GateSettings::default().drain_grace + Duration::from_secs(1);
        let _ = tokio::time::timeout(grace, gate.counts().all_closed()).await;
    };
    let app = routes.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(drained)
        .await?;
    Ok(())
}
