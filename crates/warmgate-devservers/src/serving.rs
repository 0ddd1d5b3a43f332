//! The serving line: the one line a server of this project prints on stdout
//! once its listeners are bound, which tells people and tools where to
//! connect. Its format, the same for every program:
//!
//! ```text
//! NAME: serving http://ADDR
//! NAME: serving http://ADDR (admin http://ADDR)
//! ```
//!
//! `NAME` is one word naming the server (`warmgate`, `reference`,
//! `floor`, `old-design`, `warmgate-jwks-server`, ...); each `ADDR` is an IP address and port as Rust's
//! `SocketAddr` writes it (`127.0.0.1:8080`, `[::1]:8080`). The admin part is
//! there for a program with an admin listener, which is warmgate. The line
//! ends there: nothing else follows, so a reader can insist on the whole of
//! it.
//!
//! This module reads the line ([`ServingLine::parse`], for xtask and the
//! end-to-end tests) and writes it ([`ServingLine`]'s `Display`, for the
//! benchmark servers). The `warmgate` program prints its own line (it does
//! not depend on this crate); the end-to-end tests read that line with
//! [`ServingLine::parse`] at every start, which holds the two together. The
//! web tests have the same reader in JavaScript (`web/test/gateway.mjs`).
//! Reading the line from a child's stdout, and waiting for it, is the
//! caller's business.

use std::fmt;
use std::net::SocketAddr;

use crate::DevServerError;

/// What comes between the name and the first address.
const SERVING: &str = ": serving http://";

/// What comes between the first address and the admin address.
const ADMIN: &str = " (admin http://";

/// Where a server listens, as its serving line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingLine {
    /// The program's name, the line's first word.
    pub name: String,
    /// The public listener.
    pub public: SocketAddr,
    /// The admin listener, for a program that has one.
    pub admin: Option<SocketAddr>,
}

impl ServingLine {
    /// Reads one serving line; a line break or spaces at its end are
    /// ignored, anything else that is not the format is an error naming the
    /// line.
    pub fn parse(line: &str) -> Result<ServingLine, DevServerError> {
        let text = line.trim_end();
        let not_serving = |reason: String| DevServerError::NotAServingLine {
            line: line.to_owned(),
            reason,
        };
        let (name, rest) = text
            .split_once(SERVING)
            .ok_or_else(|| not_serving(format!("it has no `{SERVING}`")))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(not_serving(format!(
                "`{name}` is not a program's name (one word)"
            )));
        }
        let (public, admin) = match rest.split_once(ADMIN) {
            None => (rest, None),
            Some((public, admin)) => {
                let admin = admin.strip_suffix(')').ok_or_else(|| {
                    not_serving("the admin address is not closed with `)`".to_owned())
                })?;
                (public, Some(admin))
            }
        };
        let address = |text: &str| {
            text.parse::<SocketAddr>().map_err(|_| {
                not_serving(format!(
                    "`{text}` is not an address (IP:PORT, or [IPv6]:PORT)"
                ))
            })
        };
        Ok(ServingLine {
            name: name.to_owned(),
            public: address(public)?,
            admin: admin.map(address).transpose()?,
        })
    }

    /// [`ServingLine::parse`], for a line that must come from the program
    /// `name`.
    pub fn parse_from(name: &str, line: &str) -> Result<ServingLine, DevServerError> {
        let serving = ServingLine::parse(line)?;
        if serving.name != name {
            return Err(DevServerError::NotAServingLine {
                line: line.to_owned(),
                reason: format!("it is {}'s, not {name}'s", serving.name),
            });
        }
        Ok(serving)
    }
}

/// The line itself, without a line break.
impl fmt::Display for ServingLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{SERVING}{}", self.name, self.public)?;
        if let Some(admin) = self.admin {
            write!(f, "{ADMIN}{admin})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
