//! The authenticator: from an upgrade request to a verified [`Identity`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use tokio::time::Instant;

use crate::claims::{CheckedClaims, ClaimRules, ClaimSet, check_claims};
use crate::extract::{
    BearerToken, TokenSource, decode_token_header, shape_error, token_from_request,
};
use crate::jwks::{JwksClient, JwksProbe, KeyFetcher, KeyRefresher, Trigger};
use crate::keys::{KeySet, Lookup};
use crate::settings::algorithm_names;
use crate::{AuthError, AuthSettings, KeySource};

/// An unknown `kid` triggers a refresh at most this often.
pub const UNKNOWN_KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a refresh for an unknown `kid` may hold the handshake.
const UNKNOWN_KEY_REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// Who a verified token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub subject: String,
    /// The token's `exp`.
    pub expires_at: SystemTime,
    /// Where the token was found.
    pub source: TokenSource,
}

/// Checks the tokens of upgrade requests. Cheap to clone; a disabled one
/// (`[auth] mode = "none"`) lets everyone in anonymously.
#[derive(Clone, Debug)]
pub struct Authenticator {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    settings: AuthSettings,
    /// Read here; written only by the key owner behind `jwks` (or once,
    /// at construction, from a shared secret).
    keys: Arc<ArcSwapOption<KeySet>>,
    pub(crate) jwks: Option<KeyRefresher>,
}

impl Authenticator {
    /// No authentication: every client is admitted anonymously.
    pub fn disabled() -> Authenticator {
        Authenticator { inner: None }
    }

    /// Checks tokens as `settings` say. With a shared secret the keys are
    /// ready at once; with a JWKS they load on the first success of the
    /// [`JwksProbe`] from [`Authenticator::jwks_probe`].
    pub fn new(settings: AuthSettings) -> Result<Authenticator, AuthError> {
        let fetcher: Option<Box<dyn KeyFetcher>> = match &settings.keys {
            KeySource::Secret(_) => None,
            KeySource::Jwks { url } => Some(Box::new(JwksClient::new(url)?)),
        };
        Ok(Authenticator::with_fetcher(settings, fetcher))
    }

    /// An authenticator whose keys come from `fetcher` when there is one,
    /// and from the settings' secret otherwise.
    pub(crate) fn with_fetcher(
        settings: AuthSettings,
        fetcher: Option<Box<dyn KeyFetcher>>,
    ) -> Authenticator {
        let secret_keys = match &settings.keys {
            KeySource::Secret(secret) => Some(Arc::new(KeySet::from_secret(secret))),
            KeySource::Jwks { .. } => None,
        };
        let keys = Arc::new(ArcSwapOption::new(secret_keys));
        let jwks = fetcher.map(|fetcher| {
            KeyRefresher::new(fetcher, Arc::clone(&keys), settings.algorithms.clone())
        });
        Authenticator {
            inner: Some(Arc::new(Inner {
                settings,
                keys,
                jwks,
            })),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The leeway allowed on `exp`; zero when disabled.
    pub fn leeway(&self) -> Duration {
        self.inner
            .as_ref()
            .map_or(Duration::ZERO, |inner| inner.settings.leeway)
    }

    /// The readiness check that loads and refreshes the JWKS; `None` unless
    /// the keys come from a JWKS.
    pub fn jwks_probe(&self) -> Option<JwksProbe> {
        let inner = self.inner.as_ref()?;
        inner.jwks.as_ref()?;
        Some(JwksProbe {
            inner: Arc::clone(inner),
        })
    }

    /// The identity of the client making this upgrade request: `Ok(None)`
    /// when authentication is disabled, an error saying what was wrong
    /// otherwise.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Identity>, AuthError> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let (token, source) = token_from_request(headers, query, inner.settings.allow_query_token)?
            .ok_or(AuthError::MissingToken)?;
        inner.verify(&token, source).await.map(Some)
    }
}

impl Inner {
    async fn verify(
        &self,
        token: &BearerToken,
        source: TokenSource,
    ) -> Result<Identity, AuthError> {
        let token = token.expose();
        let header = decode_token_header(token)?;
        let algorithm = header.alg;
        if !self.settings.algorithms.contains(&algorithm) {
            return Err(AuthError::AlgorithmNotAccepted {
                algorithm: format!("{algorithm:?}"),
                accepted: algorithm_names(&self.settings.algorithms),
            });
        }
        let kid = header.kid.as_deref();
        match self.verify_with_loaded_keys(token, kid, algorithm) {
            Err(AuthError::UnknownKey { kid }) if self.jwks.is_some() => {
                self.refresh_for_unknown_key(&kid).await;
                self.verify_with_loaded_keys(token, Some(&kid), algorithm)
            }
            other => other,
        }
        .map(
            |CheckedClaims {
                 subject,
                 expires_at,
             }| Identity {
                subject,
                expires_at,
                source,
            },
        )
    }

    /// Brings the keys up to date for a token naming `kid`, which the
    /// loaded keys do not have, within [`UNKNOWN_KEY_REFRESH_TIMEOUT`]: the
    /// key owner answers at once when a fetch that started after `kid` was
    /// met has completed, or when it fetched for an unknown `kid` less than
    /// [`UNKNOWN_KEY_REFRESH_INTERVAL`] ago, and fetches otherwise. A
    /// request meeting an unknown `kid` while a fetch runs waits for it.
    async fn refresh_for_unknown_key(&self, kid: &str) {
        let Some(jwks) = &self.jwks else {
            return;
        };
        let trigger = Trigger::UnknownKid {
            kid: kid.to_owned(),
            met_at: Instant::now(),
        };
        match tokio::time::timeout(UNKNOWN_KEY_REFRESH_TIMEOUT, jwks.refresh(trigger)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(kid, %error, "JWKS refresh for an unknown key id failed");
            }
            Err(_) => tracing::warn!(
                kid,
                timeout_ms = UNKNOWN_KEY_REFRESH_TIMEOUT.as_millis() as u64,
                "JWKS refresh for an unknown key id timed out; the token is refused"
            ),
        }
    }

    fn verify_with_loaded_keys(
        &self,
        token: &str,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<CheckedClaims, AuthError> {
        let keys = self.keys.load_full().ok_or(AuthError::KeysUnavailable)?;
        let candidates = match keys.lookup(kid, algorithm) {
            Lookup::UnknownKid => {
                return Err(AuthError::UnknownKey {
                    kid: printable(kid.unwrap_or_default()),
                });
            }
            Lookup::Keys(candidates) => candidates,
        };
        if candidates.is_empty() {
            return Err(AuthError::InvalidSignature);
        }
        let validation = signature_only(algorithm);
        let mut last_error = AuthError::InvalidSignature;
        for key in candidates {
            match jsonwebtoken::decode::<ClaimSet>(token, key, &validation) {
                Ok(data) => {
                    let rules = ClaimRules {
                        issuer: self.settings.issuer.as_deref(),
                        audience: self.settings.audience.as_deref(),
                        leeway: self.settings.leeway,
                    };
                    return check_claims(&data.claims, &rules, unix_now());
                }
                Err(error) if matches!(error.kind(), ErrorKind::Json(_)) => {
                    // The signature verified (the library reads the claims
                    // only after it), but the library's own reading of the
                    // registered claims failed: say which claim is wrong.
                    return Err(unreadable_claims(token));
                }
                Err(error) => {
                    last_error = refusal(&error);
                    // Only a signature mismatch is worth trying the next
                    // key for; anything else is about the token itself.
                    if last_error != AuthError::InvalidSignature {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }
}

/// What the library checks: the signature, with `alg` one of ours, and
/// nothing of the claims, which [`check_claims`] reads strictly (see the
/// `claims` module for why).
fn signature_only(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.iss = None;
    validation.aud = None;
    validation.sub = None;
    validation.required_spec_claims.clear();
    validation
}

/// Why the claims of a token whose signature verified cannot be read: the
/// type error or repeated claim [`check_claims`] finds, or a generic one.
/// Never admits: a claim set the library cannot parse is malformed even
/// where our own reading would pass it.
fn unreadable_claims(token: &str) -> AuthError {
    use base64::Engine as _;
    let generic = || AuthError::malformed("the token's claims are not a JSON object of claims");
    let Some(payload) = token.split('.').nth(1) else {
        return generic();
    };
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice::<ClaimSet>(&json).ok());
    let rules = ClaimRules {
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
    };
    match claims.map(|claims| check_claims(&claims, &rules, 0)) {
        Some(Err(error @ AuthError::MalformedToken { .. })) => error,
        _ => generic(),
    }
}

/// Seconds since the epoch; a clock before 1970 reads as 0.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The refusal for a failed `decode`, in words that never quote the token.
fn refusal(error: &jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Crypto(_) => AuthError::InvalidSignature,
        _ => AuthError::malformed(format!("the token's claims are {}", shape_error(error))),
    }
}

/// Client-chosen text made safe for a message: printable ASCII, at most 64
/// characters.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}
