//! Telemetry set-up: log lines on stderr, and spans sent as OTLP when an
//! endpoint is configured.
//!
//! `logs` owns the log formats and `traces` the exporter, sampler and
//! resource. The environment beats `[telemetry]` in the file for every
//! setting. The OpenTelemetry layer is installed when spans are exported,
//! or when the `gcp` log format needs trace ids to link lines to traces;
//! otherwise spans are only seen by the log layer. The log layer is
//! filtered by `RUST_LOG`; the trace layer takes warmgate's own `info`
//! spans, whatever `RUST_LOG` says, and never the exporter's own logs.
//!
//! Secrets stay out of the log at every level, third-party lines included:
//! the exporter is never given a secret it could print (`traces`,
//! `export_client`), and the log layer writes through a mask of every secret
//! the config holds (`redact`), the last line of defence.

mod export_client;
mod logs;
mod redact;
mod traces;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};
use warmgate_config::{Config, LogFormat, OtlpProtocol};

pub(crate) use self::traces::Env;

type BoxedLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The crates whose spans are exported.
const TRACED_TARGETS: [&str; 5] = [
    "warmgate",
    "warmgate_engine",
    "warmgate_gate",
    "warmgate_http",
    "warmgate_probes",
];

/// The installed telemetry; [`Telemetry::shutdown`] flushes what is left.
#[derive(Debug)]
pub(crate) struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

/// Reads a variable of the process environment; empty counts as unset.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Installs logging and, when configured, trace export. Over gRPC this must
/// run inside the tokio runtime. An error names the setting at fault.
pub(crate) fn init(whole_config: &Config) -> Result<Telemetry, String> {
    let config = &whole_config.telemetry;
    let env: Env<'_> = &process_env;
    let format = logs::log_format(config.log_format, env)?;
    let log_filter = logs::log_filter(env)?;
    let settings = traces::TraceSettings::resolve(config, env)?;
    let redactor = redact::Redactor::new(redact::config_secrets(
        whole_config,
        settings.export.as_ref().map(|export| &export.endpoint),
        env,
    ));
    let gcp_project = config
        .gcp_project
        .clone()
        .or_else(|| env("GOOGLE_CLOUD_PROJECT"));
    let tracer_provider = if settings.export.is_some() || format == LogFormat::Gcp {
        Some(traces::provider(&settings, env)?)
    } else {
        None
    };
    let trace_layer = tracer_provider.as_ref().map(|provider| {
        let targets = TRACED_TARGETS
            .iter()
            .fold(Targets::new(), |targets, target| {
                targets.with_target(*target, LevelFilter::INFO)
            });
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("warmgate"))
            .with_tracked_inactivity(false)
            .with_filter(targets)
    });
    tracing_subscriber::registry()
        .with(logs::layer(
            format,
            log_filter,
            gcp_project.clone(),
            redact::RedactingStderr::new(redactor),
        ))
        .with(trace_layer)
        .try_init()
        .map_err(|error| format!("cannot install logging: {error}"))?;
    match &settings.export {
        Some(export) => {
            tracing::info!(
                endpoint = %export.endpoint,
                protocol = export.protocol.as_str(),
                sampler = %settings.sampler,
                "exporting spans over OTLP; a failed export is logged and the spans are dropped"
            );
            if export.protocol == OtlpProtocol::Grpc && export.endpoint.has_query() {
                tracing::warn!(
                    endpoint = %export.endpoint,
                    "the OTLP endpoint's query is not sent over gRPC, which uses only the scheme, host and port; send a token as a header (OTEL_EXPORTER_OTLP_HEADERS) instead"
                );
            }
        }
        None => tracing::debug!(
            "no OTLP endpoint configured (otlp_endpoint or OTEL_EXPORTER_OTLP_ENDPOINT); spans are not exported"
        ),
    }
    if format == LogFormat::Gcp && gcp_project.is_none() {
        tracing::warn!(
            "log_format is gcp but no project is known, so log lines carry no trace link; set [telemetry] gcp_project or GOOGLE_CLOUD_PROJECT"
        );
    }
    Ok(Telemetry { tracer_provider })
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter, waiting at
    /// most `within` (what is left of the shutdown budget). Call it outside
    /// async code, before the runtime goes away.
    pub(crate) fn shutdown(self, within: std::time::Duration) {
        let Some(provider) = self.tracer_provider else {
            return;
        };
        if let Err(error) = provider.shutdown_with_timeout(within) {
            tracing::warn!(
                %error,
                within_ms = within.as_millis() as u64,
                "cannot flush the last spans before exiting; they are lost"
            );
        }
    }
}
