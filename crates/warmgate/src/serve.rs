//! Binding the listeners, serving, and the drain sequence.
//!
//! Drain has one trigger, the engine's state: SIGTERM, SIGINT and the admin
//! `POST /drain` all ask the engine to drain. From the moment the published
//! state turns `draining`, `/readyz` answers 503, held WebSocket clients are
//! told `unavailable` (reason `draining`) and closed with 1013, new ones get
//! the same, and admitted ones get `draining` and are closed with 1001 after
//! `drain_grace`. The listeners stay open for `shutdown_delay` (not after
//! SIGINT: a terminal wants its prompt back) and until every WebSocket has
//! closed, then stop; once the HTTP requests in flight are answered (or the
//! grace plus [`GateConfig::CLOSE_MARGIN`] is over) the server is done, and
//! the program flushes its spans and exits 0, all within `shutdown_budget`
//! of the drain's start (see [`crate::budget`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use futures_util::FutureExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warmgate_auth::{Algorithm, AuthSettings, Authenticator, KeySource};
use warmgate_chat::{Chat, InProcessRooms};
use warmgate_config::AppKind;
use warmgate_config::{AuthConfig, Config, GateConfig, JwtKeys};
use warmgate_core::GateState;
use warmgate_engine::ReadinessHandle;
use warmgate_gate::{Application, Echo, Gate, GateSettings};
use warmgate_http::{
    ClientLimitSettings, ClientLimits, HttpActivity, PublicSettings, ServeSettings, admin_router,
    bind_listener, grpc_health_router, public_router, require_admin_token, serve,
};
use warmgate_proxy::{HttpProxy, HttpProxySettings, Upstream};

use crate::budget::ShutdownBudget;
use crate::wiring::{LISTENER_SIGNALS, spawn_engine};

/// Serves until the drain is over. `budget` is started by the first shutdown
/// signal or by the published `draining`, whichever comes first.
///
/// Once both listeners are bound, it prints the serving line on stdout, the
/// only line the server writes there (its log goes to stderr):
/// `warmgate: serving http://PUBLIC (admin http://ADMIN)`, each address as
/// bound (so port 0 shows the port picked). People read it, and so do
/// xtask, the end-to-end tests (`warmgate_devservers::serving`) and the web
/// tests (`web/test/gateway.mjs`); `docs/observability.md` documents it.
/// Change them together.
pub(crate) async fn run(config: Config, budget: Arc<ShutdownBudget>) -> anyhow::Result<()> {
    // Before anything records, so no early sample is lost.
    let render_metrics = crate::metrics::install()?;
    let authenticator = authenticator(&config).context("cannot set up client authentication")?;
    let handle =
        spawn_engine(&config, &authenticator).context("cannot start the readiness engine")?;
    let public = bind("public", config.listen).await?;
    let admin = bind("admin", config.admin_listen).await?;
    let grpc_health = match config.grpc_health_listen {
        Some(address) => Some(bind("gRPC health", address).await?),
        None => None,
    };
    let public_addr = public
        .local_addr()
        .context("cannot read the public address")?;
    let admin_addr = admin
        .local_addr()
        .context("cannot read the admin address")?;
    let settings = GateSettings::from(&config.gate);
    let drain_grace = settings.drain_grace;
    let gate = Gate::new(handle.clone(), settings, authenticator);
    let counts = gate.counts();
    let serve_settings = ServeSettings {
        header_read_timeout: config.gate.handshake_timeout,
        http2: false,
    };
    // The serving line (see above): where to connect.
    println!("warmgate: serving http://{public_addr} (admin http://{admin_addr})");
    tracing::info!(
        public = %public_addr,
        admin = %admin_addr,
        config = %config.source,
        "listeners bound; probes and WebSocket clients can connect now"
    );

    let signal_names: Vec<String> = handle.signal_names().map(str::to_owned).collect();
    for name in LISTENER_SIGNALS {
        if signal_names.iter().any(|signal| signal == name) {
            handle
                .set_signal(name, true, None)
                .with_context(|| format!("cannot set the built-in signal `{name}`"))?;
        }
    }
    let shutdown_delay = config.gate.shutdown_delay;
    let (interrupted_tx, mut interrupted_rx) = watch::channel(false);
    tokio::spawn(drain_on_os_signal(
        handle.clone(),
        drain_grace,
        shutdown_delay,
        interrupted_tx,
        Arc::clone(&budget),
    ));
    // A drain asked for over the admin API starts the budget too.
    tokio::spawn({
        let handle = handle.clone();
        let budget = Arc::clone(&budget);
        async move {
            draining(handle).await;
            budget.start();
        }
    });

    // Both listeners keep serving while draining (so probes see 503 and new
    // WebSocket clients are told `draining`): for `shutdown_delay` at least,
    // since a load balancer may route here for a moment after SIGTERM, and
    // until every WebSocket has closed (held clients at once, admitted ones
    // by `drain_grace`, which the config keeps no shorter than the delay).
    let drained = {
        let handle = handle.clone();
        let counts = counts.clone();
        async move {
            draining(handle).await;
            tokio::select! {
                () = tokio::time::sleep(shutdown_delay) => {}
                _ = interrupted_rx.wait_for(|interrupted| *interrupted) => {}
            }
            counts.all_closed().await;
        }
    };
    let drained = drained.shared();
    let activity = HttpActivity::default();
    let router = public_routes(&config, &handle, &gate)?;
    let public_server = serve(
        public,
        router,
        serve_settings.clone(),
        drained.clone(),
        activity.clone(),
    );
    let mut admin_routes = admin_router(handle.clone(), render_metrics);
    if let Some(token) = &config.admin_token {
        let read_token = config.admin_read_token.as_ref().map(|read| read.expose());
        admin_routes = require_admin_token(admin_routes, token.expose(), read_token);
    }
    // Only `grpc.health.v1.Health`, without a token: it reads what the
    // public probes already tell, and Kubernetes' gRPC probes send none.
    let grpc_health_server = match grpc_health {
        Some(listener) => {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(
                    grpc_health = %address,
                    "gRPC health listener bound; grpc.health.v1.Health is served there without a token"
                );
            }
            serve(
                listener,
                grpc_health_router(handle.clone()),
                ServeSettings {
                    http2: true,
                    ..serve_settings.clone()
                },
                drained.clone(),
                activity.clone(),
            )
            .left_future()
        }
        None => std::future::ready(()).right_future(),
    };
    // gRPC health (HTTP/2 with prior knowledge) beside HTTP/1.1.
    let admin_server = serve(
        admin,
        admin_routes,
        ServeSettings {
            http2: true,
            ..serve_settings
        },
        drained,
        activity.clone(),
    );
    let grace_over = async {
        draining(handle.clone()).await;
        tokio::time::sleep(drain_grace + GateConfig::CLOSE_MARGIN).await;
    };
    tokio::select! {
        ((), (), ()) = async { tokio::join!(public_server, admin_server, grpc_health_server) } => {}
        // What is open, by kind: WebSockets (of them, those still held)
        // and HTTP requests being answered. Idle and half-sent HTTP
        // connections never hold the exit.
        () = grace_over => tracing::warn!(
            grace_ms = drain_grace.as_millis() as u64,
            n_websockets_open = counts.open(),
            n_websockets_held = counts.held(),
            n_http_requests_in_flight = activity.requests_in_flight(),
            "drain grace period over with connections still open; exiting anyway"
        ),
    }
    tracing::info!("drained; exiting");
    Ok(())
}

/// The public listener's routes, as `[routes]` and `[[route]]` ask, the
/// WebSocket routes behind the per-address limits of `[clients]`; with
/// `[upstream] http = true`, every other request goes to the backend.
fn public_routes(config: &Config, handle: &ReadinessHandle, gate: &Gate) -> anyhow::Result<Router> {
    let routes = &config.routes;
    let clients = &config.clients;
    let client_limits = ClientLimits::new(ClientLimitSettings {
        trusted_proxies: clients.trusted_proxies.clone(),
        handshakes_per_second: clients
            .handshakes_per_second_per_address
            .and_then(NonZeroU32::new),
        max_event_streams: clients.max_event_streams_per_address,
    });
    let settings = PublicSettings {
        readiness_detail: routes.readiness_detail,
        client_limits: client_limits.clone(),
    };
    let upstream = match &config.upstream {
        Some(upstream) => Some(
            Upstream::new(
                upstream,
                config.gate.max_message_bytes,
                config.gate.write_timeout,
                config.gate.hold_timeout,
            )
            .context("cannot set up the upstream backend")?,
        ),
        None => None,
    };
    let chat: Arc<dyn Application> = Arc::new(Chat::new(Arc::new(InProcessRooms::new())));
    let mut websockets = Router::new();
    for route in &routes.websocket {
        let app: Arc<dyn Application> = match (route.app, &upstream) {
            (AppKind::Chat, _) => Arc::clone(&chat),
            (AppKind::Echo, _) => Arc::new(Echo),
            (AppKind::Upstream, Some(upstream)) => Arc::new(upstream.clone()),
            (AppKind::Upstream, None) => {
                anyhow::bail!(
                    "route {} names the upstream app but no [upstream] is configured",
                    route.path
                )
            }
        };
        websockets = websockets.merge(gate.route(&route.path, app));
    }
    let mut router =
        public_router(handle.clone(), &settings).merge(client_limits.limit_handshakes(websockets));
    if routes.chat_page {
        router = router.merge(warmgate_web::router());
    }
    if let Some(upstream) = config.upstream.as_ref().filter(|upstream| upstream.http) {
        let proxy = HttpProxy::new(
            upstream,
            handle.clone(),
            HttpProxySettings {
                hold_timeout: config.gate.hold_timeout,
                retry_after: config.gate.retry_after,
            },
        )
        .context("cannot set up the HTTP proxy to the backend")?;
        router = router.merge(proxy.router());
    }
    Ok(router)
}

/// The authenticator `[auth]` asks for.
fn authenticator(config: &Config) -> anyhow::Result<Authenticator> {
    let AuthConfig::Jwt(jwt) = &config.auth else {
        return Ok(Authenticator::disabled());
    };
    let algorithms = jwt
        .algorithms
        .iter()
        .map(|name| {
            name.parse::<Algorithm>()
                .with_context(|| format!("algorithm {name} is not supported"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys = match &jwt.keys {
        // Both stay in their secret types down to the JWKS request and the
        // HMAC key.
        JwtKeys::Jwks(url) => KeySource::Jwks { url: url.clone() },
        JwtKeys::Secret(secret) => KeySource::Secret(secret.clone()),
    };
    let settings = AuthSettings {
        algorithms,
        keys,
        issuer: jwt.issuer.clone(),
        audience: jwt.audience.clone(),
        leeway: jwt.leeway,
        allow_query_token: jwt.allow_query_token,
    };
    Ok(Authenticator::new(settings)?)
}

async fn bind(which: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    bind_listener(addr).with_context(|| format!("cannot bind the {which} listener to {addr}"))
}

/// Resolves once the published state is `draining`.
async fn draining(handle: ReadinessHandle) {
    let mut snapshot_rx = handle.subscribe();
    // An error means the engine is gone, which is also a reason to stop.
    let _ = snapshot_rx
        .wait_for(|snapshot| snapshot.state == GateState::Draining)
        .await;
}

/// Turns SIGTERM or SIGINT into a drain request. SIGINT, at any time,
/// also cuts the shutdown delay short: whoever pressed Ctrl-C is not a load
/// balancer that needs time to stop routing here.
async fn drain_on_os_signal(
    handle: ReadinessHandle,
    drain_grace: Duration,
    shutdown_delay: Duration,
    interrupted_tx: watch::Sender<bool>,
    budget: Arc<ShutdownBudget>,
) {
    let mut signals = OsSignals::new();
    let signal = signals.next().await;
    budget.start();
    let delay = if signal == OsSignal::Interrupt {
        interrupted_tx.send_replace(true);
        Duration::ZERO
    } else {
        shutdown_delay
    };
    if delay.is_zero() {
        tracing::warn!(
            signal = signal.name(),
            "shutdown signal received; readiness turns to draining, held clients are told to come back, admitted ones get {drain_grace:?}; the listeners close once every WebSocket has (another SIGINT exits at once)"
        );
    } else {
        tracing::warn!(
            signal = signal.name(),
            shutdown_delay_ms = delay.as_millis() as u64,
            "shutdown signal received; readiness turns to draining, held clients are told to come back, admitted ones get {drain_grace:?}; the listeners stay open {delay:?} at least for clients still routed here"
        );
    }
    if let Err(error) = handle.drain() {
        tracing::error!(%error, "cannot start draining; exiting without it");
        std::process::exit(1);
    }
    // After SIGTERM, a SIGINT cuts the shutdown delay short; after that (or
    // after a first SIGINT), another SIGINT is someone at a terminal who
    // will not wait for the clients: exit at once.
    let mut interrupted = signal == OsSignal::Interrupt;
    loop {
        if signals.next().await != OsSignal::Interrupt {
            continue;
        }
        if !interrupted {
            interrupted = true;
            interrupted_tx.send_replace(true);
            tracing::warn!(
                signal = "SIGINT",
                "shutdown delay cut short; the listeners close once every WebSocket has; another SIGINT exits at once"
            );
            continue;
        }
        tracing::warn!(
            signal = "SIGINT",
            "second SIGINT: exiting now, without waiting for the open connections"
        );
        std::process::exit(EXIT_INTERRUPTED);
    }
}

/// The exit status after a second SIGINT: 128 + the signal's number, as a
/// shell reports a process that SIGINT ended.
const EXIT_INTERRUPTED: i32 = 130;

/// The signals that start a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OsSignal {
    /// SIGTERM, as an orchestrator sends: the shutdown delay applies.
    Terminate,
    /// SIGINT (Ctrl-C): no shutdown delay.
    Interrupt,
}

impl OsSignal {
    fn name(self) -> &'static str {
        match self {
            OsSignal::Terminate => "SIGTERM",
            OsSignal::Interrupt => "SIGINT",
        }
    }
}

/// The process's SIGTERM and SIGINT, listened for once for its whole life,
/// so that no signal falls between two waits.
struct OsSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl OsSignals {
    fn new() -> OsSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(terminate), Ok(interrupt)) => Some((terminate, interrupt)),
                _ => {
                    tracing::error!(
                        "cannot listen for SIGTERM or SIGINT; only POST /drain can stop warmgate"
                    );
                    None
                }
            };
            OsSignals { streams }
        }
        #[cfg(not(unix))]
        OsSignals {}
    }

    /// The next signal.
    #[cfg(unix)]
    async fn next(&mut self) -> OsSignal {
        let Some((terminate, interrupt)) = &mut self.streams else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => OsSignal::Terminate,
            _ = interrupt.recv() => OsSignal::Interrupt,
        }
    }

    /// The next signal.
    #[cfg(not(unix))]
    async fn next(&mut self) -> OsSignal {
        let _ = tokio::signal::ctrl_c().await;
        OsSignal::Interrupt
    }
}
