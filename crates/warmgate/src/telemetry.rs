//! Logging set-up: where log lines go and how they look.
//!
//! Lines go to stderr, filtered by `RUST_LOG` (default `info`), in one of
//! three formats (`[telemetry] log_format`, overridden by
//! `WARMGATE_LOG_FORMAT`):
//! - `text`: human-readable lines;
//! - `json`: one JSON object per line, with the event's fields and spans;
//! - `gcp`: Cloud Logging structured JSON: `severity`, `message`, `time`,
//!   the event's fields, and the names of the spans it happened in.

use std::fmt;
use std::io::IsTerminal;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use warmgate_config::LogFormat;

/// The environment variable that overrides `[telemetry] log_format`.
pub(crate) const LOG_FORMAT_ENV: &str = "WARMGATE_LOG_FORMAT";

/// The log format: the environment's if set, else the config's. An unknown
/// name in the environment is an error naming the variable.
pub(crate) fn log_format(configured: LogFormat) -> Result<LogFormat, String> {
    match std::env::var(LOG_FORMAT_ENV) {
        Ok(name) => LogFormat::parse(&name).ok_or_else(|| {
            format!(
                "{LOG_FORMAT_ENV}: unknown log format {name:?}, expected {}",
                LogFormat::NAMES
            )
        }),
        Err(_) => Ok(configured),
    }
}

pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Gcp => builder.event_format(GcpFormat).init(),
    }
}

/// Cloud Logging's structured JSON, one object per line.
struct GcpFormat;

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
        let line = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
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
