//! The observer seam: code that must see every transition and every
//! heartbeat as the engine task makes them, such as a service manager's
//! notifications.
//!
//! Readers of the `watch` channel see only the latest snapshot, so two quick
//! transitions can reach them as one change. An observer is called on the
//! engine task itself, in order, once per transition and once per heartbeat
//! tick, so it sees every transition and stops hearing heartbeats the moment
//! the engine stops turning. The engine knows nothing of what an observer
//! does with them: systemd, for one, lives in the `warmgate` program.

use std::fmt::Debug;

use warmgate_core::{Snapshot, Transition};

/// Watches the engine from inside its task.
///
/// Every method runs on the engine task, between two events: it must return
/// promptly and must not panic, or it stalls (or ends) the engine, and with
/// it liveness. An observer that fails to do its work reports that itself;
/// the engine goes on either way.
///
/// The calls come in this order: [`started`](EngineObserver::started) once,
/// before any event; then [`transition`](EngineObserver::transition) for
/// every state change and [`heartbeat`](EngineObserver::heartbeat) on every
/// tick of the engine's heartbeat, interleaved as they happen. Observers
/// registered on one engine are called in the order they were registered.
pub trait EngineObserver: Send + Debug + 'static {
    /// The engine task started; `snapshot` is the first one published (its
    /// state is `starting`).
    fn started(&mut self, snapshot: &Snapshot) {
        let _ = snapshot;
    }

    /// The state changed. Called once for every transition, in order, after
    /// the snapshot that first shows it (`snapshot`, whose `seq` is
    /// `transition.seq`) is published.
    fn transition(&mut self, transition: &Transition, snapshot: &Snapshot);

    /// The engine's heartbeat ticked, every `heartbeat_interval` of
    /// [`EngineSettings`](crate::EngineSettings) while the engine runs (the
    /// first tick comes at once). `snapshot` is the latest published one.
    fn heartbeat(&mut self, snapshot: &Snapshot);
}
