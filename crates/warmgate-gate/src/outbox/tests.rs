//! The outbox against an in-memory pipe whose far end reads only when told
//! to, on tokio's paused clock: sending never waits, what the pipe takes
//! is written at once without a writer task, a reader that takes nothing
//! stalls the writer at `write_timeout`, a slow reader that keeps taking
//! bytes does not, and the last word is written or dropped.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fastwebsockets::{Frame, Payload, Role};
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::time::Instant;

use super::{LAST_WORD_WAIT, Outbox, WriterState};

const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// An outbox writing into a pipe of `capacity` bytes; the far end.
fn outbox(capacity: usize) -> (Outbox, DuplexStream) {
    let (near, far) = tokio::io::duplex(capacity);
    (Outbox::new(near, Role::Server, WRITE_TIMEOUT), far)
}

fn text(n_bytes: usize) -> Frame<'static> {
    Frame::text(Payload::Owned(vec![b'a'; n_bytes]))
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_takes_nothing_stalls_the_writer_at_the_write_timeout() {
    let (mut outbox, _far) = outbox(1024);
    let started = Instant::now();
    for _ in 0..4 {
        // Queueing returns at once, however full the pipe is.
        outbox.send(text(1000)).unwrap();
    }
    assert_eq!(outbox.stopped().await, WriterState::Stalled);
    assert_eq!(started.elapsed(), WRITE_TIMEOUT);
    // It cannot take the rest of its frame either: dropped, not closed.
    assert!(!outbox.last_word(Frame::close(1008, b"slow")).await);
    assert!(started.elapsed() <= WRITE_TIMEOUT + LAST_WORD_WAIT);
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_keeps_taking_bytes_is_not_stalled() {
    let (mut outbox, mut far) = outbox(64);
    outbox.send(text(4000)).unwrap();
    outbox.send(Frame::close(1000, b"")).unwrap();
    // 32 bytes a second: the frame takes two minutes, far past the write
    // timeout, but the reader never stops taking bytes.
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut chunk = [0u8; 32];
        loop {
            let n = far.read(&mut chunk).await.unwrap();
            if n == 0 {
                return received;
            }
            received.extend_from_slice(&chunk[..n]);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    assert_eq!(outbox.stopped().await, WriterState::Closed);
    drop(outbox);
    let received = reading.await.unwrap();
    assert!(received.len() > 4000, "{}", received.len());
    assert!(received.ends_with(&[0x88, 2, 0x03, 0xe8]));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_reader_that_catches_up_gets_the_close_frame_as_the_last_word() {
    let (mut outbox, mut far) = outbox(1024);
    outbox.send(text(2000)).unwrap();
    outbox.send(text(2000)).unwrap();
    assert_eq!(outbox.stopped().await, WriterState::Stalled);
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        far.read_to_end(&mut received).await.unwrap();
        received
    });
    assert!(outbox.last_word(Frame::close(1008, b"slow")).await);
    drop(outbox);
    let received = reading.await.unwrap();
    // The rest of the first frame, then the close frame; the second frame
    // was dropped.
    let close = [0x88, 6, 0x03, 0xf0, b's', b'l', b'o', b'w'];
    assert!(
        received.ends_with(&close),
        "{:?}",
        &received[received.len() - 8..]
    );
    assert!(received.len() < 4000);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_wakes_the_room_signal_when_the_writer_makes_room() {
    let (mut outbox, mut far) = outbox(1024);
    let room = outbox.room_signal();
    // Room at once while under the bound.
    room.wait().await;
    // One frame over the byte bound fills the queue.
    outbox.send(text(super::MAX_QUEUED_BYTES)).unwrap();
    assert!(!outbox.has_room());
    let waiting = tokio::spawn(async move {
        room.wait().await;
        Instant::now()
    });
    // Nothing makes room while the reader takes nothing...
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    // ...and the reader taking the frame does, with no timer involved.
    let started = Instant::now();
    // The frame: two header bytes, a 64-bit length, the payload.
    let mut sink = vec![0u8; 2 + 8 + super::MAX_QUEUED_BYTES];
    far.read_exact(&mut sink).await.unwrap();
    assert_eq!(
        waiting.await.unwrap(),
        started,
        "woken by the write, not by time"
    );
    assert!(outbox.has_room());
}

#[tokio::test(start_paused = true)]
async fn frames_the_socket_takes_are_written_at_once_without_a_writer_task() {
    let (mut outbox, mut far) = outbox(1024);
    outbox.send(text(3)).unwrap();
    outbox
        .send(Frame::pong(Payload::Owned(b"p".to_vec())))
        .unwrap();
    assert!(outbox.task.is_none());
    assert!(outbox.is_empty());
    let mut received = [0u8; 8];
    far.read_exact(&mut received).await.unwrap();
    assert_eq!(received, [0x81, 3, b'a', b'a', b'a', 0x8a, 1, b'p']);
    // A close frame written at once closes the writer at once.
    let closed = outbox.close(Frame::close(1000, b""), Instant::now() + WRITE_TIMEOUT);
    assert!(closed.await);
    assert!(outbox.send(text(1)).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_frame_the_socket_takes_in_part_is_finished_by_the_writer_task_in_order() {
    let (mut outbox, mut far) = outbox(16);
    outbox.send(text(40)).unwrap();
    outbox.send(text(5)).unwrap();
    assert!(outbox.task.is_some());
    assert_eq!(outbox.n_queued(), 2);
    let mut received = vec![0u8; 2 + 40 + 2 + 5];
    far.read_exact(&mut received).await.unwrap();
    assert_eq!(&received[..2], &[0x81, 40]);
    assert_eq!(&received[42..44], &[0x81, 5]);
    assert!(received[2..42].iter().all(|byte| *byte == b'a'));
    // Once the queue is empty, frames go out at once again.
    tokio::task::yield_now().await;
    assert!(outbox.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_client_end_masks_every_frame_with_a_fresh_key() {
    let (near, mut far) = tokio::io::duplex(1024);
    let mut outbox = Outbox::new(near, Role::Client, WRITE_TIMEOUT);
    outbox.send(text(4)).unwrap();
    outbox.send(text(4)).unwrap();
    let mut received = [0u8; 20];
    far.read_exact(&mut received).await.unwrap();
    let mut keys = Vec::new();
    for frame in received.chunks(10) {
        // FIN and text; the mask bit and a length of 4 (RFC 6455 5.2).
        assert_eq!(&frame[..2], &[0x81, 0x80 | 4]);
        let key = &frame[2..6];
        let payload: Vec<u8> = frame[6..]
            .iter()
            .zip(key.iter().cycle())
            .map(|(byte, mask)| byte ^ mask)
            .collect();
        assert_eq!(payload, b"aaaa");
        keys.push(key.to_vec());
    }
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test(start_paused = true)]
async fn a_writer_ended_by_a_close_that_timed_out_leaves_the_outbox_gone() {
    let (mut outbox, _far) = outbox(16);
    // Taken in part: the rest, and the close frame, wait for the task.
    outbox.send(text(100)).unwrap();
    let deadline = Instant::now() + Duration::from_millis(10);
    assert!(!outbox.close(Frame::close(1000, b""), deadline).await);
    // The aborted writer says so; nothing waits on it or sends to it.
    assert_eq!(outbox.stopped().await, WriterState::Gone);
    assert!(outbox.send(text(1)).is_err());
}

#[tokio::test(start_paused = true)]
async fn bytes_a_write_half_holds_back_are_flushed_by_the_writer_task() {
    // A write half that keeps bytes until flushed, as a TLS stream keeps
    // its records; its far end takes 16 bytes at a time.
    let (near, mut far) = tokio::io::duplex(16);
    let mut outbox = Outbox::new(tokio::io::BufWriter::new(near), Role::Server, WRITE_TIMEOUT);
    outbox.send(text(100)).unwrap();
    outbox.send(text(3)).unwrap();
    let mut received = vec![0u8; 2 + 100 + 2 + 3];
    far.read_exact(&mut received).await.unwrap();
    assert_eq!(&received[..2], &[0x81, 100]);
    assert_eq!(&received[102..], &[0x81, 3, b'a', b'a', b'a']);
}
