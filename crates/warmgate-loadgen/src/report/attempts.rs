//! Connection attempts: who tried with what credential, and how each
//! attempt ended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of credential a connection attempt carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A good token (or, with authentication off, nothing, which is fine).
    #[serde(rename = "good_token")]
    Good,
    NoToken,
    /// Signed by another key under the published key id.
    WrongKey,
    /// Signed by a key under an id the auth service does not publish.
    UnknownKey,
    Expired,
}

impl Credential {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::Good => "good_token",
            Credential::NoToken => "no_token",
            Credential::WrongKey => "wrong_key",
            Credential::UnknownKey => "unknown_key",
            Credential::Expired => "expired",
        }
    }
}

/// How one attempt ended. The protocol promises that every attempt ends in
/// one of the first three ways; `NoConnection` is nothing listening, and
/// `Silent` is the broken promise (the connection opened, then ended or
/// stalled without `ready` or `unavailable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttemptOutcome {
    /// `ready`, at once or after a hold (`warming` first).
    Admitted { held: bool },
    /// The `unavailable` frame with its reason, and the close that
    /// followed it (1013 expected; `None` when none came).
    Unavailable {
        reason: String,
        #[serde(deserialize_with = "Option::deserialize")]
        retry_after_ms: Option<u64>,
        #[serde(deserialize_with = "Option::deserialize")]
        close_code: Option<u16>,
    },
    /// Refused before the upgrade: the HTTP status and the body's `error`
    /// (`no_json_error` when the body had none).
    Refused { status: u16, error: String },
    /// No connection at all.
    NoConnection { why: String },
    /// Opened, then no `ready` or `unavailable`.
    Silent { why: String },
}

impl AttemptOutcome {
    /// A short label, the key of [`AttemptCounts::by_credential`]:
    /// `admitted`, `admitted_after_hold`, `unavailable:REASON`,
    /// `http_STATUS:ERROR`, `no_connection` or `silent`. [`OutcomeLabel`]
    /// reads it back.
    pub fn label(&self) -> String {
        match self {
            AttemptOutcome::Admitted { held: false } => "admitted".to_owned(),
            AttemptOutcome::Admitted { held: true } => "admitted_after_hold".to_owned(),
            AttemptOutcome::Unavailable { reason, .. } => format!("unavailable:{reason}"),
            AttemptOutcome::Refused { status, error } => format!("http_{status}:{error}"),
            AttemptOutcome::NoConnection { .. } => "no_connection".to_owned(),
            AttemptOutcome::Silent { .. } => "silent".to_owned(),
        }
    }
}

/// An [`AttemptOutcome::label`] read back: what a reader of the counts
/// can tell from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeLabel<'a> {
    Admitted { held: bool },
    Unavailable { reason: &'a str },
    Refused { status: u16, error: &'a str },
    NoConnection,
    Silent,
}

impl<'a> OutcomeLabel<'a> {
    /// Reads a label; `None` for anything [`AttemptOutcome::label`] does
    /// not write.
    pub fn parse(label: &'a str) -> Option<OutcomeLabel<'a>> {
        match label {
            "admitted" => return Some(OutcomeLabel::Admitted { held: false }),
            "admitted_after_hold" => return Some(OutcomeLabel::Admitted { held: true }),
            "no_connection" => return Some(OutcomeLabel::NoConnection),
            "silent" => return Some(OutcomeLabel::Silent),
            _ => {}
        }
        if let Some(reason) = label.strip_prefix("unavailable:") {
            return Some(OutcomeLabel::Unavailable { reason });
        }
        let (status, error) = label.strip_prefix("http_")?.split_once(':')?;
        Some(OutcomeLabel::Refused {
            status: status.parse().ok()?,
            error,
        })
    }
}

/// One connection attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptRecord {
    pub credential: Credential,
    pub started_ms: f64,
    pub ended_ms: f64,
    pub outcome: AttemptOutcome,
    /// For an admitted client, how its stay ended (`left`, `told
    /// draining, left (…)`, …); `None` otherwise.
    #[serde(deserialize_with = "Option::deserialize")]
    pub stay: Option<String>,
}

/// The attempts, counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptCounts {
    pub total: usize,
    /// Attempts by credential, then by [`AttemptOutcome::label`].
    pub by_credential: BTreeMap<Credential, BTreeMap<String, u64>>,
    /// The silent attempts, the first hundred of them.
    pub silent: Vec<AttemptRecord>,
}
