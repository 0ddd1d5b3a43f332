//! A stand-in identity provider's keys: an ES256 signing key, the JWKS
//! document that publishes it, and tokens signed with it.
//!
//! This owns key generation and token signing only; serving the document is
//! left to the caller (an HTTP route in a test, or the `warmgate-jwks-server`
//! program), so this crate stays free of an async runtime.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::Serialize;

use crate::DevServerError;

/// An ES256 (ECDSA P-256) signing key with a key id.
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    /// The public point's coordinates, base64url without padding.
    x: String,
    y: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims of a token signed by [`SigningKey::sign`]. Times are seconds
/// since the Unix epoch.
#[derive(Debug, Clone, Serialize)]
pub struct TokenClaims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub iat: u64,
}

impl TokenClaims {
    /// Claims for `sub` that expire `lifetime_seconds` from now, with no
    /// issuer or audience.
    pub fn expiring_in(sub: &str, lifetime_seconds: u64) -> TokenClaims {
        let now = unix_now();
        TokenClaims {
            sub: sub.to_owned(),
            iss: None,
            aud: None,
            exp: now + lifetime_seconds,
            nbf: None,
            iat: now,
        }
    }

    pub fn issuer(mut self, issuer: &str) -> TokenClaims {
        self.iss = Some(issuer.to_owned());
        self
    }

    pub fn audience(mut self, audience: &str) -> TokenClaims {
        self.aud = Some(audience.to_owned());
        self
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn key_error(reason: impl std::fmt::Display) -> DevServerError {
    DevServerError::SigningKey {
        reason: reason.to_string(),
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(kid: &str) -> Result<SigningKey, DevServerError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| key_error("the system random source failed"))?;
        SigningKey::from_pkcs8(kid, pkcs8.as_ref())
    }

    /// A key from its PKCS#8 DER bytes, as [`SigningKey::pkcs8`] gives them.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<SigningKey, DevServerError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|error| key_error(format!("not a PKCS#8 P-256 key: {error}")))?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(key_error(
                "the public key is not an uncompressed P-256 point",
            ));
        }
        Ok(SigningKey {
            kid: kid.to_owned(),
            pkcs8: pkcs8.to_vec(),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// Writes the key to `path` (PKCS#8 DER), for another process to read
    /// with [`SigningKey::read`].
    pub fn write(&self, path: &Path) -> Result<(), DevServerError> {
        std::fs::write(path, &self.pkcs8).map_err(|source| DevServerError::Io {
            action: "write the signing key to",
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a key written by [`SigningKey::write`].
    pub fn read(kid: &str, path: &Path) -> Result<SigningKey, DevServerError> {
        let bytes = std::fs::read(path).map_err(|source| DevServerError::Io {
            action: "read the signing key from",
            path: path.to_owned(),
            source,
        })?;
        SigningKey::from_pkcs8(kid, &bytes)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": self.kid,
            "x": self.x,
            "y": self.y,
        })
    }

    /// A token with these claims, signed ES256 with this key's `kid`.
    pub fn sign(&self, claims: &impl serde::Serialize) -> Result<String, DevServerError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        jsonwebtoken::encode(&header, claims, &key).map_err(key_error)
    }
}

/// The JWKS document (`{"keys": [...]}`) that publishes `keys`.
pub fn jwks_document(keys: &[&SigningKey]) -> String {
    serde_json::json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() }).to_string()
}
