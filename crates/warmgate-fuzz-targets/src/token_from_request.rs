//! The `token_from_request` target: finding the bearer token in an upgrade
//! request (the `Authorization` header, a `bearer.` subprotocol entry or
//! the query), through [`token_from_request`], then reading the found
//! token's header as the gate does next.
//!
//! The bytes are read as a request by [`FuzzRequest::from_bytes`]. What is
//! checked besides not panicking: a found token is not empty, within
//! [`MAX_TOKEN_BYTES`], came from a place the request has, and never shows
//! in its `Debug`; a query token is refused unless allowed; a refusal is
//! the client's fault and quotes no part of any token.

use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use warmgate_auth::{MAX_TOKEN_BYTES, TokenSource, token_from_request};

use crate::jwt_header;
use crate::request::FuzzRequest;

/// The fuzz target's body.
pub fn fuzz(data: &[u8]) {
    if let Some(request) = FuzzRequest::from_bytes(data) {
        check(&request);
    }
}

/// Looks for the request's token and checks the promises of
/// [`token_from_request`].
///
/// # Panics
///
/// When the search panics or breaks one of its promises.
pub fn check(request: &FuzzRequest) {
    let headers = &request.headers;
    let query = request.query.as_deref();
    match token_from_request(headers, query, request.allow_query_token) {
        Ok(None) => {}
        Ok(Some((token, source))) => {
            let text = token.expose();
            assert!(!text.is_empty(), "a found token is not empty");
            assert!(
                text.len() <= MAX_TOKEN_BYTES,
                "a found token is within {MAX_TOKEN_BYTES} bytes, not {}",
                text.len()
            );
            let debug = format!("{token:?}");
            assert!(
                !jwt_header::quotes_part_of(&debug, text),
                "a token's Debug shows it: {debug}"
            );
            let present = match source {
                TokenSource::AuthorizationHeader => headers.contains_key(AUTHORIZATION),
                TokenSource::Subprotocol => headers.contains_key(SEC_WEBSOCKET_PROTOCOL),
                TokenSource::QueryParameter => query.is_some() && request.allow_query_token,
            };
            assert!(present, "a token found in the {source:?} the request lacks");
            jwt_header::check(text);
        }
        Err(error) => {
            assert!(
                ["malformed_token", "query_token_refused"].contains(&error.code()),
                "finding a token fails only for the client's fault, not with {error}"
            );
            if error.code() == "query_token_refused" {
                assert!(
                    !request.allow_query_token,
                    "a query token is refused though allowed"
                );
            }
            let mut secrets: Vec<&str> = [AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL]
                .iter()
                .flat_map(|name| headers.get_all(name))
                .filter_map(|value| std::str::from_utf8(value.as_bytes()).ok())
                .collect();
            secrets.extend(query);
            jwt_header::assert_quotes_none_of(&error, &secrets);
        }
    }
}
