//! Unit tests of `client_address`.

#![allow(clippy::unwrap_used)]

use super::*;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|net| net.parse().unwrap()).collect()
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(X_FORWARDED_FOR, value.parse().unwrap());
    }
    headers
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_the_header_says() {
    let forged = headers(&["203.0.113.9"]);
    assert_eq!(
        resolve(ip("198.51.100.4"), &forged, &[]),
        ip("198.51.100.4")
    );
    assert_eq!(
        resolve(ip("198.51.100.4"), &forged, &nets(&["10.0.0.0/8"])),
        ip("198.51.100.4")
    );
}

#[test]
fn behind_trusted_proxies_the_right_most_untrusted_entry_is_the_client() {
    let trusted = nets(&["10.0.0.0/8", "192.0.2.7/32"]);
    // The client forged the first entry; the load balancer (10.0.0.2)
    // appended what it saw, then a second trusted hop appended itself.
    let forwarded = headers(&["1.1.1.1, 203.0.113.9", "192.0.2.7"]);
    assert_eq!(
        resolve(ip("10.0.0.2"), &forwarded, &trusted),
        ip("203.0.113.9")
    );
    // Ports and IPv6 in brackets, and IPv4-mapped IPv6, are understood.
    assert_eq!(
        resolve(ip("10.0.0.2"), &headers(&["203.0.113.9:4711"]), &trusted),
        ip("203.0.113.9")
    );
    assert_eq!(
        resolve(ip("10.0.0.2"), &headers(&["[2001:db8::1]:4711"]), &trusted),
        ip("2001:db8::1")
    );
    assert_eq!(
        resolve(ip("10.0.0.2"), &headers(&["::ffff:203.0.113.9"]), &trusted),
        ip("203.0.113.9")
    );
}

#[test]
fn without_a_usable_entry_the_nearest_trusted_hop_is_the_client() {
    let trusted = nets(&["10.0.0.0/8"]);
    assert_eq!(
        resolve(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
        ip("10.0.0.2")
    );
    // Everything is trusted: the left-most entry is the furthest known.
    assert_eq!(
        resolve(ip("10.0.0.2"), &headers(&["10.1.1.1, 10.2.2.2"]), &trusted),
        ip("10.1.1.1")
    );
    // Garbage stops the walk at the trusted hop to its right.
    assert_eq!(
        resolve(
            ip("10.0.0.2"),
            &headers(&["203.0.113.9, unknown, 10.3.3.3"]),
            &trusted
        ),
        ip("10.3.3.3")
    );
}

#[test]
fn ipv6_clients_are_limited_per_64_and_ipv4_per_address() {
    assert_eq!(
        limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
        ip("2001:db8:1:2::")
    );
    assert_eq!(limit_key(ip("203.0.113.9")), ip("203.0.113.9"));
    assert_eq!(limit_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
}
