//! The claims of a token whose signature verified, checked strictly: the
//! type of every registered claim, then the values the settings ask for.
//!
//! jsonwebtoken 9 treats a registered claim whose JSON type is wrong as
//! absent (an `nbf` written as a string is never checked: the advisory
//! CVE-2026-25537, fixed in 10.3, which needs aws-lc-rs, a C build, or a
//! dozen RustCrypto crates). So the library only verifies the signature and
//! `alg` here; every claim rule lives in [`check_claims`], a pure function
//! of the claims, the settings and the time, which refuses:
//! - a registered claim (RFC 7519 §4.1) of the wrong JSON type, `null`
//!   included: `exp`, `nbf` and `iat` are NumericDates, taken as whole
//!   seconds (a non-negative integer); `iss`, `sub` and `jti` are strings;
//!   `aud` is a string or an array of strings;
//! - a token without `sub` or `exp`;
//! - an `exp` in the past or an `nbf` in the future, beyond the leeway;
//! - an `iss` or `aud` other than the configured ones, when configured;
//! - a `sub` that is empty, over 256 bytes, or has control characters.
//!
//! - a registered claim given twice (RFC 7519 §4 lets a parser refuse
//!   duplicates or keep the last; a token whose readers could disagree is
//!   refused).
//!
//! It does not read the token, the clock or any IO; the messages never
//! quote a claim's value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::AuthError;

/// The longest `sub` accepted: it names the client in chat and spans.
const MAX_SUBJECT_BYTES: usize = 256;

/// The JSON type a registered claim must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimType {
    /// A NumericDate in whole seconds since the epoch: a JSON integer from
    /// 0 to 2^64 - 1.
    NumericDate,
    /// A JSON string.
    String,
    /// A JSON string, or an array of strings.
    StringOrStrings,
}

/// The registered claims of RFC 7519 §4.1, with their types.
pub(crate) const REGISTERED_CLAIMS: [(&str, ClaimType); 7] = [
    ("iss", ClaimType::String),
    ("sub", ClaimType::String),
    ("aud", ClaimType::StringOrStrings),
    ("exp", ClaimType::NumericDate),
    ("nbf", ClaimType::NumericDate),
    ("iat", ClaimType::NumericDate),
    ("jti", ClaimType::String),
];

/// A token's claims as read from its JSON object: the last member of each
/// name, and the first registered claim that came more than once.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimSet {
    claims: Map<String, Value>,
    repeated: Option<&'static str>,
}

impl ClaimSet {
    fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

impl<'de> serde::Deserialize<'de> for ClaimSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = ClaimSet;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut members: A,
            ) -> Result<ClaimSet, A::Error> {
                let mut set = ClaimSet::default();
                while let Some((name, value)) = members.next_entry::<String, Value>()? {
                    let registered = REGISTERED_CLAIMS
                        .iter()
                        .find(|(registered, _)| *registered == name);
                    if set.claims.insert(name, value).is_some() && set.repeated.is_none() {
                        set.repeated = registered.map(|(registered, _)| *registered);
                    }
                }
                Ok(set)
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// What [`check_claims`] checks the values against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRules<'a> {
    /// When set, `iss` must equal it.
    pub(crate) issuer: Option<&'a str>,
    /// When set, `aud` must be it or include it.
    pub(crate) audience: Option<&'a str>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub(crate) leeway: Duration,
}

/// The claims a session keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedClaims {
    /// `sub`.
    pub(crate) subject: String,
    /// `exp`.
    pub(crate) expires_at: SystemTime,
}

/// Checks a verified token's claims against `rules` at `now` (seconds since
/// the epoch). Errors: [`AuthError::MalformedToken`] for a wrong type, a
/// missing `sub` or `exp` or a bad `sub`; [`AuthError::TokenExpired`],
/// [`AuthError::TokenNotYetValid`], [`AuthError::WrongIssuer`] and
/// [`AuthError::WrongAudience`] for the values. Types are checked first, so
/// a token with a wrong-typed claim is malformed whatever else it holds.
pub(crate) fn check_claims(
    claims: &ClaimSet,
    rules: &ClaimRules<'_>,
    now: u64,
) -> Result<CheckedClaims, AuthError> {
    if let Some(name) = claims.repeated {
        return Err(AuthError::malformed(format!(
            "the token's `{name}` claim is given more than once"
        )));
    }
    for (name, expected) in REGISTERED_CLAIMS {
        if let Some(value) = claims.get(name) {
            check_type(name, expected, value)?;
        }
    }
    let numeric = |name: &str| claims.get(name).and_then(Value::as_u64);
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::malformed("the token has no `sub` claim"))?;
    let exp = numeric("exp").ok_or_else(|| AuthError::malformed("the token has no `exp` claim"))?;

    let leeway = rules.leeway.as_secs();
    if exp.saturating_add(leeway) < now {
        return Err(AuthError::TokenExpired);
    }
    if numeric("nbf").is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(AuthError::TokenNotYetValid);
    }
    if let Some(issuer) = rules.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err(AuthError::WrongIssuer);
    }
    if let Some(audience) = rules.audience {
        let included = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
            _ => false,
        };
        if !included {
            return Err(AuthError::WrongAudience);
        }
    }

    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(AuthError::malformed(format!(
            "the token's sub must be 1 to {MAX_SUBJECT_BYTES} bytes"
        )));
    }
    if subject.chars().any(char::is_control) {
        return Err(AuthError::malformed(
            "the token's sub has control characters",
        ));
    }
    let expires_at = UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))
        .ok_or_else(|| AuthError::malformed("the token's exp is out of range"))?;
    Ok(CheckedClaims {
        subject: subject.to_owned(),
        expires_at,
    })
}

/// Refuses `value` unless it has the type `expected`; the message names the
/// claim and the types, never the value.
fn check_type(name: &str, expected: ClaimType, value: &Value) -> Result<(), AuthError> {
    let right = match expected {
        ClaimType::NumericDate => value.is_u64(),
        ClaimType::String => value.is_string(),
        ClaimType::StringOrStrings => match value {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        },
    };
    if right {
        return Ok(());
    }
    let found = match (expected, value) {
        (ClaimType::StringOrStrings, Value::Array(_)) => {
            "an array with an item that is not a string"
        }
        (_, other) => json_type(other),
    };
    let expected = match expected {
        ClaimType::NumericDate => "a NumericDate in whole seconds (a non-negative integer)",
        ClaimType::String => "a string",
        ClaimType::StringOrStrings => "a string or an array of strings",
    };
    Err(AuthError::malformed(format!(
        "the token's `{name}` claim is {found}, expected {expected}"
    )))
}

/// The JSON type of `value`, in words, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_u64() => "a number",
        Value::Number(number) if number.is_i64() => "a negative integer",
        Value::Number(number) => match number.as_f64() {
            Some(n) if n.fract() != 0.0 => "a number with a fraction",
            // 2^64: the first whole number a NumericDate cannot be.
            Some(n) if !(0.0..18_446_744_073_709_551_616.0).contains(&n) => "a number out of range",
            _ => "a number written with a decimal point or an exponent",
        },
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
