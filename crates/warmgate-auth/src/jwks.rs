//! Fetching the JWKS, and the `jwks` readiness check that keeps the keys
//! loaded.
//!
//! The check is how the keys get loaded: its first success stores them, so
//! the gate cannot be ready before tokens can be checked, and each later
//! success (every check `interval`) refreshes them. A failed fetch keeps
//! the keys already loaded, so a hung auth service makes the check fail
//! without refusing clients whose keys are known.

use std::sync::Arc;
use std::time::Duration;

use warmgate_probes::{Probe, ProbeError, ProbeFuture};
use warmgate_secret::SecretUrl;

use crate::AuthError;
use crate::authenticator::Inner;
use crate::keys::{KeySet, MAX_JWKS_BYTES};
use jsonwebtoken::Algorithm;

/// An HTTP client for one JWKS URL. The URL is read only when the request
/// is built, so that nothing else (reqwest's `Url` prints its password and
/// query in `Debug`) ever holds it.
pub(crate) struct JwksClient {
    client: reqwest::Client,
    url: SecretUrl,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("url", &self.url)
            .finish()
    }
}

impl JwksClient {
    pub(crate) fn new(url: &SecretUrl) -> Result<JwksClient, AuthError> {
        // rustls needs one process-wide crypto provider; installing it twice
        // is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A parse error never repeats the text.
        reqwest::Url::parse(url.expose())
            .map_err(|error| AuthError::Jwks(format!("invalid JWKS URL {url}: {error}")))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("warmgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| AuthError::Jwks(format!("cannot build the JWKS client: {error}")))?;
        Ok(JwksClient {
            client,
            url: url.clone(),
        })
    }

    /// The URL as logs may show it: no password, no query.
    pub(crate) fn target(&self) -> &str {
        self.url.redacted()
    }

    /// Fetches and reads the document. Has no timeout of its own: callers
    /// bound it.
    pub(crate) async fn fetch(&self, accepted: &[Algorithm]) -> Result<KeySet, AuthError> {
        let failed = |what: String| AuthError::Jwks(format!("GET {} {what}", self.url));
        let mut response = self
            .client
            .get(self.url.expose())
            .send()
            .await
            .map_err(|error| failed(format!("failed: {}", innermost(error))))?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "answered HTTP {}, expected 200 with a JWKS",
                response.status().as_u16()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            failed(format!(
                "failed while reading the body: {}",
                innermost(error)
            ))
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(failed(format!(
                    "returned more than {} KiB, which is no JWKS",
                    MAX_JWKS_BYTES / 1024
                )));
            }
        }
        KeySet::from_jwks(&body, accepted)
            .map_err(|error| AuthError::Jwks(format!("{} from {}", error, self.url)))
    }
}

/// The innermost cause of `error`, with its URL dropped first: reqwest's
/// own message repeats the whole URL, query included.
fn innermost(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut deepest = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(current) = source {
        deepest = current.to_string();
        source = current.source();
    }
    deepest
}

/// The `jwks` readiness check: fetch the keys, store them.
#[derive(Debug)]
pub struct JwksProbe {
    pub(crate) inner: Arc<Inner>,
}

impl Probe for JwksProbe {
    fn kind(&self) -> &'static str {
        "jwks"
    }

    fn target(&self) -> String {
        self.inner
            .jwks
            .as_ref()
            .map_or_else(String::new, |jwks| jwks.target().to_owned())
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            self.inner
                .refresh_keys("interval")
                .await
                .map_err(|error| ProbeError::Failed {
                    message: error.to_string(),
                })
        })
    }
}
