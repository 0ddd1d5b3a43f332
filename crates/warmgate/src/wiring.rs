//! Turns a checked config into a running engine: one probe per probed
//! check, the signals the application sets, and the systemd notifier when
//! a service manager asked for one.

use anyhow::Context as _;
use warmgate_auth::Authenticator;
use warmgate_config::{Config, ProbeConfig};
use warmgate_engine::{EngineBuilder, EngineSettings, ProbeSchedule, ReadinessHandle};
use warmgate_probes::{HttpProbe, PostgresProbe, Probe, ProbeError, RedisProbe, TcpProbe};

use crate::systemd::SystemdNotifier;

/// Signal checks that warmgate sets itself once its public listener is
/// serving. A plan may name them like any other signal.
pub(crate) const LISTENER_SIGNALS: [&str; 2] = ["http_listener", "websocket_integration"];

/// Spawns the engine for `config`. Must run inside the tokio runtime.
pub(crate) fn spawn_engine(
    config: &Config,
    authenticator: &Authenticator,
) -> anyhow::Result<ReadinessHandle> {
    let mut settings = EngineSettings {
        retry_cap: config.gate.retry_cap,
        ..EngineSettings::default()
    };
    let notifier = SystemdNotifier::from_env(settings.heartbeat_interval);
    if let Some(notifier) = &notifier {
        settings.heartbeat_interval = notifier.heartbeat_interval();
        tracing::info!(
            watchdog_ms = notifier
                .watchdog()
                .map(|watchdog| watchdog.as_millis() as u64),
            heartbeat_ms = settings.heartbeat_interval.as_millis() as u64,
            "NOTIFY_SOCKET is set: notifying the service manager (READY=1 at the first ready, \
             STATUS= per transition, STOPPING=1 at the drain, WATCHDOG=1 per heartbeat when \
             its watchdog is on)"
        );
    }
    let mut builder = EngineBuilder::new(config.plan(), settings);
    if let Some(notifier) = notifier {
        builder = builder.observer(Box::new(notifier));
    }
    for check in config.phases.iter().flat_map(|phase| &phase.checks) {
        let schedule = ProbeSchedule {
            timeout: check.timeout,
            interval: check.interval,
            backoff_cap: check.backoff_cap,
        };
        builder = match probe_for(&check.probe, authenticator)
            .with_context(|| format!("check `{}` cannot be set up", check.name))?
        {
            Some(probe) => builder.probe(&check.name, schedule, probe)?,
            None => builder.signal(&check.name)?,
        };
    }
    Ok(builder.spawn()?)
}

/// The probe for a probed kind, or `None` for a signal.
fn probe_for(
    probe: &ProbeConfig,
    authenticator: &Authenticator,
) -> Result<Option<Box<dyn Probe>>, ProbeError> {
    Ok(Some(match probe {
        ProbeConfig::Signal => return Ok(None),
        // The config allows a `jwks` check only with a JWKS in `[auth]`.
        ProbeConfig::Jwks => match authenticator.jwks_probe() {
            Some(probe) => Box::new(probe),
            None => {
                return Err(ProbeError::InvalidTarget {
                    target: "jwks".to_owned(),
                    reason: "[auth] has no JWKS to load".to_owned(),
                });
            }
        },
        ProbeConfig::Tcp { addr } => Box::new(TcpProbe::new(addr.clone())),
        // The URLs stay secret down to the probes, which read them only to
        // connect.
        ProbeConfig::Postgres { url } => Box::new(PostgresProbe::new(url.clone())?),
        ProbeConfig::Redis { url } => Box::new(RedisProbe::new(url.clone())?),
        ProbeConfig::Http {
            url,
            expect_status,
            expect_body,
        } => Box::new(HttpProbe::new(
            url.clone(),
            expect_status.clone(),
            expect_body.clone(),
        )?),
    }))
}
