//! The frame reader against an in-memory pipe: the fragment cap, a close
//! frame the server refuses, and the count of bytes read while a frame is
//! still arriving.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fastwebsockets::{Role, WebSocket};
use tokio::io::{AsyncWriteExt, DuplexStream};

use warmgate_http::BytesRead;

use super::{FrameReader, Incoming, MAX_FRAGMENTS};

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;

/// A reader of what the far end writes; the far end; the bytes-read count.
fn reader(
    max_message_bytes: usize,
) -> (
    FrameReader<BytesRead<tokio::io::ReadHalf<DuplexStream>>>,
    DuplexStream,
    Arc<AtomicU64>,
) {
    let (near, far) = tokio::io::duplex(1 << 20);
    let n_read = Arc::new(AtomicU64::new(0));
    let ws = WebSocket::after_handshake(near, Role::Server);
    let (read, _write) = ws.split(|io| {
        let (read, write) = tokio::io::split(io);
        (BytesRead::new(read, Arc::clone(&n_read)), write)
    });
    (FrameReader::new(read, max_message_bytes), far, n_read)
}

/// A client frame, masked with a zero mask.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![u8::from(fin) << 7 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn a_message_may_come_in_max_fragments_and_not_one_more() {
    let (mut reader, mut far, _) = reader(1024);
    let mut frames = frame(false, TEXT, b"a");
    frames.extend(frame(false, CONTINUATION, b"").repeat(MAX_FRAGMENTS - 2));
    frames.extend(frame(true, CONTINUATION, b"b"));
    far.write_all(&frames).await.unwrap();
    assert_eq!(reader.next().await, Incoming::Text("ab".to_owned()));

    let mut frames = frame(false, TEXT, b"");
    frames.extend(frame(false, CONTINUATION, b"").repeat(MAX_FRAGMENTS));
    far.write_all(&frames).await.unwrap();
    assert_eq!(
        reader.next().await,
        Incoming::Violation {
            code: 1009,
            reason: "message in more than 65536 fragments",
            client_closed: false,
        }
    );
}

#[tokio::test]
async fn a_refused_close_frame_says_the_client_has_closed() {
    let cases: [(&[u8], u16); 3] = [
        (&[0x03, 0xed], 1002),
        (&[0x03], 1002),
        (&[0x03, 0xe8, 0xff], 1007),
    ];
    for (payload, code) in cases {
        let (mut reader, mut far, _) = reader(1024);
        far.write_all(&frame(true, CLOSE, payload)).await.unwrap();
        match reader.next().await {
            Incoming::Violation {
                code: refused,
                client_closed,
                ..
            } => assert_eq!((refused, client_closed), (code, true), "{payload:?}"),
            other => panic!("{payload:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn bytes_of_a_frame_still_arriving_are_counted() {
    let (mut reader, mut far, n_read) = reader(1024);
    let whole = frame(true, TEXT, b"hello");
    far.write_all(&whole[..4]).await.unwrap();
    let mut next = Box::pin(reader.next());
    // Polled once: the reader takes what is there and waits for the rest.
    assert!(futures_util::poll!(next.as_mut()).is_pending());
    assert_eq!(n_read.load(Ordering::Relaxed), 4);
    far.write_all(&whole[4..]).await.unwrap();
    assert_eq!(next.await, Incoming::Text("hello".to_owned()));
    assert_eq!(n_read.load(Ordering::Relaxed), whole.len() as u64);
}
