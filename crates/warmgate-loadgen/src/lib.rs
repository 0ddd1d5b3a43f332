//! The load generator's output, as types: what `warmgate-loadgen` prints
//! for each scenario, and what xtask (`bench`, `chaos`, `soak`) reads back.
//!
//! Both sides use these types, so the format is one contract rather than
//! two guesses: the program builds its output from them, and xtask reads it
//! strictly with them (an unknown, missing or renamed field is an error
//! that names the field, never a zero).
//!
//! The library is these types alone, with serde as its only dependency;
//! the program itself (the clients, the scenarios) is the binary target,
//! behind the default `bin` feature.

#![forbid(unsafe_code)]

pub mod report;
