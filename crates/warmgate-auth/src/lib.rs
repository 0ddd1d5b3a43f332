//! Client authentication for the gate: every WebSocket client presents a
//! JWT, checked before the upgrade.
//!
//! - [`token_from_request`] finds the token: `Authorization: Bearer`, a
//!   `bearer.<token>` subprotocol entry, or (only when allowed) `?token=`.
//! - [`Authenticator::authenticate`] checks its signature (with keys from a
//!   JWKS, or a shared secret for HMAC), `exp` and `nbf` with a leeway, and
//!   the issuer and audience when set; `sub` becomes the client's identity.
//! - [`JwksProbe`] is the `jwks` readiness check: it loads the keys, so the
//!   gate is not ready before tokens can be checked, and refreshes them.
//!   A token naming an unknown `kid` also triggers a refresh, at most once
//!   a minute.
//!
//! Invariant: no token, nor any part of one, reaches a log, a span, a
//! metric, a snapshot or an error message. [`BearerToken`]'s `Debug` hides
//! it, and every [`AuthError`] is worded without it.

#![forbid(unsafe_code)]

mod authenticator;
mod claims;
mod error;
mod extract;
mod jwks;
mod keys;
mod settings;

pub use self::authenticator::{Authenticator, Identity, UNKNOWN_KEY_REFRESH_INTERVAL};
pub use self::error::AuthError;
pub use self::extract::{
    BEARER_SUBPROTOCOL_PREFIX, BearerToken, MAX_TOKEN_BYTES, TokenSource, bearer_subprotocol_token,
    decode_token_header, token_from_request,
};
pub use self::jwks::JwksProbe;
pub use self::settings::{Algorithm, AuthSettings, KeySource};

#[cfg(test)]
mod tests;
