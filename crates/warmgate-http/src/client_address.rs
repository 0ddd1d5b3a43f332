//! Whose request is this: the client's address, from the socket or, behind
//! a trusted proxy, from `X-Forwarded-For`.
//!
//! The socket's peer comes from [`serve`](crate::serve), which puts it in
//! each request's extensions as `ConnectInfo<SocketAddr>`. This module only
//! reads it and the header; what is done with the address (limits) is
//! `client_limits`' business.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use ipnet::IpNet;

/// The header proxies append the address they received a request from to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of `request`: the socket's peer, unless the peer is a
/// trusted proxy, in which case the right-most `X-Forwarded-For` entry that
/// is not itself a trusted proxy (the standard rule: every entry to its
/// right was appended by a proxy we trust, and the entries to its left were
/// written by the client and may be forged).
///
/// When every entry is trusted, the left-most one is the client. An entry
/// that is not an address stops the walk at the trusted hop before it,
/// since nothing past it can be believed. A request that did not come
/// through [`serve`](crate::serve) has no peer and is given the unspecified
/// address, so such requests share one key rather than escape the limits.
pub(crate) fn client_address<B>(request: &Request<B>, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |info| info.0.ip());
    resolve(peer.to_canonical(), request.headers(), trusted_proxies)
}

fn resolve(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |address: &IpAddr| trusted_proxies.iter().any(|net| net.contains(address));
    if !trusted(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = parse_entry(entry) else {
            return client;
        };
        client = address;
        if !trusted(&address) {
            return address;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, perhaps with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .map(|address| address.to_canonical())
}

/// The key a client address is limited under: the address itself for IPv4,
/// its /64 network for IPv6, since one host commonly holds a whole /64 and
/// could otherwise take a fresh address for every request.
pub(crate) fn limit_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
    }
}

#[cfg(test)]
mod tests;
