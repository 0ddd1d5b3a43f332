//! URLs that may carry a password or a token, and their redacted form.
//!
//! A [`SecretUrl`] shows only its redacted form through `Debug` and
//! `Display`, so printing a config, logging a check or building an error can
//! never leak the password. The full URL is reached only through
//! [`SecretUrl::expose`], which the probes call when they connect.

use std::fmt;

/// A URL with its password and query hidden from every printout.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    url: String,
    redacted: String,
}

impl SecretUrl {
    /// Parses `text` as a URL with one of `schemes`. The error never repeats
    /// the text, which may hold a password.
    pub(crate) fn parse(text: &str, schemes: &[&str]) -> Result<Self, String> {
        let parsed = url::Url::parse(text).map_err(|error| format!("invalid URL ({error})"))?;
        if !schemes.contains(&parsed.scheme()) {
            let expected = schemes
                .iter()
                .map(|scheme| format!("{scheme}://"))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(format!(
                "URL scheme `{}` is not supported here, expected {expected}",
                parsed.scheme()
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("URL has no host".to_owned());
        }
        Ok(Self {
            url: text.to_owned(),
            redacted: redact(&parsed),
        })
    }

    /// The full URL, password included. Only a probe connecting should read
    /// it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***` and any query replaced by
    /// `?…`: safe for logs, snapshots and errors.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Setting a password fails only for URLs that cannot have one, and
        // this one has one.
        let _ = shown.set_password(Some("***"));
    }
    let had_query = shown.query().is_some();
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = shown.to_string();
    if had_query {
        text.push_str("?…");
    }
    text
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}
