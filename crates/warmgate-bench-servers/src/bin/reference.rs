//! The floor: bare fastwebsockets on axum. Usage: `warmgate-reference [ADDR]`.

use axum::Router;
use axum::routing::get;
use fastwebsockets::upgrade::IncomingUpgrade;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let router = Router::new()
        .route(
            "/ws",
            get(|upgrade: IncomingUpgrade| async { warmgate_bench_servers::accept(upgrade, true) }),
        )
        .route(
            "/echo",
            get(|upgrade: IncomingUpgrade| async {
                warmgate_bench_servers::accept(upgrade, false)
            }),
        )
        .route("/readyz", get(|| async { "ready\n" }));
    warmgate_bench_servers::serve(
        "reference",
        warmgate_bench_servers::listen_address()?,
        router,
    )
    .await
}
