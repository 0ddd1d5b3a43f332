//! Unit tests of `export_client`.

use super::*;

#[test]
fn a_refused_export_says_why_without_the_url() {
    // As the program does before building any HTTPS client.
    warmgate_outbound::install_crypto_provider();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = SecretUrl::parse(
        &format!("http://127.0.0.1:{port}/v1/traces?token=t0ken-value"),
        &["http"],
    )
    .unwrap();
    let client = ExportClient::new(endpoint, Duration::from_secs(5)).unwrap();
    assert!(!format!("{client:?}").contains("t0ken-value"));
    // As the exporter builds it: the URL without the query.
    let request = Request::post(format!("http://127.0.0.1:{port}/v1/traces"))
        .body(Bytes::new())
        .unwrap();
    // The blocking client sends within the first poll, as on the batch
    // processor's thread.
    let mut sending = std::pin::pin!(client.send_bytes(request));
    let std::task::Poll::Ready(result) = sending
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    else {
        panic!("the blocking client answers within one poll");
    };
    let error = result.unwrap_err().to_string();
    assert!(!error.contains("t0ken-value"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");
    assert!(error.starts_with("error sending request: "), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
}
