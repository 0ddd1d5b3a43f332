//! Wiring a plan to its drivers, and spawning the engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use warmgate_core::{CheckId, Machine, Plan};
use warmgate_probes::Probe;

use crate::engine::Engine;
use crate::handle::{Published, ReadinessHandle};
use crate::runner::CheckRunner;
use crate::startup_span::StartupSpan;
use crate::{EngineError, EngineObserver};

/// How the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// The longest delay between retries of a check that is not passing,
    /// until the gate has been ready once (after that, each check's
    /// [`ProbeSchedule::backoff_cap`] applies).
    pub retry_cap: Duration,
    /// How often the engine proves it is alive.
    pub heartbeat_interval: Duration,
    /// A heartbeat older than this means the engine is stuck, and liveness
    /// fails.
    pub liveness_timeout: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            retry_cap: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(1),
            liveness_timeout: Duration::from_secs(5),
        }
    }
}

/// How one probed check is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSchedule {
    /// Every attempt is cancelled and counted as failing after this long.
    pub timeout: Duration,
    /// The time between attempts while the check passes.
    pub interval: Duration,
    /// The longest delay between attempts of a check that is not passing
    /// once the gate has been ready: delays are drawn uniformly from zero
    /// to a nominal delay that doubles from 10 ms up to this cap, so they
    /// average `backoff_cap / 2`. Twice `interval` (see
    /// [`ProbeSchedule::new`]) keeps a broken dependency at about one
    /// attempt per interval.
    pub backoff_cap: Duration,
}

impl ProbeSchedule {
    /// A schedule with the default backoff cap: twice `interval`.
    pub const fn new(timeout: Duration, interval: Duration) -> Self {
        Self {
            timeout,
            interval,
            backoff_cap: interval.saturating_mul(2),
        }
    }
}

#[derive(Debug)]
enum Driver {
    Probe {
        probe: Box<dyn Probe>,
        schedule: ProbeSchedule,
    },
    Signal,
}

/// Gives every check of a plan its driver (a probe, or the application's
/// signal), then spawns the engine.
#[derive(Debug)]
pub struct EngineBuilder {
    plan: Plan,
    settings: EngineSettings,
    drivers: Vec<Option<Driver>>,
    ids: HashMap<String, CheckId>,
    observers: Vec<Box<dyn EngineObserver>>,
}

impl EngineBuilder {
    pub fn new(plan: Plan, settings: EngineSettings) -> Self {
        let ids = plan
            .checks()
            .enumerate()
            .map(|(index, (_, spec))| (spec.name.clone(), CheckId(index)))
            .collect();
        let drivers = (0..plan.n_checks()).map(|_| None).collect();
        Self {
            plan,
            settings,
            drivers,
            ids,
            observers: Vec::new(),
        }
    }

    /// Adds an observer, called on the engine task for every transition and
    /// heartbeat, after those added before it.
    pub fn observer(mut self, observer: Box<dyn EngineObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Runs check `name` with `probe` on `schedule`.
    pub fn probe(
        self,
        name: &str,
        schedule: ProbeSchedule,
        probe: Box<dyn Probe>,
    ) -> Result<Self, EngineError> {
        self.driver(name, Driver::Probe { probe, schedule })
    }

    /// Declares check `name` a signal that the application sets through
    /// [`ReadinessHandle::set_signal`].
    pub fn signal(self, name: &str) -> Result<Self, EngineError> {
        self.driver(name, Driver::Signal)
    }

    fn driver(mut self, name: &str, driver: Driver) -> Result<Self, EngineError> {
        let id = self.id(name)?;
        let slot = &mut self.drivers[id.0];
        if slot.is_some() {
            return Err(EngineError::DriverGivenTwice {
                name: name.to_owned(),
            });
        }
        *slot = Some(driver);
        Ok(self)
    }

    fn id(&self, name: &str) -> Result<CheckId, EngineError> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| EngineError::UnknownCheck {
                name: name.to_owned(),
            })
    }

    /// Starts the engine task and one runner task per probed check; every
    /// check's first attempt starts at once. Must be called inside a tokio
    /// runtime.
    pub fn spawn(self) -> Result<ReadinessHandle, EngineError> {
        let specs: Vec<_> = self.plan.checks().map(|(_, spec)| spec.clone()).collect();
        for (spec, driver) in specs.iter().zip(&self.drivers) {
            if driver.is_none() {
                return Err(EngineError::MissingDriver {
                    name: spec.name.clone(),
                    kind: spec.kind.clone(),
                });
            }
        }
        let started_at = Instant::now();
        let machine = Machine::new(self.plan);
        let first = Arc::new(machine.snapshot().clone());
        let published = Arc::new(Published::new(
            started_at,
            Arc::clone(&first),
            Arc::new(machine.verbose()),
            self.settings.liveness_timeout,
        ));
        let (snapshot_tx, snapshot_rx) = watch::channel(first);
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();

        let startup_span = StartupSpan::open(machine.plan());
        let mut signals = HashMap::new();
        for (index, (spec, driver)) in specs.into_iter().zip(self.drivers).enumerate() {
            let check = CheckId(index);
            match driver {
                Some(Driver::Signal) => {
                    signals.insert(spec.name.clone(), check);
                }
                Some(Driver::Probe { probe, schedule }) => {
                    let runner = CheckRunner {
                        check,
                        name: spec.name,
                        probe,
                        schedule,
                        retry_cap: self.settings.retry_cap,
                        inbox_tx: inbox_tx.clone(),
                        startup_span: startup_span.clone(),
                    };
                    tokio::spawn(runner.run());
                }
                None => {}
            }
        }
        let kinds = machine
            .plan()
            .checks()
            .map(|(_, spec)| (spec.name.clone(), spec.kind.clone()))
            .collect();
        let engine = Engine::new(
            machine,
            Arc::clone(&published),
            snapshot_tx,
            inbox_rx,
            self.settings,
            startup_span,
            self.observers,
        );
        tokio::spawn(engine.run());
        Ok(ReadinessHandle::new(
            published,
            snapshot_rx,
            inbox_tx,
            signals,
            kinds,
        ))
    }
}
