//! No code. This crate exists for its `Cargo.toml`, which `cargo hakari`
//! keeps: every workspace member (but the few `.config/hakari.toml` names)
//! depends on it, so every third-party crate gets one feature set in every
//! build that includes the product (`docs/ARCHITECTURE.md`).
