//! The plans (warmgate configs) that more than one xtask command runs
//! warmgate with, each written once: [`READY`], [`HELD`], [`HOLDING_GATE`]
//! and [`HELD_WITH_ROOM`], which is the last two together.
//!
//! A plan that only one command uses stays with that command, built on
//! these where it can. The end-to-end tests build theirs with the tests
//! crate's `Plan`, which xtask does not depend on (it is heavy); these are
//! fixed texts, so a plain string is all they need.

/// The text of [`HOLDING_GATE`], for `concat!`.
macro_rules! holding_gate {
    () => {
        r#"[gate]
hold_timeout = "60s"
max_connections = 20000
max_held = 20000
"#
    };
}

/// The text of [`HELD`], for `concat!`.
macro_rules! held {
    () => {
        r#"[[phase]]
name = "services"

[[phase.check]]
name = "app"
kind = "signal"
"#
    };
}

/// A plan that is ready at once: its one phase, `integration`, waits only
/// for the `http_listener` signal, which warmgate sets itself once it
/// listens. A check added after it joins that phase.
pub(crate) const READY: &str = r#"[[phase]]
name = "integration"

[[phase.check]]
name = "http_listener"
kind = "signal"
"#;

/// A plan that holds every client until the signal `app` is set, with the
/// gate's default settings.
pub(crate) const HELD: &str = held!();

/// A `[gate]` table with room for ten thousand held clients, held long
/// enough (a minute) to connect them all.
pub(crate) const HOLDING_GATE: &str = holding_gate!();

/// [`HELD`] behind [`HOLDING_GATE`]: ten thousand clients held until the
/// signal `app` is set.
pub(crate) const HELD_WITH_ROOM: &str = concat!(holding_gate!(), "\n", held!());
