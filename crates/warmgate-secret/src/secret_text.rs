//! A secret string: its `Debug` shows only its length, and it has no
//! `Display`, so it cannot be formatted into a message by accident.

use std::fmt;

/// A secret read from the environment or the config file.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(secret: impl Into<String>) -> SecretText {
        SecretText(secret.into())
    }

    /// The secret itself. Only the call that uses it (a key being built,
    /// a token being compared) should read it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes, which is safe to show.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText(<{} bytes>)", self.0.len())
    }
}
