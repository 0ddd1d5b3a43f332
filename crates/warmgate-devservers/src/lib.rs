//! Real, ephemeral PostgreSQL and Redis servers on loopback, for tests and
//! for `cargo xtask deps`.
//!
//! Each server lives in a directory the caller chooses (a [`ScratchDir`] is
//! the easy choice in tests), listens on a free port of `127.0.0.1` only, and
//! has a generated password. The API is synchronous and uses only the
//! standard library: async tests call it directly or from
//! `tokio::task::spawn_blocking`. Starting returns once the server answers,
//! so a test never waits on anything itself.
//!
//! This crate does not install anything: a missing program is an error that
//! names the Debian package to install. It does not pick versions either: it
//! uses the newest PostgreSQL under `/usr/lib/postgresql`, else the one on
//! the `PATH`, and whichever `redis-server` is on the `PATH`.
//!
//! For the auth service, [`SigningKey`] stands in for an identity provider:
//! it makes an ES256 key, publishes it as a JWKS document and signs tokens,
//! so tests and `cargo xtask chaos` can run a real JWKS endpoint.
//!
//! The [`process`] module answers the process questions that these servers,
//! xtask and the tests share: it sends signals, tells whether a process is
//! alive, gives the user id and finds programs on the `PATH`, all without
//! starting a program or using unsafe code.
//!
//! The [`serving`] module reads and writes the serving line, the first
//! line warmgate and the benchmark servers print on stdout to say where
//! they listen, for xtask and the tests.
//!
//! The [`stand_in_backend`] module says where the stand-in upstream
//! (`tests/backend/app.py`) and its virtualenv live and how it is started,
//! for xtask, which installs it, and the tests, which run it.
//!
//! The [`idle_close`] module is a stand-in HTTP/1.1 server that closes a
//! keep-alive connection as the client reuses it, for the tests of every
//! HTTP client that must survive that race.
//!
//! Reading order: [`Postgres`], [`Redis`], then [`ScratchDir`] and
//! [`generate_password`], [`process`], and the one error type,
//! [`DevServerError`].

#![forbid(unsafe_code)]

mod command;
mod ephemeral;
mod error;
pub mod idle_close;
mod jwks;
mod postgres;
pub mod process;
mod redis;
pub mod serving;
mod settings_file;
pub mod stand_in_backend;
mod workspace;

pub use self::ephemeral::{ScratchDir, generate_password};
pub use self::error::DevServerError;
pub use self::jwks::{SigningKey, TokenClaims, jwks_document};
pub use self::postgres::Postgres;
pub use self::redis::Redis;
pub use self::workspace::target_dir;

#[cfg(test)]
mod tests;
