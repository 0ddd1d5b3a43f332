//! What the authenticator checks, built by the binary from `[auth]`.

use std::time::Duration;

pub use jsonwebtoken::Algorithm;
use warmgate_secret::{SecretText, SecretUrl};

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The `alg` values accepted; a token with any other is refused.
    pub algorithms: Vec<Algorithm>,
    /// Where the verification keys come from.
    pub keys: KeySource,
    /// When set, `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, `aud` must include it.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Whether a `?token=` query parameter is accepted.
    pub allow_query_token: bool,
}

/// Where the verification keys come from. Both kinds are secret types, so
/// `Debug` shows the URL redacted and the secret's length only.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS document, fetched by the `jwks` readiness check.
    Jwks { url: SecretUrl },
    /// A shared secret, for the HMAC algorithms.
    Secret(SecretText),
}

/// The accepted algorithms as text, for error messages.
pub(crate) fn algorithm_names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|algorithm| format!("{algorithm:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
