//! A service that embeds the gate: an "assistant" that must load its model
//! before it can answer, and whose clients are held (and told so) until it
//! has.
//!
//! Three steps, each a few lines:
//! 1. A plan with one signal check, `model_loaded`, and the engine that
//!    publishes readiness ([`start_engine`]).
//! 2. A [`Gate`] over that readiness, and the service's handler on `/ws`
//!    through [`handler`]: it receives each client only once the gate has
//!    admitted it, with the messages the client sent while held first
//!    ([`router`]).
//! 3. The service sets `model_loaded` when its model is ready
//!    (`ReadinessHandle::set_signal`), which releases every held client at
//!    once.
//! 4. The probes (`/livez`, `/readyz`, `/startupz`) for Kubernetes or Cloud
//!    Run come from `warmgate_http::public_router`, on the same readiness.
//! 5. On SIGTERM the service asks the engine to drain
//!    (`ReadinessHandle::drain`): `/readyz` turns 503, held clients are
//!    told `unavailable`, admitted ones `draining` and closed with 1001
//!    after `drain_grace`; it exits once every WebSocket has closed
//!    ([`Gate::counts`]).
//!
//! `src/main.rs` serves it; the test below drives it with a real client.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use warmgate_auth::Authenticator;
use warmgate_core::{CheckSpec, PhaseSpec, Plan};
use warmgate_engine::{EngineBuilder, EngineSettings, ReadinessHandle};
use warmgate_gate::{AdmittedSocket, Gate, GateSettings, Message, handler};
use warmgate_http::{PublicSettings, public_router};

/// The signal the service sets once its model is loaded.
pub const MODEL_LOADED: &str = "model_loaded";

/// Starts the readiness engine: one required signal check, and a startup
/// deadline of a minute. Must be called inside a tokio runtime.
///
/// # Errors
///
/// When the plan or the engine cannot be built (never, for this plan).
pub fn start_engine() -> anyhow::Result<ReadinessHandle> {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "model".to_owned(),
            checks: vec![CheckSpec::new(MODEL_LOADED, "signal").thresholds(1, 1)],
        }],
        Duration::from_secs(60),
    )?;
    Ok(EngineBuilder::new(plan, EngineSettings::default())
        .signal(MODEL_LOADED)?
        .spawn()?)
}

/// The service's routes: `/ws` behind the gate, and the probes; and the
/// gate, whose connection counts tell when the drain is over.
pub fn router(handle: ReadinessHandle) -> (Router, Gate) {
    let gate = Gate::new(
        handle.clone(),
        GateSettings::default(),
        Authenticator::disabled(),
    );
    let routes = gate
        .route("/ws", Arc::new(handler(assistant)))
        .merge(public_router(handle, &PublicSettings::default()));
    (routes, gate)
}

/// The service's own WebSocket code: it sees only admitted clients, and
/// answers every text message.
async fn assistant(mut socket: AdmittedSocket) {
    while let Some(message) = socket.recv().await {
        let Message::Text(question) = message else {
            continue;
        };
        let answer = Message::Text(format!("you asked: {question}"));
        if socket.send(answer).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
