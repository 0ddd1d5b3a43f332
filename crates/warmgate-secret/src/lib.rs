//! Secrets held so that no printout shows them.
//!
//! A [`SecretUrl`] is a URL that may carry a password or a token in its
//! query; a [`SecretText`] is a secret string (the HMAC secret, the admin
//! token). Their `Debug` (and `SecretUrl`'s `Display`) show only a redacted
//! form, so a config, a probe, a log line or an error built from them cannot
//! leak the secret. The secret itself is reached only through `expose`,
//! which only the call that connects (or verifies) should make.
//!
//! This crate is small on purpose: the config, the probes and the
//! authenticator all hold these types, and none of them needs the others
//! for it.

#![forbid(unsafe_code)]

mod secret_text;
mod secret_url;

pub use self::secret_text::SecretText;
pub use self::secret_url::SecretUrl;

#[cfg(test)]
mod tests;
