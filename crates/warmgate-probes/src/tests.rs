//! Probe tests against real sockets on loopback.

#![allow(clippy::unwrap_used)]

use tokio::net::TcpListener;
use warmgate_devservers::idle_close::IdleCloseServer;

use crate::{HttpProbe, PostgresProbe, Probe, RedisProbe, SecretUrl, TcpProbe};

#[tokio::test]
async fn tcp_passes_when_something_listens() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut probe = TcpProbe::new(listener.local_addr().unwrap().to_string());
    probe.probe().await.unwrap();
    assert_eq!(probe.kind(), "tcp");
}

#[tokio::test]
async fn tcp_fails_with_connection_refused_on_a_closed_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = TcpProbe::new(addr.to_string()).probe().await.unwrap_err();
    assert_eq!(error.to_string(), format!("connection refused to {addr}"));
}

#[tokio::test]
async fn tcp_fails_clearly_on_an_address_without_a_port() {
    let error = TcpProbe::new("localhost").probe().await.unwrap_err();
    assert!(
        error.to_string().starts_with("cannot resolve localhost: "),
        "{error}"
    );
}

// === Secrets ===

const SECRETS: [&str; 2] = ["pa55-word", "t0ken-value"];

fn secret_url(text: &str, scheme: &str) -> SecretUrl {
    SecretUrl::parse(text, &[scheme]).unwrap()
}

fn assert_no_secret(shown: &str) {
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

#[test]
fn url_probes_show_neither_password_nor_query_in_debug_or_target() {
    let http = HttpProbe::new(
        secret_url(
            "https://user:pa55-word@api.example.com/health?token=t0ken-value",
            "https",
        ),
        Some(vec![200]),
        None,
    )
    .unwrap();
    let postgres = PostgresProbe::new(secret_url(
        "postgres://app:pa55-word@127.0.0.1:5432/app?application_name=t0ken-value",
        "postgres",
    ))
    .unwrap();
    let redis = RedisProbe::new(secret_url(
        "redis://:pa55-word@127.0.0.1:6379/?token=t0ken-value",
        "redis",
    ))
    .unwrap();
    let probes: [&dyn Probe; 3] = [&http, &postgres, &redis];
    for probe in probes {
        assert_no_secret(&probe.target());
    }
    for shown in [
        format!("{http:?} {http:#?}"),
        format!("{postgres:?} {postgres:#?}"),
        format!("{redis:?} {redis:#?}"),
    ] {
        assert_no_secret(&shown);
        assert!(shown.contains(":***@"), "{shown}");
    }
}

#[tokio::test]
async fn a_failed_http_attempt_names_the_url_without_its_secrets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut probe = HttpProbe::new(
        secret_url(
            &format!("http://user:pa55-word@{addr}/health?token=t0ken-value"),
            "http",
        ),
        None,
        None,
    )
    .unwrap();
    let error = probe.probe().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("connection refused to http://user:***@{addr}/health?…")
    );
    assert_no_secret(&format!("{error:?}"));
}

/// A server that closes idle keep-alive connections must not fail an
/// attempt that happens to come just as it does: every attempt dials anew.
#[tokio::test]
async fn http_attempts_pass_against_a_server_that_closes_each_connection_as_it_is_reused() {
    let server = IdleCloseServer::start("text/plain", "ok".to_owned()).unwrap();
    let mut probe =
        HttpProbe::new(secret_url(&server.url("/healthz"), "http"), None, None).unwrap();
    for attempt in 1..=3 {
        if let Err(error) = probe.probe().await {
            panic!("attempt {attempt} failed: {error}");
        }
    }
    assert_eq!(
        (server.connections(), server.cut_off()),
        (3, 0),
        "(connections, cut off)"
    );
}

#[test]
fn an_invalid_url_is_refused_without_repeating_it() {
    let error = PostgresProbe::new(secret_url(
        "postgres://app:pa55-word@127.0.0.1:5432/app?token=t0ken-value",
        "postgres",
    ))
    .unwrap_err();
    assert_no_secret(&format!("{error} {error:?}"));
    assert!(
        error
            .to_string()
            .starts_with("invalid target postgres://app:***@127.0.0.1:5432/app?…: "),
        "{error}"
    );
}
