//! The one error type of the auth crate: why a client was not authenticated.
//!
//! Every message is safe to log and to send to the client: none carries the
//! token or any part of it. The `code` is the stable, machine-readable name
//! that goes into the 401 body's `error` field.

/// Why a token was refused, or why the keys to check it are missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in the `Authorization` header, the subprotocol list or (when
    /// allowed) the query.
    #[error(
        "no token: send `Authorization: Bearer <token>`, or offer the subprotocol `bearer.<token>` beside `warmgate.v1`"
    )]
    MissingToken,
    /// The token is not a well-formed JWT, or lacks a claim we need.
    #[error("malformed token: {reason}")]
    MalformedToken { reason: String },
    /// `exp` is in the past, beyond the leeway.
    #[error("the token has expired")]
    TokenExpired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the token is not valid yet (its nbf is in the future)")]
    TokenNotYetValid,
    /// The signature does not verify with the key the token names.
    #[error("the token's signature does not verify")]
    InvalidSignature,
    /// The token names a key id that the auth service does not publish.
    #[error("the token is signed with key id {kid:?}, which the auth service does not publish")]
    UnknownKey { kid: String },
    /// The token's `alg` is not one of `[auth] algorithms`.
    #[error(
        "the token is signed with {algorithm}, which is not accepted here (accepted: {accepted})"
    )]
    AlgorithmNotAccepted { algorithm: String, accepted: String },
    /// `iss` is missing or not the configured issuer.
    #[error("the token's issuer is not the one accepted here")]
    WrongIssuer,
    /// `aud` is missing or does not include the configured audience.
    #[error("the token's audience does not include the one accepted here")]
    WrongAudience,
    /// A `?token=` query parameter, which is refused unless
    /// `allow_query_token = true`, because URLs end up in logs.
    #[error(
        "a token in the URL query is refused here because URLs end up in logs: send it in the `Authorization` header or as the subprotocol `bearer.<token>`"
    )]
    QueryTokenRefused,
    /// The auth service's keys have not been loaded yet, so no token can be
    /// checked.
    #[error("the auth service's keys are not loaded yet; retry shortly")]
    KeysUnavailable,
    /// Fetching or reading the JWKS failed (a readiness check failure, never
    /// sent to a client).
    #[error("{0}")]
    Jwks(String),
}

impl AuthError {
    /// Every [`AuthError::code`] a refused client can get: all but
    /// `jwks_unavailable`, a readiness check's failure that never reaches a
    /// client. For registering metric series up front.
    pub const REFUSAL_CODES: [&'static str; 11] = [
        "missing_token",
        "malformed_token",
        "token_expired",
        "token_not_yet_valid",
        "invalid_signature",
        "unknown_key",
        "algorithm_not_accepted",
        "wrong_issuer",
        "wrong_audience",
        "query_token_refused",
        "auth_unavailable",
    ];

    /// The machine-readable name of the failure, for the 401 body's `error`
    /// field, metrics labels and log fields.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::MalformedToken { .. } => "malformed_token",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenNotYetValid => "token_not_yet_valid",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::AlgorithmNotAccepted { .. } => "algorithm_not_accepted",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::QueryTokenRefused => "query_token_refused",
            AuthError::KeysUnavailable => "auth_unavailable",
            AuthError::Jwks(_) => "jwks_unavailable",
        }
    }

    /// True when the client is not at fault: the server cannot check tokens
    /// right now (answered 503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable | AuthError::Jwks(_))
    }

    pub(crate) fn malformed(reason: impl Into<String>) -> AuthError {
        AuthError::MalformedToken {
            reason: reason.into(),
        }
    }
}
