//! The header rules, one behaviour per test: what stops at the proxy, what
//! the backend is told about the client, and who may set the identity.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, add_forwarded, hop_by_hop_removed,
    remove_hop_by_hop, set_identity, strip_identity,
};
use crate::ProxyError;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn client_request() -> HeaderMap {
    headers(&[
        ("host", "gate.example"),
        ("connection", "keep-alive, X-Custom"),
        ("connection", "x-other , not a header name"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authenticate", "Basic"),
        ("proxy-authorization", "Basic dXNlcjpwYXNz"),
        ("trailer", "x-checksum"),
        ("x-custom", "named by connection"),
        ("x-other", "named on the second line"),
        ("content-type", "text/plain"),
        ("accept", "text/html"),
        ("accept", "application/json"),
    ])
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_removed() {
    let removed = hop_by_hop_removed(&client_request());
    let mut names: Vec<&str> = removed.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "content-type"]);
    // The end-to-end headers keep every value, in order.
    assert_eq!(
        values(&removed, "accept"),
        ["text/html", "application/json"]
    );
    assert_eq!(removed.get(CONTENT_TYPE).unwrap(), "text/plain");
}

#[test]
fn removing_in_place_agrees_with_the_copy() {
    let mut in_place = client_request();
    remove_hop_by_hop(&mut in_place);
    assert_eq!(in_place, hop_by_hop_removed(&client_request()));
    assert!(in_place.get(HOST).is_none());
}

#[test]
fn a_custom_header_named_by_connection_goes_even_alone() {
    let mut only = headers(&[
        ("connection", "x-custom"),
        ("x-custom", "secret"),
        ("x-kept", "1"),
    ]);
    remove_hop_by_hop(&mut only);
    assert_eq!(only, headers(&[("x-kept", "1")]));
}

#[test]
fn forwarded_for_is_appended_to_an_existing_chain() {
    let mut chain = headers(&[
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
        ("x-forwarded-for", "10.0.0.3"),
    ]);
    add_forwarded(&mut chain, ip("192.0.2.1"), "http", None);
    assert_eq!(
        values(&chain, "x-forwarded-for"),
        ["203.0.113.7, 10.0.0.2, 10.0.0.3, 192.0.2.1"]
    );
}

#[test]
fn forwarded_for_starts_a_chain_with_the_client_written_plainly() {
    let mut fresh = HeaderMap::new();
    add_forwarded(&mut fresh, ip("::ffff:192.0.2.1"), "http", None);
    assert_eq!(values(&fresh, "x-forwarded-for"), ["192.0.2.1"]);
    let mut v6 = headers(&[("x-forwarded-for", "")]);
    add_forwarded(&mut v6, ip("2001:db8::1"), "http", None);
    assert_eq!(values(&v6, "x-forwarded-for"), ["2001:db8::1"]);
}

#[test]
fn proto_and_host_are_set_from_the_client_never_taken_from_it() {
    let mut spoofed = headers(&[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
    ]);
    let host = HeaderValue::from_static("gate.example:8080");
    add_forwarded(&mut spoofed, ip("192.0.2.1"), "http", Some(&host));
    assert_eq!(spoofed.get(X_FORWARDED_PROTO).unwrap(), "http");
    assert_eq!(
        values(&spoofed, X_FORWARDED_HOST.as_str()),
        ["gate.example:8080"]
    );
    // Without a Host, a client-sent X-Forwarded-Host does not survive.
    let mut no_host = headers(&[("x-forwarded-host", "evil.example")]);
    add_forwarded(&mut no_host, ip("192.0.2.1"), "https", None);
    assert!(no_host.get(X_FORWARDED_HOST).is_none());
    assert_eq!(no_host.get(X_FORWARDED_PROTO).unwrap(), "https");
    assert_eq!(no_host.get(X_FORWARDED_FOR).unwrap(), "192.0.2.1");
}

#[test]
fn a_spoofed_identity_header_is_removed_and_the_verified_one_set() {
    let name = HeaderName::from_static("x-warmgate-sub");
    let spoofed = || {
        headers(&[
            ("x-warmgate-sub", "admin"),
            ("X-Warmgate-Sub", "root"),
            ("x-kept", "1"),
        ])
    };

    let mut anonymous = spoofed();
    set_identity(&mut anonymous, &name, None).unwrap();
    assert_eq!(anonymous, headers(&[("x-kept", "1")]));

    let mut stripped = spoofed();
    strip_identity(&mut stripped, &name);
    assert_eq!(stripped, anonymous);

    let mut verified = spoofed();
    set_identity(&mut verified, &name, Some("user-42 é")).unwrap();
    assert_eq!(verified.get_all(&name).iter().count(), 1);
    assert_eq!(
        verified.get(&name).unwrap().as_bytes(),
        "user-42 é".as_bytes()
    );
}

#[test]
fn a_sub_no_header_can_carry_is_an_error_and_never_forwarded() {
    let name = HeaderName::from_static("x-warmgate-sub");
    let mut spoofed = headers(&[("x-warmgate-sub", "admin")]);
    let error = set_identity(&mut spoofed, &name, Some("user\r\nx-admin: 1")).unwrap_err();
    assert!(matches!(error, ProxyError::IdentityValue { .. }));
    assert_eq!(
        error.to_string(),
        "the verified sub \"user\\r\\nx-admin: 1\" cannot be sent in the x-warmgate-sub header: expected no control characters"
    );
    assert!(spoofed.get(&name).is_none());
}
