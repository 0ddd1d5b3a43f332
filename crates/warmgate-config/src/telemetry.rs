//! The `[telemetry]` table's values: log format, OTLP export and sampling.
//!
//! Each value has a `parse` that the file and the environment share, so an
//! `OTEL_*` variable is checked by the same rule, and worded the same way, as
//! the key it overrides.

use std::fmt;

use crate::SecretUrl;

/// The `[telemetry]` table: how warmgate reports on itself.
///
/// Every value here can be overridden by the environment (see
/// `docs/observability.md`); the program applies that, not this crate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    /// How log lines are written to stderr. Default `text`; the
    /// environment variable `WARMGATE_LOG_FORMAT` overrides it.
    pub log_format: LogFormat,
    /// The Google Cloud project for Cloud Logging trace links; without it,
    /// `GOOGLE_CLOUD_PROJECT` is used.
    pub gcp_project: Option<String>,
    /// Where spans are sent, as OTLP. `None` (the default): no exporter, and
    /// nothing waits on the network.
    pub otlp_endpoint: Option<SecretUrl>,
    /// How spans are sent. Default `http/protobuf`, as the OpenTelemetry
    /// specification recommends.
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` resource attribute. Default `warmgate`.
    pub service_name: Option<String>,
    /// Which traces are recorded. Default `parentbased_always_on`.
    pub sampler: TraceSampler,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
    /// Cloud Logging structured JSON: `severity`, `message`, `time` and the
    /// event's fields.
    Gcp,
}

impl LogFormat {
    /// The names accepted in the file and in `WARMGATE_LOG_FORMAT`.
    pub const NAMES: &str = "\"text\", \"json\" or \"gcp\"";

    /// Parses a format name.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            "gcp" => Some(LogFormat::Gcp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
            LogFormat::Gcp => "gcp",
        }
    }
}

impl<'de> serde::Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LogFormat::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown log format {text:?}, expected {}",
                LogFormat::NAMES
            ))
        })
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP over gRPC, usually port 4317.
    Grpc,
    /// OTLP protobuf over HTTP, usually port 4318, path `/v1/traces`.
    #[default]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The names accepted in the file and in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub const NAMES: &str = "\"grpc\" or \"http/protobuf\"";

    /// Parses a protocol name, as the OpenTelemetry variables spell it.
    pub fn parse(text: &str) -> Result<OtlpProtocol, String> {
        match text {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Err(format!(
                "OTLP protocol \"http/json\" is not supported, expected {}",
                OtlpProtocol::NAMES
            )),
            _ => Err(format!(
                "unknown OTLP protocol {text:?}, expected {}",
                OtlpProtocol::NAMES
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

impl<'de> serde::Deserialize<'de> for OtlpProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        OtlpProtocol::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks an OTLP endpoint: an `http` or `https` URL with a host. It may
/// carry a password or a token in its query, so it is held as a
/// [`SecretUrl`] and the error never repeats it.
pub fn parse_otlp_endpoint(text: &str) -> Result<SecretUrl, String> {
    const EXPECTED: &str = "expected an http:// or https:// URL such as \"http://localhost:4318\"";
    SecretUrl::parse(text, &["http", "https"])
        .map_err(|reason| format!("invalid OTLP endpoint ({reason}), {EXPECTED}"))
}

/// The trace sampler, named as `OTEL_TRACES_SAMPLER` names it. A ratio is
/// the fraction of new traces kept, from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    /// Follows the caller's sampling decision; keeps every new trace.
    #[default]
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl TraceSampler {
    /// The names accepted in the file and in `OTEL_TRACES_SAMPLER`.
    pub const NAMES: &str = "\"always_on\", \"always_off\", \"traceidratio\", \"parentbased_always_on\", \"parentbased_always_off\" or \"parentbased_traceidratio\"";

    /// Parses a sampler name and its argument. Only the two ratio samplers
    /// take an argument, a fraction from 0 to 1 (default 1).
    pub fn parse(name: &str, arg: Option<f64>) -> Result<TraceSampler, SamplerError> {
        let ratio = || match arg {
            None => Ok(1.0),
            Some(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            Some(ratio) => Err(SamplerError::Argument(format!(
                "sampler argument {ratio} is out of range, expected a fraction from 0 to 1"
            ))),
        };
        let sampler = match name {
            "always_on" => TraceSampler::AlwaysOn,
            "always_off" => TraceSampler::AlwaysOff,
            "traceidratio" => return ratio().map(TraceSampler::TraceIdRatio),
            "parentbased_always_on" => TraceSampler::ParentBasedAlwaysOn,
            "parentbased_always_off" => TraceSampler::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => {
                return ratio().map(TraceSampler::ParentBasedTraceIdRatio);
            }
            _ => {
                return Err(SamplerError::Name(format!(
                    "unknown sampler {name:?}, expected {}",
                    TraceSampler::NAMES
                )));
            }
        };
        match arg {
            None => Ok(sampler),
            Some(_) => Err(SamplerError::Argument(format!(
                "sampler {name:?} takes no argument, expected an argument only with \"traceidratio\" or \"parentbased_traceidratio\""
            ))),
        }
    }

    /// Parses a sampler argument written as text, as in
    /// `OTEL_TRACES_SAMPLER_ARG`.
    pub fn parse_arg(text: &str) -> Result<f64, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|ratio| ratio.is_finite())
            .ok_or_else(|| {
                format!("invalid sampler argument {text:?}, expected a fraction from 0 to 1")
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            TraceSampler::AlwaysOn => "always_on",
            TraceSampler::AlwaysOff => "always_off",
            TraceSampler::TraceIdRatio(_) => "traceidratio",
            TraceSampler::ParentBasedAlwaysOn => "parentbased_always_on",
            TraceSampler::ParentBasedAlwaysOff => "parentbased_always_off",
            TraceSampler::ParentBasedTraceIdRatio(_) => "parentbased_traceidratio",
        }
    }
}

impl fmt::Display for TraceSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceSampler::TraceIdRatio(ratio) | TraceSampler::ParentBasedTraceIdRatio(ratio) => {
                write!(f, "{} ({ratio})", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// What is wrong with a sampler setting: its name, or its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplerError {
    Name(String),
    Argument(String),
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerError::Name(message) | SamplerError::Argument(message) => f.write_str(message),
        }
    }
}
