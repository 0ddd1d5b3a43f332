//! Probe tests against real sockets on loopback.

#![allow(clippy::unwrap_used)]

use tokio::net::TcpListener;

use crate::{Probe, TcpProbe};

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
