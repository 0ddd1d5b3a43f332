//! The one error type of the probes: why an attempt failed, in words an
//! operator can act on.

use std::io;

/// Why a probe attempt failed. The `Display` text goes into snapshots and
/// logs, so it never carries a password or token.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The TCP connection could not be made.
    #[error("{} to {target}", describe_io(.source))]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    /// The attempt reached the dependency and it answered wrongly, or the
    /// exchange failed; the message says what, in an operator's words.
    #[error("{message}")]
    Failed { message: String },
    /// The probe's target cannot be used at all (a malformed URL).
    #[error("invalid target {target}: {reason}")]
    InvalidTarget { target: String, reason: String },
    /// The target's host name did not resolve to any address.
    #[error("cannot resolve {target}: {}", describe_io(.source))]
    Resolve {
        target: String,
        #[source]
        source: io::Error,
    },
}

/// Renders an IO error the way an operator says it: "connection refused",
/// without the OS error number.
pub(crate) fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        _ => {
            let text = error.to_string();
            // Drop the " (os error N)" suffix the standard library appends.
            match text.find(" (os error") {
                Some(end) => text[..end].to_lowercase(),
                None => text,
            }
        }
    }
}
