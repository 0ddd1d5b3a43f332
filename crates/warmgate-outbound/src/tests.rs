//! Unit tests of the outbound client set-up and the error-cause walks.

use super::*;

#[derive(Debug)]
struct Layer {
    message: &'static str,
    source: Option<Box<dyn std::error::Error + 'static>>,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for Layer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref()
    }
}

#[test]
fn the_deepest_cause_is_the_innermost_message_without_the_os_error_suffix() {
    let io = std::io::Error::from_raw_os_error(111);
    let outer = Layer {
        message: "error sending request for url (http://user:secret@host/?token=t)",
        source: Some(Box::new(Layer {
            message: "client error (Connect)",
            source: Some(Box::new(io)),
        })),
    };
    let cause = deepest_cause(&outer);
    assert!(!cause.contains("os error"), "{cause}");
    assert!(!cause.contains("secret"), "{cause}");
    assert_eq!(
        cause,
        std::io::Error::from_raw_os_error(111)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap()
    );
}

#[test]
fn an_error_without_a_source_is_its_own_deepest_cause() {
    let alone = Layer {
        message: "tls handshake eof",
        source: None,
    };
    assert_eq!(deepest_cause(&alone), "tls handshake eof");
}

#[test]
fn installing_the_provider_twice_is_harmless_and_leaves_one_installed() {
    install_crypto_provider();
    install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}

#[tokio::test]
async fn a_fetch_client_sends_warmgates_user_agent() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0_u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            assert_ne!(n, 0, "the client closed before its request head");
            head.extend_from_slice(&buffer[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let response = fetch_client()
        .unwrap()
        .get(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let head = server.await.unwrap().to_lowercase();
    assert!(
        head.contains(&format!("user-agent: {}", USER_AGENT.to_lowercase())),
        "{head}"
    );
}

#[tokio::test]
async fn fetches_never_reuse_a_connection_so_a_server_closing_idle_ones_loses_none() {
    use warmgate_devservers::idle_close::IdleCloseServer;

    let server = IdleCloseServer::start("text/plain", "ok".to_owned()).unwrap();
    let client = fetch_client().unwrap();
    for _ in 0..3 {
        let response = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    assert_eq!(
        (server.connections(), server.answered(), server.cut_off()),
        (3, 3, 0),
        "(connections, answered, cut off)"
    );
}

#[test]
fn the_io_cause_is_found_under_wrappers_and_absent_without_one() {
    let wrapped = Layer {
        message: "error sending request",
        source: Some(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))),
    };
    assert_eq!(
        io_cause(&wrapped).map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let bare = Layer {
        message: "invalid certificate",
        source: None,
    };
    assert!(io_cause(&bare).is_none());
}
