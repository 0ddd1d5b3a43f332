//! The engine task: one loop, one inbox, one owner of the machine.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use warmgate_core::{
    Cadence, CheckId, CheckOutcome, Effect, Event, FailureClass, GateState, Machine, Snapshot,
    Transition,
};

use crate::handle::Published;
use crate::history::{HISTORY_CAPACITY, History};
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
        /// The lease: the signal turns failing unless set again within it.
        /// `None` clears any lease.
        ttl: Option<Duration>,
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
    /// The latest transitions; a copy is published after each one.
    history: History,
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
            history: History::new(HISTORY_CAPACITY),
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
        // One timer for every signal lease: armed for the earliest expiry
        // the machine reports, re-armed whenever that changes.
        let lease_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(lease_timer);
        let mut lease_expiry: Option<Duration> = None;
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
                () = &mut lease_timer, if lease_expiry.is_some() => {
                    self.expire_leases();
                    // Re-armed below even if the next expiry is the same.
                    lease_expiry = None;
                }
            }
            let next_expiry = self.machine.next_lease_expiry();
            if next_expiry != lease_expiry {
                lease_expiry = next_expiry;
                if let Some(expiry) = next_expiry {
                    let wait = expiry.saturating_sub(self.published.elapsed());
                    lease_timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + wait);
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
                ttl,
                applied,
            } => {
                let outcome = if ready {
                    CheckOutcome::Passed
                } else {
                    CheckOutcome::Failed {
                        error: reason.unwrap_or_else(|| "signal set to not ready".to_owned()),
                        class: FailureClass::SignalNotReady,
                    }
                };
                if let Some(spec) = self.machine.check_spec(check) {
                    let ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
                    tracing::info!(check.name = %spec.name, ready, ttl_ms, "signal set");
                }
                self.apply(Event::SignalSet {
                    check,
                    outcome,
                    ttl,
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

    /// Runs out the signal leases that are due: one log line each, then one
    /// event, so the machine turns them all failing in one snapshot.
    fn expire_leases(&mut self) {
        let at = self.published.elapsed();
        for (check, lease) in self.machine.leases_due(at) {
            if let Some(spec) = self.machine.check_spec(check) {
                tracing::warn!(
                    check.name = %spec.name,
                    ttl_ms = u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX),
                    "signal lease expired: not set again within its ttl of {}; the check is failing \
                     until the signal is set again (is the process that sets it alive?)",
                    warmgate_core::human_duration(lease.ttl)
                );
            }
        }
        self.apply(Event::TimePassed { at });
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
        // Recorded before the snapshot is published, so a reader that has
        // seen a snapshot finds its transition in the history.
        if let Some(transition) = &transition {
            let unix_ms = crate::history::unix_ms_now();
            self.history.record(transition, unix_ms);
            crate::measure::state_entered(unix_ms);
            self.published.store_history(Arc::new(self.history.clone()));
        }
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
