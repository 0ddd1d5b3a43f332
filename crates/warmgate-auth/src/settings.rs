//! What the authenticator checks, built by the binary from `[auth]`.

use std::fmt;
use std::time::Duration;

pub use jsonwebtoken::Algorithm;

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

/// Where the verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A JWKS document, fetched by the `jwks` readiness check. `target` is
    /// the URL as logs may show it (no password, no query).
    Jwks { url: String, target: String },
    /// A shared secret, for the HMAC algorithms.
    Secret(Vec<u8>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Jwks { target, .. } => f.debug_struct("Jwks").field("url", target).finish(),
            KeySource::Secret(secret) => write!(f, "Secret(<{} bytes>)", secret.len()),
        }
    }
}

/// The accepted algorithms as text, for error messages.
pub(crate) fn algorithm_names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|algorithm| format!("{algorithm:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
