//! The one error type of proxy mode: why a proxy could not be built, or a
//! header could not be written, in words an operator can act on.
//!
//! What a client is told when its request cannot be forwarded (502, 503)
//! is an HTTP answer, not an error of this type: see `http`.

/// Why proxy mode could not do what was asked. Messages are lower-case and
/// name the thing, the value and what was expected; the inner errors of
/// third-party crates are reachable only as a `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The HTTP client for the backend could not be built (no TLS roots,
    /// say).
    #[error("cannot build the HTTP client for the backend at {backend}: {reason}")]
    HttpClient {
        /// The backend's `http://` or `https://` base URL.
        backend: String,
        /// The innermost cause, in words.
        reason: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `[upstream] identity_header` is not a valid HTTP header name.
    #[error(
        "the identity header {name:?} is not a valid header name: expected a token such as \"x-warmgate-sub\""
    )]
    IdentityHeaderName {
        /// The configured name.
        name: String,
    },
    /// A verified `sub` holds a character no header value may carry.
    #[error(
        "the verified sub {sub:?} cannot be sent in the {header} header: expected no control characters"
    )]
    IdentityValue {
        /// The identity header's name.
        header: String,
        /// The `sub` as the token had it.
        sub: String,
    },
    /// Dialing the backend's WebSocket failed; its `reason()` is the
    /// metric label.
    #[error(transparent)]
    Dial(#[from] crate::DialError),
}
