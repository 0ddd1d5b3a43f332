//! The bodies of the fuzz targets: one function per parser that sees
//! outside input, taking the fuzzer's bytes, calling the parser through its
//! public API and checking the promises it makes besides not panicking.
//!
//! The fuzz binaries under `fuzz/fuzz_targets/` are one line each around a
//! body here, and this crate's tests replay every committed corpus input and
//! crash reproduction through the same body, so a crash found by the fuzzer
//! and its regression test run exactly the same code. A body never panics on
//! its own account except through an `assert!` of a documented promise; any
//! panic is a finding.
//!
//! - [`client_message`]: a text frame from a `/ws` client.
//! - [`handshake`]: the upgrade request's method and headers.
//! - [`config_file`]: the TOML config file.
//! - [`jwt_header`]: a bearer token's JWT header.
//! - [`token_from_request`]: finding the bearer token in an upgrade request.
//!
//! [`TARGETS`] lists them by the name that the fuzz binary, its corpus
//! directory and its regression directory share. `docs/fuzzing.md` says how
//! to run them and how to add one.

#![forbid(unsafe_code)]

pub mod client_message;
pub mod config_file;
pub mod handshake;
pub mod jwt_header;
pub mod request;
pub mod token_from_request;

/// One fuzz target: the name shared by `fuzz/fuzz_targets/<name>.rs`,
/// `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/`, and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub body: fn(&[u8]),
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "client_message",
        body: client_message::fuzz,
    },
    Target {
        name: "handshake",
        body: handshake::fuzz,
    },
    Target {
        name: "config_file",
        body: config_file::fuzz,
    },
    Target {
        name: "jwt_header",
        body: jwt_header::fuzz,
    },
    Target {
        name: "token_from_request",
        body: token_from_request::fuzz,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}
