//! The `jwt_header` target: a bearer token, through [`decode_token_header`],
//! which reads a JWT's header (`alg`, `kid`) before any key is looked up.
//!
//! A token reaches it from a header value or a percent-decoded query
//! parameter, so any UTF-8 text can; bytes that are not UTF-8 stop there.
//! What is checked besides not panicking: a refusal is a malformed-token
//! error, the client's fault, whose message quotes no part of the token
//! (the auth crate's invariant: no token, nor any part of one, reaches an
//! error message).

use warmgate_auth::{AuthError, decode_token_header};

/// A run of token characters this long with a digit in it, found in an
/// error message, can only have come from the token: the fixed wording has
/// none (its longest, `Sec-WebSocket-Protocol`, has no digit), while the
/// base64url parts of a real token are long and almost never digit-free.
pub const QUOTED_RUN_BYTES: usize = 16;

/// The fuzz target's body.
pub fn fuzz(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    check(token);
}

/// Decodes `token`'s header and checks the promises of
/// [`decode_token_header`].
///
/// # Panics
///
/// When decoding panics or breaks one of its promises.
pub fn check(token: &str) {
    if let Err(error) = decode_token_header(token) {
        assert_eq!(
            error.code(),
            "malformed_token",
            "a token whose header cannot be read is malformed: {error}"
        );
        assert_quotes_none_of(&error, &[token]);
    }
}

/// Asserts that `error`'s message quotes no part of any of `secrets`.
///
/// # Panics
///
/// When it does.
pub fn assert_quotes_none_of(error: &AuthError, secrets: &[&str]) {
    let message = error.to_string();
    for secret in secrets {
        assert!(
            !quotes_part_of(&message, secret),
            "an error message quotes part of a token: {message:?}"
        );
    }
}

/// True when `text` holds a run of base64url characters from `secret` at
/// least [`QUOTED_RUN_BYTES`] long, with a digit.
pub fn quotes_part_of(text: &str, secret: &str) -> bool {
    secret
        .split(|character: char| {
            !(character.is_ascii_alphanumeric() || character == '-' || character == '_')
        })
        .filter(|run| {
            run.len() >= QUOTED_RUN_BYTES && run.bytes().any(|byte| byte.is_ascii_digit())
        })
        .any(|run| text.contains(run))
}
