//! The crate's one error type, and where in the file an error points.
//!
//! Every [`ConfigError`] displays as one complete line that names the file,
//! the key, the bad value and what was expected, so the binary can print it
//! as-is. Building those errors from spans and key paths is [`Origin`]'s job;
//! deciding what is wrong is the business of the `raw`, `values` and
//! `validate` modules.

use std::fmt;
use std::ops::Range;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    ///
    /// The OS error is part of the message rather than a `source`, so that
    /// printing the message alone says everything and printing the chain does
    /// not say it twice.
    #[error("{file}: cannot read the config file: {error}")]
    Read { file: String, error: std::io::Error },
    /// The text is not well-formed TOML.
    #[error("{file}: invalid TOML: {message}{}", location_suffix(.location))]
    Syntax {
        file: String,
        message: String,
        location: Option<Location>,
    },
    /// The TOML is well-formed, but a key is unknown or missing, or a value
    /// breaks a rule.
    #[error("{file}: {key}: {message}{}", location_suffix(.location))]
    Invalid {
        file: String,
        /// The key path, such as `phase[0].check[1].timeout`.
        key: String,
        message: String,
        location: Option<Location>,
    },
}

/// A position in the config text. Both numbers start at 1; the column counts
/// characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn location_suffix(location: &Option<Location>) -> String {
    match location {
        Some(location) => format!(" ({location})"),
        None => String::new(),
    }
}

// === impl Location ===

impl Location {
    /// The location of a byte offset into `text`. An offset past the end or
    /// inside a character is clamped rather than trusted, because spans come
    /// from another crate and this must never panic.
    pub(crate) fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// The file being read: its name for messages and its text for locations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
}

// === impl Origin ===

impl Origin<'_> {
    pub(crate) fn syntax(&self, message: &str, span: Option<Range<usize>>) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_owned(),
            message: one_line(message),
            location: self.locate(span),
        }
    }

    pub(crate) fn invalid(
        &self,
        key: &str,
        message: &str,
        span: Option<Range<usize>>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: one_line(key),
            message: one_line(message),
            location: self.locate(span),
        }
    }

    pub(crate) fn locate(&self, span: Option<Range<usize>>) -> Option<Location> {
        span.map(|span| Location::of_offset(self.text, span.start))
    }
}

/// Escapes control characters (a newline inside a quoted TOML key, say), so
/// that every message stays on one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
