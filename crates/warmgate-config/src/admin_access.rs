//! What a client of the admin listener needs from a config file: where the
//! admin listener is, and the admin tokens, read leniently.
//!
//! The operator's commands (`warmgate status`, `signal`, `drain`, `history`)
//! run where an operator is, which often lacks the server's secrets (a
//! database URL's variable, say). So this reads only the top-level keys
//! `admin_listen`, `admin_token`, `admin_token_env`, `admin_read_token` and
//! `admin_read_token_env`, ignores every other key and table (the server
//! checks those), and takes a token whose variable is not set here as
//! absent, remembering where it would have come from so that a refusal can
//! say which variable to set. Only a file that is not TOML, or an
//! `admin_listen` that is not an address, is an error.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::error::Origin;
use crate::values::ListenAddress;
use crate::{Config, ConfigError, SecretText};

/// The admin listener's address and the tokens for it, as a client reads
/// them from the server's config file (see the module doc).
#[derive(Debug, Clone)]
pub struct AdminAccess {
    /// The admin listener, as the server binds it (an unspecified address
    /// such as `0.0.0.0` is the caller's to turn into loopback).
    pub admin_listen: SocketAddr,
    /// The control token (`admin_token`/`admin_token_env`), accepted on
    /// every admin route.
    pub control: Option<AdminCredential>,
    /// The read token (`admin_read_token`/`admin_read_token_env`), accepted
    /// on the reading routes only.
    pub read: Option<AdminCredential>,
    /// The file it came from, or the embedded default's name.
    pub source: String,
}

/// One admin token as the file names it: the token, when this process has
/// it, and where it comes from, in words for messages (``the variable
/// `WARMGATE_ADMIN_TOKEN` (admin_token_env in /etc/warmgate.toml)``).
#[derive(Debug, Clone)]
pub struct AdminCredential {
    /// `None` when the file names a variable that is not set (or empty)
    /// here.
    pub token: Option<SecretText>,
    /// Where the token comes from.
    pub from: String,
}

/// The keys this reads; every other key of the file is ignored.
#[derive(Debug, Default, Deserialize)]
struct RawAdminAccess {
    admin_listen: Option<ListenAddress>,
    admin_token: Option<String>,
    admin_token_env: Option<String>,
    admin_read_token: Option<String>,
    admin_read_token_env: Option<String>,
}

impl AdminAccess {
    /// Reads the admin keys of the file at `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read,
    /// [`ConfigError::Syntax`] when it is not TOML, and
    /// [`ConfigError::Invalid`] when `admin_listen` is not an address.
    pub fn from_file(path: &Path) -> Result<AdminAccess, ConfigError> {
        let (text, file) = crate::model::read_file(path)?;
        Self::from_toml_str(&text, &file)
    }

    /// Reads the admin keys of config text; `source` names it in errors and
    /// messages.
    ///
    /// # Errors
    /// As [`AdminAccess::from_file`], but for reading.
    pub fn from_toml_str(text: &str, source: &str) -> Result<AdminAccess, ConfigError> {
        let origin = Origin { file: source, text };
        let raw: RawAdminAccess = crate::raw::parse(&origin)?;
        let credential =
            |value: Option<String>, env: Option<String>, keys: [&str; 2]| match (value, env) {
                (_, Some(variable)) => Some(AdminCredential {
                    token: std::env::var(&variable)
                        .ok()
                        .filter(|token| !token.is_empty())
                        .map(SecretText::new),
                    from: format!("the variable `{variable}` ({} in {source})", keys[1]),
                }),
                (Some(token), None) => Some(AdminCredential {
                    token: Some(SecretText::new(token)),
                    from: format!("{} in {source}", keys[0]),
                }),
                (None, None) => None,
            };
        Ok(AdminAccess {
            admin_listen: raw
                .admin_listen
                .map_or(Config::DEFAULT_ADMIN_LISTEN, |listen| listen.0),
            control: credential(
                raw.admin_token,
                raw.admin_token_env,
                ["admin_token", "admin_token_env"],
            ),
            read: credential(
                raw.admin_read_token,
                raw.admin_read_token_env,
                ["admin_read_token", "admin_read_token_env"],
            ),
            source: source.to_owned(),
        })
    }

    /// The embedded default's: the default admin listener, no token.
    pub fn embedded_default() -> AdminAccess {
        AdminAccess {
            admin_listen: Config::DEFAULT_ADMIN_LISTEN,
            control: None,
            read: None,
            source: Config::EMBEDDED_DEFAULT_SOURCE.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
