//! Finding the token in an upgrade request, and reading its header, without
//! checking anything cryptographic. Pure functions of the request: the fuzz
//! targets call them directly.
//!
//! A token is looked for, in this order, in:
//! 1. `Authorization: Bearer <token>`;
//! 2. a `Sec-WebSocket-Protocol` entry `bearer.<token>`, for browsers, which
//!    cannot set headers on a WebSocket;
//! 3. a `token` query parameter, only with `allow_query_token`.
//!
//! The first place that has one wins.

use std::fmt;

use http::HeaderMap;
use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};

use crate::AuthError;

/// The subprotocol prefix that carries a token.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";

/// The longest token accepted, in bytes. Real JWTs are a few hundred bytes
/// to a few KiB; this bounds the work an attacker can ask for.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    AuthorizationHeader,
    Subprotocol,
    QueryParameter,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::AuthorizationHeader => "authorization_header",
            TokenSource::Subprotocol => "subprotocol",
            TokenSource::QueryParameter => "query_parameter",
        }
    }
}

/// A bearer token. Its `Debug` never shows it, so it cannot reach a log by
/// accident.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// The token itself; only the validator should read it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(<{} bytes>)", self.0.len())
    }
}

/// The token of an upgrade request and where it was found; `None` when the
/// request carries none. A token in the query is refused unless
/// `allow_query_token`.
pub fn token_from_request(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query_token: bool,
) -> Result<Option<(BearerToken, TokenSource)>, AuthError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::malformed("the Authorization header is not visible ASCII"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::malformed(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
        return checked(token.trim(), TokenSource::AuthorizationHeader).map(Some);
    }
    if let Some(token) = subprotocol_token(headers)? {
        return checked(token, TokenSource::Subprotocol).map(Some);
    }
    if let Some(query) = query {
        let token = url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned());
        if let Some(token) = token {
            if !allow_query_token {
                return Err(AuthError::QueryTokenRefused);
            }
            return checked(&token, TokenSource::QueryParameter).map(Some);
        }
    }
    Ok(None)
}

/// The token of a `bearer.<token>` subprotocol entry. Two such entries are
/// refused: which one is meant would be a guess.
fn subprotocol_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut found = None;
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else {
            return Err(AuthError::malformed(
                "the Sec-WebSocket-Protocol header is not visible ASCII",
            ));
        };
        for entry in value.split(',').map(str::trim) {
            let Some(token) = bearer_subprotocol_token(entry) else {
                continue;
            };
            if found.replace(token).is_some() {
                return Err(AuthError::malformed(
                    "more than one `bearer.` subprotocol is offered",
                ));
            }
        }
    }
    Ok(found)
}

/// The token of one subprotocol entry `bearer.<token>` (the prefix in any
/// letter case), or `None` for any other entry.
pub fn bearer_subprotocol_token(entry: &str) -> Option<&str> {
    strip_prefix_ignore_case(entry, BEARER_SUBPROTOCOL_PREFIX)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn checked(token: &str, source: TokenSource) -> Result<(BearerToken, TokenSource), AuthError> {
    if token.is_empty() {
        return Err(AuthError::malformed(format!(
            "the token in the {} is empty",
            describe(source)
        )));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::malformed(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok((BearerToken(token.to_owned()), source))
}

fn describe(source: TokenSource) -> &'static str {
    match source {
        TokenSource::AuthorizationHeader => "Authorization header",
        TokenSource::Subprotocol => "`bearer.` subprotocol",
        TokenSource::QueryParameter => "`token` query parameter",
    }
}

/// The header of a JWT (`alg`, `kid`, ...), decoded without checking the
/// signature. Errors never repeat the token.
pub fn decode_token_header(token: &str) -> Result<jsonwebtoken::Header, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::malformed(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    if token.split('.').count() != 3 {
        return Err(AuthError::malformed(
            "a JWT has three dot-separated parts (header.claims.signature)",
        ));
    }
    jsonwebtoken::decode_header(token).map_err(|error| {
        AuthError::malformed(format!(
            "the JWT header cannot be read ({})",
            shape_error(&error)
        ))
    })
}

/// What was wrong with a token's encoding, in words that never quote it.
pub(crate) fn shape_error(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::Base64(_) => "not base64url",
        ErrorKind::Json(_) => "not the expected JSON",
        ErrorKind::Utf8(_) => "not UTF-8",
        ErrorKind::InvalidAlgorithmName => "an unknown alg",
        _ => "not a JWT",
    }
}
