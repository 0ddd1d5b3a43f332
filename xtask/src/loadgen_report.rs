//! Reading what `warmgate-loadgen` prints: one JSON object, read strictly
//! as the report type of its scenario (`warmgate_loadgen::report`).
//!
//! A report that does not match its type (a field missing, renamed or
//! unknown, or a value of another type) is an error that names the field,
//! so a change of format on either side fails the run rather than reading
//! as zeros that pass a check.

use serde::de::DeserializeOwned;

/// Reads `text`, the load generator's stdout, as an `R`.
pub(crate) fn parse<R: DeserializeOwned>(text: &str) -> anyhow::Result<R> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let report = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| mismatch::<R>(&at(error.path()), error.inner()))?;
    deserializer
        .end()
        .map_err(|error| mismatch::<R>("after the report", &error))?;
    Ok(report)
}

/// Reads `value`, a report kept as JSON, as an `R`.
pub(crate) fn from_value<R: DeserializeOwned>(value: &serde_json::Value) -> anyhow::Result<R> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| mismatch::<R>(&at(error.path()), error.inner()))
}

/// Where in the report: `at `chat.drain.close_codes``.
fn at(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." {
        "at the top".to_owned()
    } else {
        format!("at `{path}`")
    }
}

fn mismatch<R>(place: &str, error: &serde_json::Error) -> anyhow::Error {
    let name = std::any::type_name::<R>();
    let name = name.rsplit("::").next().unwrap_or(name);
    anyhow::anyhow!(
        "the load generator's output does not read as a `{name}` (is the load generator of another version?): {place}: {error}"
    )
}

#[cfg(test)]
mod tests;
