//! An HTTP request head made from fuzzer bytes, for the targets that check
//! an upgrade request.
//!
//! The bytes are read as lines (`\n`, with a trailing `\r` dropped):
//!
//! ```text
//! GET                      the first line is the method, and after a
//!                          space `HTTP/1.0` or `HTTP/1.1` (the default)
//! Upgrade: websocket       any `name: value` line is a header
//! +https://chat.example    a line starting with `+` is an allowed origin
//! ?token=abc               a line starting with `?` is the query string
//! !allow_query_token       this exact line allows a token in the query
//! ```
//!
//! A header whose name or value HTTP would not carry is skipped, as hyper
//! would have refused the request before any of our code saw it. Values may
//! hold bytes 0x80 to 0xFF (obs-text), which HTTP allows and `to_str` refuses.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};

/// A request head, and the settings that go with checking it.
#[derive(Debug, Clone, Default)]
pub struct FuzzRequest {
    pub method: Method,
    /// HTTP/1.1 unless the method line names HTTP/1.0: the versions hyper's
    /// HTTP/1 server passes on.
    pub version: Version,
    pub headers: HeaderMap,
    pub allowed_origins: Vec<String>,
    pub query: Option<String>,
    pub allow_query_token: bool,
}

impl FuzzRequest {
    /// The request the bytes describe; `None` when the first line is not a
    /// method HTTP would carry, with a version hyper would pass on.
    pub fn from_bytes(data: &[u8]) -> Option<FuzzRequest> {
        let mut lines = data
            .split(|byte| *byte == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        let mut request_line = lines.next()?.splitn(2, |byte| *byte == b' ');
        let method = Method::from_bytes(request_line.next()?).ok()?;
        let version = match request_line.next() {
            None | Some(b"HTTP/1.1") => Version::HTTP_11,
            Some(b"HTTP/1.0") => Version::HTTP_10,
            Some(_) => return None,
        };
        let mut request = FuzzRequest {
            method,
            version,
            ..FuzzRequest::default()
        };
        for line in lines {
            if let Some(origin) = line.strip_prefix(b"+") {
                request
                    .allowed_origins
                    .push(String::from_utf8_lossy(origin).into_owned());
            } else if let Some(query) = line.strip_prefix(b"?") {
                request.query = Some(String::from_utf8_lossy(query).into_owned());
            } else if line == b"!allow_query_token" {
                request.allow_query_token = true;
            } else if let Some((name, value)) = header(line) {
                request.headers.append(name, value);
            }
        }
        Some(request)
    }

    /// The request as bytes that [`FuzzRequest::from_bytes`] reads back, for
    /// writing seed inputs and property tests.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.method.as_str().as_bytes().to_vec();
        if self.version == Version::HTTP_10 {
            bytes.extend_from_slice(b" HTTP/1.0");
        }
        for (name, value) in &self.headers {
            bytes.push(b'\n');
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
        }
        for origin in &self.allowed_origins {
            bytes.extend_from_slice(b"\n+");
            bytes.extend_from_slice(origin.as_bytes());
        }
        if let Some(query) = &self.query {
            bytes.extend_from_slice(b"\n?");
            bytes.extend_from_slice(query.as_bytes());
        }
        if self.allow_query_token {
            bytes.extend_from_slice(b"\n!allow_query_token");
        }
        bytes
    }
}

/// A `name: value` line as a header, with the value's surrounding spaces
/// and tabs trimmed as an HTTP parser does; `None` when HTTP could not
/// carry it.
fn header(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let colon = line.iter().position(|byte| *byte == b':')?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    let value = value.trim_ascii();
    let name = HeaderName::from_bytes(name).ok()?;
    let value = HeaderValue::from_bytes(value).ok()?;
    Some((name, value))
}
