//! Unit tests of `fast_client`.

use std::convert::Infallible;

use http_body_util::Empty;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::*;

/// A fastwebsockets server on loopback: `/ws` sends a `ready` message
/// and then echoes, anything else is refused with 403.
async fn server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service =
                hyper::service::service_fn(|mut request: hyper::Request<Incoming>| async move {
                    if request.uri().path() != "/ws" {
                        let mut refused = hyper::Response::new(Empty::<Bytes>::new());
                        *refused.status_mut() = hyper::StatusCode::FORBIDDEN;
                        return Ok::<_, Infallible>(refused);
                    }
                    let (response, upgrade) =
                        fastwebsockets::upgrade::upgrade(&mut request).unwrap();
                    tokio::spawn(async move {
                        let mut ws = FragmentCollector::new(upgrade.await.unwrap());
                        let ready = Frame::text(Payload::Borrowed(br#"{"type":"ready"}"#));
                        ws.write_frame(ready).await.unwrap();
                        while let Ok(frame) = ws.read_frame().await {
                            match frame.opcode {
                                OpCode::Close => break,
                                OpCode::Text => ws.write_frame(frame).await.unwrap(),
                                _ => {}
                            }
                        }
                    });
                    Ok(response)
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

fn target(addr: std::net::SocketAddr, path: &str) -> Target {
    Target::parse(&format!("ws://{addr}{path}")).unwrap()
}

#[tokio::test]
async fn connects_reads_echoes_and_closes() {
    let addr = server().await;
    let mut ws = connect_as(&target(addr, "/ws"), Some("token"))
        .await
        .unwrap_or_else(|refused| panic!("refused: {refused:?}"));
    assert_eq!(next_text(&mut ws).await.unwrap(), br#"{"type":"ready"}"#);
    for _ in 0..3 {
        echo_once(&mut ws, "hello, echo").await.unwrap();
    }
    close(&mut ws).await;
    // The server answers the close, and the client reads it as the end.
    assert!(next_text(&mut ws).await.is_err());
}

#[tokio::test]
async fn a_refusal_keeps_its_status() {
    let addr = server().await;
    match connect_as(&target(addr, "/elsewhere"), None).await {
        Err(Refused::Http { status, .. }) => assert_eq!(status, 403),
        Err(other) => panic!("expected a refusal by status, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got a WebSocket"),
    }
}
