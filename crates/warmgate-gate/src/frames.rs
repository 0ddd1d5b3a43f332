//! Reading a client's frames: reassembling fragmented messages, and holding
//! the client to RFC 6455 where the frame library leaves it to us.
//!
//! fastwebsockets parses frames; this module adds what a strict server
//! needs on top: a size limit on whole messages (not only on frames),
//! UTF-8 checked as fragments arrive so a bad message fails fast, control
//! frames capped at 125 octets (close frames included, which the library
//! lets through), close codes and reasons validated, and a cap on the
//! fragments of one message ([`MAX_FRAGMENTS`]), so a message of empty
//! continuation frames cannot go on for ever.
//!
//! The bytes read from the client are counted below the frame parser
//! (`warmgate_http::BytesRead`, which `peer` wraps around the read half): a
//! client in the middle of a long frame cannot answer a ping (a pong may
//! not go inside another frame's payload), so its bytes are its proof of
//! life. The connection reads the count; this module does not keep time.

use std::convert::Infallible;

use fastwebsockets::{CloseCode, Frame, OpCode, WebSocketError, WebSocketRead};
use tokio::io::AsyncRead;

/// What one read from the client produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The client started the closing handshake, with a valid code (or
    /// none) and reason.
    Close {
        code: Option<u16>,
        reason: String,
    },
    /// The client broke the protocol; close the connection with `code`.
    /// `client_closed` when the offending frame was the client's own close
    /// frame: it has closed already, so no reply is to be waited for.
    Violation {
        code: u16,
        reason: &'static str,
        client_closed: bool,
    },
    /// The connection is gone.
    Gone,
}

/// Close codes used when a client breaks the rules.
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// The largest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The most frames one message may come in; one more closes the connection
/// with 1009. Enough for the conformance suite's finest fragmentation (a
/// 4 MiB message in 64-octet fragments), and a bound on the CPU a stream
/// of empty continuation frames can take.
pub(crate) const MAX_FRAGMENTS: usize = 65_536;

struct Partial {
    text: bool,
    /// Frames so far, the first included.
    n_fragments: usize,
    bytes: Vec<u8>,
    /// How much of `bytes` is known to be valid UTF-8 (text only).
    valid_up_to: usize,
}

/// Reads whole messages and control frames from one client.
pub(crate) struct FrameReader<R> {
    read: WebSocketRead<R>,
    max_message_bytes: usize,
    partial: Option<Partial>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(mut read: WebSocketRead<R>, max_message_bytes: usize) -> Self {
        read.set_auto_close(false);
        read.set_auto_pong(false);
        // The library refuses a frame whose payload is at least this long.
        read.set_max_message_size(max_message_bytes.saturating_add(1));
        Self {
            read,
            max_message_bytes,
            partial: None,
        }
    }

    /// The next message or control frame. Not cancel-safe: keep the future
    /// alive until it completes (the connection polls it through a stream).
    pub(crate) async fn next(&mut self) -> Incoming {
        loop {
            // Nothing is sent on the client's behalf: pongs and close
            // replies are the connection's decisions.
            let mut no_send = |_: Frame<'_>| async { Ok::<(), Infallible>(()) };
            let frame = match self.read.read_frame(&mut no_send).await {
                Ok(frame) => frame,
                Err(error) => return from_error(&error),
            };
            let payload: &[u8] = &frame.payload;
            match frame.opcode {
                OpCode::Close | OpCode::Ping | OpCode::Pong
                    if payload.len() > MAX_CONTROL_PAYLOAD =>
                {
                    return violation(CLOSE_PROTOCOL_ERROR, "control frame longer than 125 octets");
                }
                OpCode::Close => return close_frame(payload),
                OpCode::Ping => return Incoming::Ping(payload.to_vec()),
                OpCode::Pong => return Incoming::Pong,
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return violation(
                            CLOSE_PROTOCOL_ERROR,
                            "a new message started before the previous one ended",
                        );
                    }
                    let text = frame.opcode == OpCode::Text;
                    if frame.fin {
                        return whole_message(text, payload.to_vec());
                    }
                    self.partial = Some(Partial {
                        text,
                        n_fragments: 0,
                        bytes: Vec::new(),
                        valid_up_to: 0,
                    });
                    if let Some(incoming) =
                        extend(&mut self.partial, self.max_message_bytes, payload, false)
                    {
                        return incoming;
                    }
                }
                OpCode::Continuation => {
                    if self.partial.is_none() {
                        return violation(
                            CLOSE_PROTOCOL_ERROR,
                            "continuation frame without a message",
                        );
                    }
                    if let Some(incoming) = extend(
                        &mut self.partial,
                        self.max_message_bytes,
                        payload,
                        frame.fin,
                    ) {
                        return incoming;
                    }
                }
            }
        }
    }
}

/// Adds a fragment to the message in progress; returns the message once
/// `fin`, or a violation.
fn extend(
    partial_slot: &mut Option<Partial>,
    max: usize,
    payload: &[u8],
    fin: bool,
) -> Option<Incoming> {
    let partial = partial_slot.as_mut()?;
    partial.n_fragments += 1;
    if partial.n_fragments > MAX_FRAGMENTS {
        *partial_slot = None;
        return Some(violation(
            CLOSE_TOO_BIG,
            "message in more than 65536 fragments",
        ));
    }
    if partial.bytes.len() + payload.len() > max {
        *partial_slot = None;
        return Some(violation(
            CLOSE_TOO_BIG,
            "message larger than max_message_bytes",
        ));
    }
    partial.bytes.extend_from_slice(payload);
    if partial.text {
        match std::str::from_utf8(&partial.bytes[partial.valid_up_to..]) {
            Ok(_) => partial.valid_up_to = partial.bytes.len(),
            Err(error) => {
                // An incomplete sequence at the end may be finished by the
                // next fragment; anything else is invalid now.
                if error.error_len().is_some() || fin {
                    *partial_slot = None;
                    return Some(violation(
                        CLOSE_INVALID_PAYLOAD,
                        "text message is not valid UTF-8",
                    ));
                }
                partial.valid_up_to += error.valid_up_to();
            }
        }
    }
    if !fin {
        return None;
    }
    let partial = partial_slot.take()?;
    Some(whole_message(partial.text, partial.bytes))
}

fn violation(code: u16, reason: &'static str) -> Incoming {
    Incoming::Violation {
        code,
        reason,
        client_closed: false,
    }
}

/// A violation in the client's own close frame: the client has closed.
fn bad_close(code: u16, reason: &'static str) -> Incoming {
    Incoming::Violation {
        code,
        reason,
        client_closed: true,
    }
}

fn whole_message(text: bool, bytes: Vec<u8>) -> Incoming {
    if !text {
        return Incoming::Binary(bytes);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Incoming::Text(text),
        Err(_) => violation(CLOSE_INVALID_PAYLOAD, "text message is not valid UTF-8"),
    }
}

fn close_frame(payload: &[u8]) -> Incoming {
    match payload {
        [] => Incoming::Close {
            code: None,
            reason: String::new(),
        },
        [_] => bad_close(CLOSE_PROTOCOL_ERROR, "close frame with a one-octet payload"),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !CloseCode::from(code).is_allowed() {
                return bad_close(
                    CLOSE_PROTOCOL_ERROR,
                    "close frame with an invalid close code",
                );
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => Incoming::Close {
                    code: Some(code),
                    reason: reason.to_owned(),
                },
                Err(_) => bad_close(CLOSE_INVALID_PAYLOAD, "close reason is not valid UTF-8"),
            }
        }
    }
}

fn from_error(error: &WebSocketError) -> Incoming {
    match error {
        WebSocketError::FrameTooLarge => {
            violation(CLOSE_TOO_BIG, "frame larger than max_message_bytes")
        }
        WebSocketError::InvalidUTF8 => {
            violation(CLOSE_INVALID_PAYLOAD, "text message is not valid UTF-8")
        }
        WebSocketError::ReservedBitsNotZero => violation(
            CLOSE_PROTOCOL_ERROR,
            "reserved bits set without an extension",
        ),
        WebSocketError::ControlFrameFragmented => {
            violation(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
        }
        WebSocketError::PingFrameTooLarge => {
            violation(CLOSE_PROTOCOL_ERROR, "control frame longer than 125 octets")
        }
        WebSocketError::InvalidValue
        | WebSocketError::InvalidFragment
        | WebSocketError::InvalidContinuationFrame => {
            violation(CLOSE_PROTOCOL_ERROR, "invalid frame")
        }
        _ => Incoming::Gone,
    }
}

#[cfg(test)]
mod tests;
