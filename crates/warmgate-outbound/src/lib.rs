//! How warmgate dials out over HTTP(S), written once for every crate that
//! does: the `http` and `jwks` checks, the JWKS key fetch, the HTTP proxy,
//! the `wss://` dialer, the OTLP/HTTP exporter and the operator commands.
//!
//! - [`install_crypto_provider`]: rustls needs one process-wide crypto
//!   provider, and the workspace builds rustls and reqwest without a
//!   built-in one (`rustls-no-provider`), so ring's is installed here.
//! - [`fetch_client`]: the client for fetching a document (a health URL, a
//!   JWKS): at most 5 redirects, a 30 s connect timeout, warmgate's
//!   `User-Agent`, and a fresh connection for every fetch.
//! - [`deepest_cause`] and [`io_cause`]: what went wrong, from the
//!   innermost errors of a source chain, for messages that must not repeat
//!   reqwest's URL (which may hold a password or a token in its query).
//!   The dependency checks over PostgreSQL and Redis read them too.

#[cfg(test)]
mod tests;

use std::time::Duration;

/// The `User-Agent` of every request warmgate makes: `warmgate/<version>`
/// (RFC 9110 §10.1.5).
pub const USER_AGENT: &str = concat!("warmgate/", env!("CARGO_PKG_VERSION"));

/// How many redirects a document fetch follows before it fails.
pub const MAX_REDIRECTS: usize = 5;

/// How long a document fetch waits for the TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs ring as rustls' process-wide crypto provider, unless one is
/// installed already. Idempotent and cheap: call it before building any
/// TLS client. [`fetch_client`] and [`builder`] call it themselves.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest builder with the crypto provider installed and warmgate's
/// `User-Agent`, for clients that set their own policies (the proxy: no
/// redirects, no decompression, its own dial timeout).
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().user_agent(USER_AGENT)
}

/// The client for fetching one document over `http://` or `https://`:
/// [`MAX_REDIRECTS`], [`CONNECT_TIMEOUT`], [`USER_AGENT`]. It has no
/// overall timeout: callers bound each request.
///
/// It keeps no idle connection: every fetch dials anew, as the kubelet's
/// HTTP probes do. A check runs every few seconds, about as often as many
/// servers close an idle keep-alive connection (uvicorn and Node after
/// 5 s), and a request sent on a pooled connection just as the server
/// closes it is lost (RFC 9112 §9.3.1): a failed check, and a flap, for a
/// server that is fine. A fresh connection also checks what a new client
/// needs, that the server accepts connections. Fetches are seconds or
/// minutes apart, so reuse would save nothing worth that.
///
/// # Errors
/// reqwest's, when the TLS back end cannot be set up (the platform's
/// roots cannot be read).
pub fn fetch_client() -> Result<reqwest::Client, reqwest::Error> {
    builder()
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
}

/// The message of the innermost error in `error`'s source chain (`error`
/// itself when it has no source), without the ` (os error N)` suffix the
/// standard library appends. Client libraries wrap the socket or TLS error
/// that says what really happened; the outer messages add only "error
/// sending request" and, in reqwest's case, the URL.
pub fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    let text = deepest.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// The first IO error in `error`'s source chain, `error` itself included:
/// client libraries (reqwest, tokio-postgres, redis) wrap the socket error
/// that says what really happened.
pub fn io_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut source = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = current.source();
    }
    None
}
