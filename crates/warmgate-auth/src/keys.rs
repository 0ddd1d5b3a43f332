//! The verification keys: a set read from a JWKS document (or made from the
//! shared secret), and the lookup of the key a token names.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use warmgate_secret::SecretText;

use crate::AuthError;

/// The largest JWKS document read, and the most keys kept from it.
pub(crate) const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MAX_KEYS: usize = 64;

/// Keys that can verify tokens. Immutable: a refresh builds a new set.
pub(crate) struct KeySet {
    entries: Vec<KeyEntry>,
}

/// The count and the key ids, never key material.
impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.len())
            .field("kids", &self.kids())
            .finish()
    }
}

struct KeyEntry {
    kid: Option<String>,
    /// The algorithm the key is pinned to, if the JWK says.
    algorithm: Option<Algorithm>,
    family: KeyFamily,
    key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family_of(algorithm: Algorithm) -> KeyFamily {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => KeyFamily::Ec,
        Algorithm::EdDSA => KeyFamily::Ed,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => KeyFamily::Rsa,
    }
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Keys(Vec<&'a DecodingKey>),
    /// The token names a kid the set does not have.
    UnknownKid,
}

impl KeySet {
    /// The shared secret, for the HMAC algorithms.
    pub(crate) fn from_secret(secret: &SecretText) -> KeySet {
        KeySet {
            entries: vec![KeyEntry {
                kid: None,
                algorithm: None,
                family: KeyFamily::Hmac,
                key: DecodingKey::from_secret(secret.expose().as_bytes()),
            }],
        }
    }

    /// The keys of a JWKS document that can verify one of `accepted`.
    /// Entries of other types, symmetric keys (a JWKS is public, so an
    /// `oct` key there would let anyone sign) and malformed entries are
    /// skipped; a document with no usable key is an error.
    pub(crate) fn from_jwks(document: &[u8], accepted: &[Algorithm]) -> Result<KeySet, AuthError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(document).map_err(|error| {
            AuthError::Jwks(format!(
                "the JWKS is not a JSON object with a `keys` array ({error})"
            ))
        })?;
        let accepted_families: Vec<KeyFamily> = accepted.iter().copied().map(family_of).collect();
        let mut entries = Vec::new();
        let mut skipped = 0usize;
        for value in document.keys.into_iter().take(MAX_KEYS) {
            match entry_from_jwk(value) {
                Some(entry)
                    if accepted_families.contains(&entry.family)
                        && entry.family != KeyFamily::Hmac =>
                {
                    entries.push(entry);
                }
                _ => skipped += 1,
            }
        }
        if entries.is_empty() {
            return Err(AuthError::Jwks(format!(
                "the JWKS has no key usable for {} ({skipped} skipped)",
                crate::settings::algorithm_names(accepted)
            )));
        }
        if skipped > 0 {
            tracing::debug!(
                skipped,
                "JWKS entries of other key types or malformed were skipped"
            );
        }
        Ok(KeySet { entries })
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The key ids, for logs.
    pub(crate) fn kids(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| entry.kid.as_deref())
            .collect()
    }

    /// The keys that may verify a token with this `kid` and `alg`.
    pub(crate) fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> Lookup<'_> {
        let family = family_of(algorithm);
        let fits = |entry: &&KeyEntry| {
            entry.family == family && entry.algorithm.is_none_or(|pinned| pinned == algorithm)
        };
        match kid {
            Some(kid) => {
                let named: Vec<&KeyEntry> = self
                    .entries
                    .iter()
                    .filter(|entry| entry.kid.as_deref() == Some(kid))
                    .collect();
                if named.is_empty() && self.entries.iter().any(|entry| entry.kid.is_some()) {
                    return Lookup::UnknownKid;
                }
                if named.is_empty() {
                    // A set without kids (a shared secret): any key fits.
                    return Lookup::Keys(
                        self.entries.iter().filter(fits).map(|e| &e.key).collect(),
                    );
                }
                Lookup::Keys(
                    named
                        .into_iter()
                        .filter(|e| fits(e))
                        .map(|e| &e.key)
                        .collect(),
                )
            }
            None => Lookup::Keys(self.entries.iter().filter(fits).map(|e| &e.key).collect()),
        }
    }
}

fn entry_from_jwk(value: serde_json::Value) -> Option<KeyEntry> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
        AlgorithmParameters::OctetKey(_) => KeyFamily::Hmac,
    };
    let algorithm = match jwk.common.key_algorithm {
        None => None,
        Some(pinned) => Some(signing_algorithm(pinned)?),
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        algorithm,
        family,
        key,
    })
}

/// The signing algorithm a JWK's `alg` names; `None` for encryption ones.
fn signing_algorithm(algorithm: KeyAlgorithm) -> Option<Algorithm> {
    Some(match algorithm {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
