//! Serves the embedded example on `127.0.0.1:8090`: clients that connect
//! to `/ws` in the first three seconds are held and warmed (offer the
//! subprotocol `warmgate.v1` to see the frames), then answered once the
//! "model" is loaded.

use std::net::SocketAddr;
use std::time::Duration;

use warmgate_example_embedded::{MODEL_LOADED, router, start_engine};

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
    let app = router(handle).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
