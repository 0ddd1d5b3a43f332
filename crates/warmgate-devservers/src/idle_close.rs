//! A stand-in HTTP/1.1 server that loses every keep-alive race: it answers
//! the first request on each connection and keeps the connection open, and
//! when a second request arrives on that connection it closes it without an
//! answer.
//!
//! That is what a client sees, now and then, from any server that closes
//! idle keep-alive connections after a timeout (uvicorn's 5 s, Node's 5 s,
//! warmgate's own `handshake_timeout`): a client that reuses a pooled
//! connection just as the server's timer fires has sent a request the
//! server will never answer, and reads the end of the connection instead
//! (hyper's "connection closed before message completed"). RFC 9112 §9.3.1
//! names the case; RFC 9110 §9.2.2 says which requests a client may retry
//! after it. In real life it is a race a test cannot win on purpose; here
//! it happens on every reuse, so a test of a client that must survive it is
//! deterministic.
//!
//! [`IdleCloseServer::hanging_up`] is its neighbour: a server that ends
//! every connection as its first request arrives, as a backend that fails
//! every request does, so that a client's retry is seen to fail too.
//!
//! Requests must not have a body (GET, HEAD); a request head is read up to
//! its blank line. Every answer is `200 OK` with the body given to
//! [`IdleCloseServer::start`] (its head only, with the same
//! `content-length`, to a HEAD request: RFC 9110 §9.3.2). The server runs on standard-library threads
//! and stops when the value is dropped.

use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

/// What the server has done so far.
#[derive(Debug, Default)]
struct Counts {
    connections: AtomicUsize,
    answered: AtomicUsize,
    cut_off: AtomicUsize,
}

/// The running server, on a free port of `127.0.0.1`.
#[derive(Debug)]
pub struct IdleCloseServer {
    address: SocketAddr,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl IdleCloseServer {
    /// Starts the server; every answer carries `body` (with `content-type`
    /// `content_type`).
    ///
    /// # Errors
    /// The IO error when the port cannot be bound.
    pub fn start(content_type: &'static str, body: String) -> io::Result<IdleCloseServer> {
        IdleCloseServer::spawn(content_type, body, true)
    }

    /// Starts a server that answers nothing: each connection ends as its
    /// first request arrives (counted in [`IdleCloseServer::cut_off`]).
    ///
    /// # Errors
    /// The IO error when the port cannot be bound.
    pub fn hanging_up() -> io::Result<IdleCloseServer> {
        IdleCloseServer::spawn("text/plain", String::new(), false)
    }

    fn spawn(
        content_type: &'static str,
        body: String,
        answers_first: bool,
    ) -> io::Result<IdleCloseServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let address = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let answer = Arc::new(Answer {
            head: format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
            body,
        });
        let (accept_counts, accept_stop) = (Arc::clone(&counts), Arc::clone(&stop));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                accept_counts.connections.fetch_add(1, Ordering::AcqRel);
                let (counts, answer) = (Arc::clone(&accept_counts), Arc::clone(&answer));
                thread::spawn(move || serve(stream, &counts, answers_first.then_some(&*answer)));
            }
        });
        Ok(IdleCloseServer {
            address,
            counts,
            stop,
        })
    }

    /// Where it listens: `127.0.0.1` and a free port.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::Acquire)
    }

    /// The requests answered so far: the first on each connection.
    pub fn answered(&self) -> usize {
        self.counts.answered.load(Ordering::Acquire)
    }

    /// The requests that arrived on a reused connection and got the
    /// connection's end instead of an answer.
    pub fn cut_off(&self) -> usize {
        self.counts.cut_off.load(Ordering::Acquire)
    }
}

impl Drop for IdleCloseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// The one answer the server gives.
#[derive(Debug)]
struct Answer {
    head: String,
    body: String,
}

/// One connection: answers its first request (with `answer`, when there is
/// one), then closes it when the next request's head has arrived (or when
/// the client closes first).
fn serve(stream: TcpStream, counts: &Counts, answer: Option<&Answer>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    if let Some(answer) = answer {
        let Some(request_line) = read_head(&mut reader) else {
            return;
        };
        let mut bytes = answer.head.clone();
        if !request_line.starts_with("HEAD ") {
            bytes.push_str(&answer.body);
        }
        if writer.write_all(bytes.as_bytes()).is_err() {
            return;
        }
        counts.answered.fetch_add(1, Ordering::AcqRel);
    }
    if read_head(&mut reader).is_some() {
        counts.cut_off.fetch_add(1, Ordering::AcqRel);
    }
    // Both halves drop here: the client reads the end of the connection.
}

/// Reads one request head up to its blank line and returns its request
/// line; `None` at the end of the connection (or an error) before a whole
/// head.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut request_line = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" || line == "\n" => return Some(request_line),
            Ok(_) if request_line.is_empty() => request_line.clone_from(&line),
            Ok(_) => {}
        }
    }
}
