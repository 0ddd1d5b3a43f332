//! Trace export: which OTLP endpoint, protocol, sampler and resource, and the
//! tracer provider built from them.
//!
//! The standard OpenTelemetry variables beat `[telemetry]` in the file, as
//! `WARMGATE_*` variables do elsewhere:
//! - endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), then
//!   `OTEL_EXPORTER_OTLP_ENDPOINT`, then `otlp_endpoint` (both a base URL:
//!   over HTTP, `/v1/traces` is appended);
//! - protocol: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
//!   `OTEL_EXPORTER_OTLP_PROTOCOL`, then `otlp_protocol`;
//! - sampler: `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG`, then
//!   `sampler` with `sampler_arg`;
//! - service name: `OTEL_SERVICE_NAME`, then `service.name` in
//!   `OTEL_RESOURCE_ATTRIBUTES`, then `service_name`, then `warmgate`;
//! - timeout: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, then
//!   `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), then 10 s.
//!
//! Headers and compression come from the `OTEL_EXPORTER_OTLP_*` variables,
//! which the exporter reads itself. With no endpoint anywhere, no exporter
//! exists and nothing waits on the network.
//!
//! The endpoint is a [`SecretUrl`]: logs and errors show it redacted, and the
//! exporter, which logs the URL it posts to at `debug` when an export fails
//! (and its HTTP client's error, which repeats that URL), is never given a
//! secret in it:
//! - a user and password are sent as an `Authorization: Basic` header;
//! - over HTTP, the exporter is given the URL without its query, and its
//!   HTTP client is ours ([`ExportClient`]), which alone holds the query,
//!   puts it back on each request as it sends it, and strips the URL from
//!   its errors;
//! - over gRPC, only the scheme, host and port are ever used (tonic sends
//!   each call to the service's own path), so the exporter is given the URL
//!   without its query, and a query is reported as ignored.
//!
//! Keeping the exporter's own `debug` lines (and the HTTP and gRPC clients'
//! `trace` lines) out of the log by level was not chosen: they are what an
//! operator needs when exports fail, and a level does not say what a newer
//! release will print. What the exporter cannot know it cannot print; the
//! log writer's mask (`redact`) catches what a crate would echo anyway.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;

use opentelemetry::KeyValue;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    SpanExporter, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use warmgate_config::{
    OtlpProtocol, SecretText, SecretUrl, TelemetryConfig, TraceSampler, parse_otlp_endpoint,
};

use super::export_client::ExportClient;

/// Reads one environment variable; an empty value counts as unset, as the
/// OpenTelemetry specification asks.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the tracer provider is built from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TraceSettings {
    /// `None`: spans get ids (for log correlation) but are not exported.
    pub(crate) export: Option<TraceExport>,
    pub(crate) sampler: TraceSampler,
    /// The name to use when the environment names none.
    pub(crate) service_name: String,
}

/// Where and how spans are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceExport {
    /// The URL handed to the exporter: for HTTP, the full `/v1/traces` URL.
    pub(crate) endpoint: SecretUrl,
    pub(crate) protocol: OtlpProtocol,
    /// How long one export request may take.
    pub(crate) timeout: Duration,
}

/// The export timeout when no variable sets one, as the specification says.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl TraceSettings {
    /// The settings from the file and the environment; an error names the
    /// variable and what was expected.
    pub(crate) fn resolve(config: &TelemetryConfig, env: Env<'_>) -> Result<Self, String> {
        let protocol = match first_set(
            env,
            &[
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        ) {
            Some((name, value)) => {
                OtlpProtocol::parse(value.trim()).map_err(|message| format!("{name}: {message}"))?
            }
            None => config.otlp_protocol,
        };
        let export = if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(
                parse_otlp_endpoint(url.trim())
                    .map_err(|message| format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {message}"))?,
            )
        } else if let Some(base) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let base = parse_otlp_endpoint(base.trim())
                .map_err(|message| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {message}"))?;
            Some(signal_url(&base, protocol))
        } else {
            config
                .otlp_endpoint
                .as_ref()
                .map(|base| signal_url(base, protocol))
        };
        let sampler = match env("OTEL_TRACES_SAMPLER") {
            Some(name) => {
                let arg = env("OTEL_TRACES_SAMPLER_ARG")
                    .map(|arg| TraceSampler::parse_arg(&arg))
                    .transpose()
                    .map_err(|message| format!("OTEL_TRACES_SAMPLER_ARG: {message}"))?;
                TraceSampler::parse(name.trim(), arg)
                    .map_err(|error| format!("OTEL_TRACES_SAMPLER: {error}"))?
            }
            None => config.sampler,
        };
        let timeout = match first_set(
            env,
            &["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"],
        ) {
            Some((name, value)) => value
                .trim()
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| {
                    format!(
                        "{name}: invalid timeout {value:?}, expected a number of milliseconds such as 10000"
                    )
                })?,
            None => DEFAULT_EXPORT_TIMEOUT,
        };
        Ok(TraceSettings {
            export: export.map(|endpoint| TraceExport {
                endpoint,
                protocol,
                timeout,
            }),
            sampler,
            service_name: config
                .service_name
                .clone()
                .unwrap_or_else(|| "warmgate".to_owned()),
        })
    }
}

/// The first of `names` that is set, with its value.
fn first_set<'n>(env: Env<'_>, names: &[&'n str]) -> Option<(&'n str, String)> {
    names
        .iter()
        .find_map(|name| env(name).map(|value| (*name, value)))
}

/// The URL the exporter posts to: over HTTP the base URL plus `/v1/traces`,
/// over gRPC the base URL itself.
fn signal_url(base: &SecretUrl, protocol: OtlpProtocol) -> SecretUrl {
    match protocol {
        OtlpProtocol::Grpc => base.clone(),
        OtlpProtocol::HttpProtobuf => base.join_path("/v1/traces"),
    }
}

/// The `Authorization` value for a user and password: HTTP Basic.
pub(crate) fn basic_authorization(user: &str, password: &SecretText) -> String {
    let pair = format!("{user}:{}", password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The resource every span carries: the service's name, version and
/// instance id, anything in `OTEL_RESOURCE_ATTRIBUTES`, and on Cloud Run
/// the service, revision and configuration.
pub(crate) fn resource(settings: &TraceSettings, env: Env<'_>) -> Resource {
    // The default detectors read OTEL_SERVICE_NAME and
    // OTEL_RESOURCE_ATTRIBUTES; only when neither names the service does
    // the configured name apply.
    let environment_names_service = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        });
    let mut builder = Resource::builder();
    if !environment_names_service {
        builder = builder.with_service_name(settings.service_name.clone());
    }
    builder = builder.with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance_id()),
    ]);
    builder.with_attributes(cloud_run_attributes(env)).build()
}

/// Cloud Run's `K_*` variables as resource attributes, named as the
/// OpenTelemetry semantic conventions name them where they have a name.
fn cloud_run_attributes(env: Env<'_>) -> Vec<KeyValue> {
    let Some(service) = env("K_SERVICE") else {
        return Vec::new();
    };
    let mut attributes = vec![
        KeyValue::new("cloud.provider", "gcp"),
        KeyValue::new("cloud.platform", "gcp_cloud_run"),
        KeyValue::new("faas.name", service),
    ];
    if let Some(revision) = env("K_REVISION") {
        attributes.push(KeyValue::new("faas.version", revision));
    }
    if let Some(configuration) = env("K_CONFIGURATION") {
        attributes.push(KeyValue::new("gcp.cloud_run.configuration", configuration));
    }
    attributes
}

/// A random UUID (version 4) naming this process, as `service.instance.id`
/// asks.
fn instance_id() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn sampler(sampler: TraceSampler) -> Sampler {
    match sampler {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TraceSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TraceSampler::ParentBasedTraceIdRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// Builds the tracer provider. Over gRPC this must run inside the tokio
/// runtime, whose tasks carry the channel.
pub(crate) fn provider(
    settings: &TraceSettings,
    env: Env<'_>,
) -> Result<SdkTracerProvider, String> {
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler(settings.sampler))
        .with_resource(resource(settings, env));
    if let Some(export) = &settings.export {
        let (endpoint, credentials) = export.endpoint.split_credentials();
        let authorization =
            credentials.map(|(user, password)| basic_authorization(&user, &password));
        // All the exporter is given: no credentials, no query.
        let bare = endpoint.without_query();
        let failed = |error: String| {
            // The exporter's errors may quote the URL it was given.
            format!(
                "cannot set up the OTLP exporter for {} ({}): {}",
                export.endpoint,
                export.protocol.as_str(),
                error.replace(bare.expose(), bare.redacted())
            )
        };
        let exporter = match export.protocol {
            OtlpProtocol::Grpc => {
                let mut builder = SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(bare.expose());
                if let Some(authorization) = authorization {
                    let mut metadata = MetadataMap::new();
                    let value = authorization.parse().map_err(|_| {
                        failed("the user or password is not valid in a header".to_owned())
                    })?;
                    metadata.insert("authorization", value);
                    builder = builder.with_metadata(metadata);
                }
                builder.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let client = ExportClient::new(endpoint.clone(), export.timeout).map_err(failed)?;
                let mut builder = SpanExporter::builder()
                    .with_http()
                    .with_endpoint(bare.expose())
                    .with_http_client(client);
                if let Some(authorization) = authorization {
                    builder = builder
                        .with_headers(HashMap::from([("authorization".to_owned(), authorization)]));
                }
                builder.build()
            }
        }
        .map_err(|error| failed(error.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests;
