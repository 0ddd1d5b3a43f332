//! The warmgate config file: TOML in, a checked [`Config`] out.
//!
//! This crate owns the file's shape, its defaults, its rules, and errors that
//! name the file, the key, the bad value and what was expected. It does not
//! run anything: the engine turns [`Config::plan`] into a running machine and
//! the probes crate turns each [`ProbeConfig`] into a probe.
//!
//! Reading order: `model` is what callers get (with `auth`, `edge`,
//! `upstream` and `telemetry` for their tables); `raw` and `values` are the file as
//! deserialized; `validate` applies defaults and rules; `describe`
//! prints a config back for `warmgate check-config`; `error` words every
//! failure.

#![forbid(unsafe_code)]

mod admin_access;
mod auth;
mod describe;
mod edge;
mod error;
mod model;
mod raw;
mod telemetry;
mod upstream;
mod validate;
mod values;

pub use self::admin_access::{AdminAccess, AdminCredential};
pub use self::auth::{
    AuthConfig, DEFAULT_LEEWAY, JWT_ALGORITHMS, JwtConfig, JwtKeys, MAX_LEEWAY,
    MIN_ADMIN_TOKEN_BYTES, MIN_SECRET_BYTES,
};
pub use self::edge::{ClientsConfig, RoutesConfig};
pub use self::error::{ConfigError, Location};
pub use self::model::{CheckConfig, Config, GateConfig, PhaseConfig, ProbeConfig};
pub use self::telemetry::{
    LogFormat, OtlpProtocol, SamplerError, TelemetryConfig, TraceSampler, parse_otlp_endpoint,
};
pub use self::upstream::{AppKind, RESERVED_PATHS, UpstreamConfig, WebSocketRoute};

/// The secret types live in their own crate, so that the probes and the
/// authenticator can hold them without the config.
pub use warmgate_secret::{SecretText, SecretUrl};

#[cfg(test)]
mod tests;
