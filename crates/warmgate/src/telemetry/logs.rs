//! Log lines: where they go and how they look.
//!
//! Lines go to stderr, filtered by `RUST_LOG` (default `info`), in one of
//! three formats (`[telemetry] log_format`, overridden by
//! `WARMGATE_LOG_FORMAT`):
//! - `text`: human-readable lines;
//! - `json`: one JSON object per line, with the event's fields and spans;
//! - `gcp`: Cloud Logging structured JSON: `severity`, `message`, `time`,
//!   the event's fields, the names of the spans it happened in and, inside
//!   a span, the three fields that link the line to its trace.
//!
//! Every format writes through the writer it is given, which masks secrets
//! (see `redact`).

use std::fmt;
use std::io::IsTerminal;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer as _};
use warmgate_config::LogFormat;

use super::redact::RedactingStderr;
use super::{BoxedLayer, Env};

/// The environment variable that overrides `[telemetry] log_format`.
pub(crate) const LOG_FORMAT_ENV: &str = "WARMGATE_LOG_FORMAT";

/// The log format: the environment's if set, else the config's. An unknown
/// name in the environment is an error naming the variable.
pub(crate) fn log_format(configured: LogFormat, env: Env<'_>) -> Result<LogFormat, String> {
    match env(LOG_FORMAT_ENV) {
        Some(name) => LogFormat::parse(name.trim()).ok_or_else(|| {
            format!(
                "{LOG_FORMAT_ENV}: unknown log format {name:?}, expected {}",
                LogFormat::NAMES
            )
        }),
        None => Ok(configured),
    }
}

/// The environment variable that filters log lines.
pub(crate) const LOG_FILTER_ENV: &str = "RUST_LOG";

/// The log filter: `RUST_LOG`'s directives on top of `info`. A directive
/// that does not parse is an error naming the variable, not a silent
/// fallback: an operator who asked for `debug` must not get `info` unseen.
pub(crate) fn log_filter(env: Env<'_>) -> Result<EnvFilter, String> {
    let directives = env(LOG_FILTER_ENV).unwrap_or_default();
    EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::INFO.into())
        .parse(directives.trim())
        .map_err(|error| {
            format!(
                "{LOG_FILTER_ENV}: cannot parse {directives:?}: {error} (a filter is comma-separated \
                 directives such as `info` or `warmgate_gate=debug,info`)"
            )
        })
}

/// The layer that writes log lines to `writer`, filtered by `filter`.
pub(crate) fn layer(
    format: LogFormat,
    filter: EnvFilter,
    gcp_project: Option<String>,
    writer: RedactingStderr,
) -> BoxedLayer {
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text if std::io::stderr().is_terminal() => {
            layer.with_ansi(true).with_filter(filter).boxed()
        }
        LogFormat::Text => layer
            .with_ansi(false)
            .fmt_fields(plain_fields())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Gcp => layer
            .event_format(GcpFormat {
                project: gcp_project,
            })
            .with_filter(filter)
            .boxed(),
    }
}

/// The fields of a text line without colours: `name=value`, separated by
/// spaces, the event's message bare; what tracing-subscriber's
/// `DefaultFields` writes with ANSI off. `DefaultFields` styles every
/// field name even when the style is empty, and that costs more than the
/// formatting itself on the connection span, formatted for every
/// connection (see `docs/benchmarks.md`).
fn plain_fields() -> impl for<'w> FormatFields<'w> + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| match field.name() {
        "message" => write!(writer, "{value:?}"),
        name => write!(
            writer,
            "{}={value:?}",
            name.strip_prefix("r#").unwrap_or(name)
        ),
    })
    .delimited(" ")
}

/// Cloud Logging's structured JSON, one object per line.
struct GcpFormat {
    /// The project that owns the traces; without one, lines carry no
    /// trace link (Cloud Logging needs the full resource name).
    project: Option<String>,
}

impl<S, N> FormatEvent<S, N> for GcpFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let mut object = fields.0;
        let message = object
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        object.insert("message".into(), message);
        object.insert(
            "severity".into(),
            Value::String(severity(*event.metadata().level()).into()),
        );
        object.insert(
            "time".into(),
            Value::String(humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
        );
        object.insert(
            "target".into(),
            Value::String(event.metadata().target().into()),
        );
        if let Some(scope) = context.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|span| Value::String(span.name().to_owned()))
                .collect();
            object.insert("spans".into(), Value::Array(spans));
        }
        if let (Some(project), Some(leaf)) = (&self.project, context.parent_span())
            && let Some(span_context) = otel_span_context(&leaf.id())
        {
            object.insert(
                "logging.googleapis.com/trace".into(),
                Value::String(format!(
                    "projects/{project}/traces/{}",
                    span_context.trace_id()
                )),
            );
            object.insert(
                "logging.googleapis.com/spanId".into(),
                Value::String(span_context.span_id().to_string()),
            );
            object.insert(
                "logging.googleapis.com/trace_sampled".into(),
                Value::Bool(span_context.is_sampled()),
            );
        }
        let line = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// The OpenTelemetry span context of a tracing span, when the OpenTelemetry
/// layer is installed and the span has a valid one.
fn otel_span_context(id: &tracing::span::Id) -> Option<SpanContext> {
    tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(id, dispatch)
    })
    .map(|context| context.span().span_context().clone())
    .filter(SpanContext::is_valid)
}

/// Cloud Logging's severity names.
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Collects an event's fields as JSON values.
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests;
