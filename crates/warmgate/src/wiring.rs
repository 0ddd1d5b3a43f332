//! Turns a checked config into a running engine: one probe per probed
//! check, and the signals the application sets.

use warmgate_config::{Config, ProbeConfig};
use warmgate_engine::{EngineBuilder, EngineError, EngineSettings, ProbeSchedule, ReadinessHandle};
use warmgate_probes::TcpProbe;

/// Signal checks that warmgate sets itself once its public listener is
/// serving. A plan may name them like any other signal.
pub(crate) const LISTENER_SIGNALS: [&str; 2] = ["http_listener", "websocket_integration"];

/// Spawns the engine for `config`. Must run inside the tokio runtime.
pub(crate) fn spawn_engine(config: &Config) -> Result<ReadinessHandle, EngineError> {
    let settings = EngineSettings {
        retry_cap: config.gate.retry_cap,
        ..EngineSettings::default()
    };
    let mut builder = EngineBuilder::new(config.plan(), settings);
    for check in config.phases.iter().flat_map(|phase| &phase.checks) {
        let schedule = ProbeSchedule {
            timeout: check.timeout,
            interval: check.interval,
        };
        builder = match &check.probe {
            ProbeConfig::Tcp { addr } => {
                builder.probe(&check.name, schedule, Box::new(TcpProbe::new(addr.clone())))?
            }
            ProbeConfig::Signal => builder.signal(&check.name)?,
        };
    }
    builder.spawn()
}
