//! Probes: one attempt at checking one dependency.
//!
//! A [`Probe`] performs a single attempt and says whether the dependency
//! answered as expected. It does not schedule itself, retry, time itself out
//! or catch its own panics: the engine (`warmgate-engine`) does all of that
//! around every attempt, so a probe stays a plain async function with state.
//!
//! Probes: `tcp`, `postgres` (`SELECT 1`), `redis` (`PING`) and `http`
//! (`GET`). In-process `signal` checks have no probe; the application sets
//! them.
//!
//! The URL probes hold their URL as a [`SecretUrl`] and read
//! [`SecretUrl::expose`] only in the call that connects; their `Debug`,
//! their `target` and their errors show the redacted form.

#![forbid(unsafe_code)]

mod error;
mod http;
mod postgres;
mod probe;
mod redis;
mod tcp;

pub use self::error::ProbeError;
pub use self::http::HttpProbe;
pub use self::postgres::PostgresProbe;
pub use self::probe::{Probe, ProbeFuture};
pub use self::redis::RedisProbe;
pub use self::tcp::TcpProbe;
pub use warmgate_secret::SecretUrl;

#[cfg(test)]
mod tests;
