//! The header rules of forwarding a client's request to the backend, shared
//! by the plain-HTTP proxy (`http`) and the WebSocket dial (`dial`): which
//! headers belong to one connection and stop here (RFC 9110 section
//! 7.6.1), what the backend is told about the client (`X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`), and the identity header that
//! only warmgate may set.
//!
//! Pure functions over [`http::HeaderMap`]: no IO, no config, no clock.
//! Sending the request, and the headers a WebSocket handshake adds back
//! (`Upgrade`, `Connection`, `Sec-WebSocket-*`), are the callers' business.
//!
//! Trailers are not relayed by either caller, so `Trailer` (which announces
//! them) is dropped with the hop-by-hop headers rather than promise fields
//! that never come.

use std::net::IpAddr;

use http::header::{
    CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::ProxyError;

/// The headers that describe one connection rather than the message
/// (RFC 9110 section 7.6.1, with the obsolete `Keep-Alive` and
/// `Proxy-Connection`, and `Trailer`, see the module docs), lower-case.
/// [`remove_hop_by_hop`] also drops every header `Connection` names.
pub const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TRAILER,
];

/// `X-Forwarded-For`: the chain of addresses the request came through.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used to reach warmgate.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the `Host` the client asked warmgate for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes, in place, the hop-by-hop headers ([`HOP_BY_HOP`]), every header
/// named in a `Connection` header (all its lines, comma-separated,
/// case-insensitive; a token that is not a header name is skipped), and
/// `Host`, which the client for the next hop sets from its own URL.
///
/// Read the client's `Host` first if [`add_forwarded`] needs it.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_options(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(HOST);
}

/// A copy of `headers` without what [`remove_hop_by_hop`] removes; every
/// other header keeps all its values, in order.
pub fn hop_by_hop_removed(headers: &HeaderMap) -> HeaderMap {
    let named = connection_options(headers);
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let dropped = *name == HOST || HOP_BY_HOP.contains(name) || named.contains(name);
        if !dropped {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The header names listed in `Connection`'s values.
fn connection_options(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect()
}

/// Tells the backend who the client is, the way reverse proxies
/// conventionally do:
/// - `X-Forwarded-For`: `client` appended to the chain the request came
///   with (every line of it, joined by `", "`), or `client` alone without
///   one (nginx's `$proxy_add_x_forwarded_for`). An IPv4-mapped IPv6
///   address is written as IPv4. The entries already there are the
///   previous hops' claims, passed on unjudged: the backend trusts only the
///   entries its own proxies appended.
/// - `X-Forwarded-Proto`: set to `proto` (`"http"` or `"https"`, the scheme
///   the client used to reach warmgate); removed if `proto` is not a valid
///   header value.
/// - `X-Forwarded-Host`: set to `host`, the client's `Host`; removed when
///   there is none, so a client cannot choose it.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    proto: &str,
    host: Option<&HeaderValue>,
) {
    let client = client.to_canonical().to_string();
    let mut chain: Vec<u8> = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let value = value.as_bytes().trim_ascii();
        if !value.is_empty() {
            chain.extend_from_slice(value);
            chain.extend_from_slice(b", ");
        }
    }
    chain.extend_from_slice(client.as_bytes());
    // Every piece is a valid header value already, and so are the
    // separators; the fallback is never taken.
    let forwarded_for = HeaderValue::from_bytes(&chain).or_else(|_| HeaderValue::from_str(&client));
    match forwarded_for {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        Err(_) => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    match HeaderValue::from_str(proto) {
        Ok(value) => {
            headers.insert(X_FORWARDED_PROTO, value);
        }
        Err(_) => {
            headers.remove(X_FORWARDED_PROTO);
        }
    }
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// Removes every copy of the identity header `name` that the client sent.
/// What [`set_identity`] does when there is no verified identity.
pub fn strip_identity(headers: &mut HeaderMap, name: &HeaderName) {
    headers.remove(name);
}

/// Removes every copy of the identity header `name` the client sent, then
/// sets it to the verified `sub` when there is one, so that the backend can
/// trust the header: only warmgate ever writes it.
///
/// `sub` goes on the wire as its UTF-8 bytes.
///
/// # Errors
///
/// [`ProxyError::IdentityValue`] when `sub` holds a control character
/// (other than tab), which no header value may carry; the header is then
/// left absent, and the caller should refuse the client rather than
/// forward it without its identity.
pub fn set_identity(
    headers: &mut HeaderMap,
    name: &HeaderName,
    sub: Option<&str>,
) -> Result<(), ProxyError> {
    strip_identity(headers, name);
    let Some(sub) = sub else {
        return Ok(());
    };
    let value = HeaderValue::from_bytes(sub.as_bytes()).map_err(|_| ProxyError::IdentityValue {
        header: name.as_str().to_owned(),
        sub: sub.to_owned(),
    })?;
    headers.insert(name.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
