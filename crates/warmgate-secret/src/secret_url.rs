//! URLs that may carry a password or a token, and their redacted form.
//!
//! A [`SecretUrl`] shows only its redacted form through `Debug` and
//! `Display`, so printing a config, logging a check or building an error can
//! never leak the password. The full URL is reached only through
//! [`SecretUrl::expose`], which the probes, the JWKS client and the trace
//! exporter call when they connect.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::SecretText;

/// A URL with its password and query hidden from every printout.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    url: String,
    redacted: String,
}

impl SecretUrl {
    /// Parses `text` as a URL with one of `schemes` and a host. The error
    /// never repeats the text, which may hold a password.
    pub fn parse(text: &str, schemes: &[&str]) -> Result<Self, String> {
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

    /// The full URL, password and query included. Only the call that
    /// connects should read it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***` and any query replaced by
    /// `?…`: safe for logs, snapshots and errors.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL with `path` appended to its path, the query kept: for an
    /// OTLP base URL and its `/v1/traces`.
    pub fn join_path(&self, path: &str) -> SecretUrl {
        // The text parsed once already, so it parses again.
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return self.clone();
        };
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        SecretUrl {
            url: url.to_string(),
            redacted: redact(&url),
        }
    }
}

impl SecretUrl {
    /// The URL without its user name and password, and those two
    /// (percent-decoded), for a client that should send them in a header
    /// rather than hold them in the URL it connects to (and logs).
    pub fn split_credentials(&self) -> (SecretUrl, Option<(String, SecretText)>) {
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return (self.clone(), None);
        };
        if url.username().is_empty() && url.password().is_none() {
            return (self.clone(), None);
        }
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        let password = SecretText::new(decode(url.password().unwrap_or("")));
        // Clearing both fails only for URLs that cannot have them, and this
        // one has them.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let bare = SecretUrl {
            url: url.to_string(),
            redacted: redact(&url),
        };
        (bare, Some((user, password)))
    }
}

impl SecretUrl {
    /// The URL without its query (nor fragment): for a client that must not
    /// hold the query in the URL it logs, and adds it back only on the
    /// request it sends.
    pub fn without_query(&self) -> SecretUrl {
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return self.clone();
        };
        if url.query().is_none() && url.fragment().is_none() {
            return self.clone();
        }
        url.set_query(None);
        url.set_fragment(None);
        SecretUrl {
            url: url.to_string(),
            redacted: redact(&url),
        }
    }

    /// Whether the URL has a query, which its redacted form hides.
    pub fn has_query(&self) -> bool {
        url::Url::parse(&self.url).is_ok_and(|url| url.query().is_some())
    }

    /// The values the redacted form hides: the password and each query
    /// value (a query part without `=` whole), each as written and, when
    /// different, percent-decoded. Empty values are left out. For a log
    /// writer that masks them wherever a third-party crate prints them.
    pub fn hidden_values(&self) -> Vec<String> {
        let Ok(url) = url::Url::parse(&self.url) else {
            return Vec::new();
        };
        let mut written: Vec<&str> = url.password().into_iter().collect();
        if let Some(query) = url.query() {
            written.extend(query.split('&').map(|part| match part.split_once('=') {
                Some((_, value)) => value,
                None => part,
            }));
        }
        let mut values = Vec::new();
        for value in written.into_iter().filter(|value| !value.is_empty()) {
            values.push(value.to_owned());
            // A query's `+` is a space once decoded.
            let decoded = percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            if decoded != value {
                values.push(decoded);
            }
        }
        values
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
