//! The engine task: one loop, one inbox, one owner of the machine.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use warmgate_core::{
    Cadence, CheckId, CheckOutcome, Effect, Event, GateState, Machine, Snapshot, Transition,
};

use crate::handle::Published;
use crate::startup_span::StartupSpan;
use crate::{EngineObserver, EngineSettings};

/// Everything the engine's inbox carries.
#[derive(Debug)]
pub(crate) enum Message {
    /// A runner finished an attempt and waits to hear when to run next.
    AttemptCompleted {
        check: CheckId,
        outcome: CheckOutcome,
        latency: Duration,
        cadence_tx: oneshot::Sender<Cadence>,
    },
    /// The application set a signal check.
    SignalSet {
        check: CheckId,
        ready: bool,
        reason: Option<String>,
        /// Told once the signal is applied and its snapshot published.
        applied: Option<oneshot::Sender<()>>,
    },
    /// The application asked to drain.
    DrainRequested,
}

pub(crate) struct Engine {
    machine: Machine,
    published: Arc<Published>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    inbox_rx: mpsc::UnboundedReceiver<Message>,
    settings: EngineSettings,
    startup_span: StartupSpan,
    /// Called on this task for every transition and heartbeat.
    observers: Vec<Box<dyn EngineObserver>>,
}

impl Engine {
    pub(crate) fn new(
        machine: Machine,
        published: Arc<Published>,
        snapshot_tx: watch::Sender<Arc<Snapshot>>,
        inbox_rx: mpsc::UnboundedReceiver<Message>,
        settings: EngineSettings,
        startup_span: StartupSpan,
        observers: Vec<Box<dyn EngineObserver>>,
    ) -> Self {
        Self {
            machine,
            published,
            snapshot_tx,
            inbox_rx,
            settings,
            startup_span,
            observers,
        }
    }

    /// Runs until every sender to the inbox is gone: every handle dropped
    /// and every runner stopped.
    pub(crate) async fn run(mut self) {
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let until_deadline = self
            .machine
            .plan()
            .startup_deadline()
            .saturating_sub(self.published.elapsed());
        let deadline = tokio::time::sleep(until_deadline);
        tokio::pin!(deadline);
        let mut deadline_passed = false;
        crate::measure::init(
            self.machine.plan(),
            self.machine.snapshot(),
            self.published.elapsed(),
        );
        tracing::info!(
            n_checks = self.machine.plan().n_checks(),
            startup_deadline_ms = self.machine.plan().startup_deadline().as_millis() as u64,
            state = %self.machine.state(),
            "readiness engine started; every check's first attempt starts now"
        );
        for observer in &mut self.observers {
            observer.started(self.machine.snapshot());
        }
        loop {
            tokio::select! {
                message = self.inbox_rx.recv() => match message {
                    Some(message) => self.handle(message),
                    None => break,
                },
                _ = heartbeat.tick() => self.beat(),
                () = &mut deadline, if !deadline_passed => {
                    deadline_passed = true;
                    let at = self.published.elapsed();
                    self.apply(Event::TimePassed { at });
                }
            }
        }
        tracing::debug!("readiness engine stopped: no handle or runner is left");
    }

    fn handle(&mut self, message: Message) {
        let at = self.published.elapsed();
        match message {
            Message::AttemptCompleted {
                check,
                outcome,
                latency,
                cadence_tx,
            } => {
                self.apply(Event::CheckCompleted {
                    check,
                    outcome,
                    latency,
                    at,
                });
                // The runner may have been cancelled meanwhile; then nobody
                // waits for the cadence, which is fine.
                let _ = cadence_tx.send(self.machine.cadence(check));
            }
            Message::SignalSet {
                check,
                ready,
                reason,
                applied,
            } => {
                let outcome = if ready {
                    CheckOutcome::Passed
                } else {
                    CheckOutcome::Failed {
                        error: reason.unwrap_or_else(|| "signal set to not ready".to_owned()),
                    }
                };
                if let Some(spec) = self.machine.check_spec(check) {
                    tracing::info!(check.name = %spec.name, ready, "signal set");
                }
                self.apply(Event::CheckCompleted {
                    check,
                    outcome,
                    latency: Duration::ZERO,
                    at,
                });
                if let Some(applied) = applied {
                    // The caller may have stopped waiting; that is fine.
                    let _ = applied.send(());
                }
            }
            Message::DrainRequested => self.apply(Event::DrainRequested { at }),
        }
    }

    /// One heartbeat: liveness, then the observers. A stuck engine misses
    /// both.
    fn beat(&mut self) {
        self.published.beat();
        for observer in &mut self.observers {
            observer.heartbeat(self.machine.snapshot());
        }
    }

    fn apply(&mut self, event: Event) {
        let effects = self.machine.apply(event);
        let transition = effects.iter().find_map(|effect| match effect {
            Effect::Transition(transition) => Some(transition.clone()),
            Effect::Publish(_) => None,
        });
        self.published
            .store_verbose(Arc::new(self.machine.verbose()));
        for effect in effects {
            match effect {
                Effect::Transition(transition) => self.report(&transition),
                Effect::Publish(snapshot) => {
                    crate::measure::published(
                        &snapshot,
                        transition.as_ref(),
                        self.published.elapsed(),
                    );
                    let snapshot = Arc::new(snapshot);
                    // The ArcSwap goes first so that a task woken by the
                    // watch channel never reads an older snapshot from it.
                    self.published.store_snapshot(Arc::clone(&snapshot));
                    self.snapshot_tx.send_replace(Arc::clone(&snapshot));
                    // The machine makes at most one transition per event,
                    // and its snapshot is this one.
                    if let Some(transition) = &transition {
                        for observer in &mut self.observers {
                            observer.transition(transition, &snapshot);
                        }
                    }
                }
            }
        }
    }

    /// The log line and the span of one transition. While startup lasts,
    /// the transition joins the `startup` trace; the first state other
    /// than `starting` ends it.
    fn report(&self, transition: &Transition) {
        let from = transition.from.as_str();
        let to = transition.to.as_str();
        let seq = transition.seq;
        let reason = transition.reason.as_str();
        let span = tracing::info_span!(
            parent: self.startup_span.id(),
            "state_transition",
            from,
            to,
            // As i64: the OpenTelemetry layer exports a u64 as text.
            seq = seq as i64,
            reason
        );
        let _entered = span.enter();
        match transition.to {
            GateState::Ready | GateState::Degraded | GateState::Draining => {
                tracing::info!(from, to, seq, reason, "readiness state changed")
            }
            GateState::Starting | GateState::NotReady => tracing::warn!(
                from,
                to,
                seq,
                reason,
                "readiness state changed; new clients are held until it recovers"
            ),
            GateState::Failed => tracing::error!(
                from,
                to,
                seq,
                reason,
                "startup missed its deadline; checks keep running and a later success still leads to ready"
            ),
        }
        if transition.from == GateState::Starting && transition.to != GateState::Starting {
            self.startup_span.close(to, self.published.elapsed());
        }
    }
}
