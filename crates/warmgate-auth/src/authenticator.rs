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
use crate::jwks::{JwksClient, JwksProbe};
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
    keys: ArcSwapOption<KeySetHandle>,
    pub(crate) jwks: Option<JwksClient>,
    /// When the last refresh for an unknown `kid` started. Held across
    /// that refresh, so that a request meeting an unknown `kid` meanwhile
    /// waits for its keys instead of being refused.
    unknown_key_refresh: tokio::sync::Mutex<Option<Instant>>,
}

/// A loaded key set; a newtype so `Inner` can derive `Debug`.
pub(crate) struct KeySetHandle(KeySet);

impl std::fmt::Debug for KeySetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.0.len())
            .field("kids", &self.0.kids())
            .finish()
    }
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
        let (keys, jwks) = match &settings.keys {
            KeySource::Secret(secret) => (
                Some(Arc::new(KeySetHandle(KeySet::from_secret(secret)))),
                None,
            ),
            KeySource::Jwks { url } => (None, Some(JwksClient::new(url)?)),
        };
        Ok(Authenticator {
            inner: Some(Arc::new(Inner {
                settings,
                keys: ArcSwapOption::new(keys),
                jwks,
                unknown_key_refresh: tokio::sync::Mutex::new(None),
            })),
        })
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
    /// loaded keys do not have, within [`UNKNOWN_KEY_REFRESH_TIMEOUT`]:
    /// - a refresh already under way is waited for, not refused;
    /// - a refresh that started after `kid` was met is enough;
    /// - otherwise the JWKS is fetched, at most once per
    ///   [`UNKNOWN_KEY_REFRESH_INTERVAL`].
    async fn refresh_for_unknown_key(&self, kid: &str) {
        let met_at = Instant::now();
        let refresh = async {
            let mut last = self.unknown_key_refresh.lock().await;
            match *last {
                Some(started) if started >= met_at => return,
                Some(started) if met_at.duration_since(started) < UNKNOWN_KEY_REFRESH_INTERVAL => {
                    return;
                }
                _ => {}
            }
            *last = Some(Instant::now());
            tracing::info!(kid, "a token names an unknown key id; refreshing the JWKS");
            if let Err(error) = self.refresh_keys("unknown_kid").await {
                tracing::warn!(%error, "JWKS refresh for an unknown key id failed");
            }
        };
        if tokio::time::timeout(UNKNOWN_KEY_REFRESH_TIMEOUT, refresh)
            .await
            .is_err()
        {
            tracing::warn!(
                kid,
                timeout_ms = UNKNOWN_KEY_REFRESH_TIMEOUT.as_millis() as u64,
                "JWKS refresh for an unknown key id timed out; the token is refused"
            );
        }
    }

    fn verify_with_loaded_keys(
        &self,
        token: &str,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<CheckedClaims, AuthError> {
        let keys = self.keys.load_full().ok_or(AuthError::KeysUnavailable)?;
        let candidates = match keys.0.lookup(kid, algorithm) {
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

    /// Fetches the JWKS and stores its keys; logs when the key ids change.
    pub(crate) async fn refresh_keys(&self, trigger: &'static str) -> Result<(), AuthError> {
        let Some(jwks) = &self.jwks else {
            return Ok(());
        };
        let keys = jwks.fetch(&self.settings.algorithms).await?;
        let new_kids: Vec<String> = keys.kids().into_iter().map(str::to_owned).collect();
        let previous = self.keys.swap(Some(Arc::new(KeySetHandle(keys))));
        let old_kids: Option<Vec<String>> = previous
            .as_ref()
            .map(|old| old.0.kids().into_iter().map(str::to_owned).collect());
        if old_kids.as_ref() != Some(&new_kids) {
            tracing::info!(
                url = jwks.target(),
                trigger,
                keys = new_kids.len(),
                kids = ?new_kids,
                first_load = old_kids.is_none(),
                "JWKS keys loaded"
            );
        }
        Ok(())
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
