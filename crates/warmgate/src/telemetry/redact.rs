//! The last line of defence for secrets in log lines: a writer that masks
//! every secret the config holds, whoever wrote the line.
//!
//! warmgate's own lines never hold a secret (the secret types print only a
//! redacted form), and the trace exporter is never given one it could log
//! (see `traces` and `export_client`). But third-party crates under the
//! exporter and the probes log what they like at `debug` and `trace`, and a
//! new release may start logging a URL or echo a server's answer. So the log
//! layer writes through [`RedactingStderr`], which replaces each secret it
//! knows the exact value of with `***`: the passwords and query values of
//! every URL (checks, JWKS, OTLP endpoint), the HMAC secret, the admin
//! tokens, the OTLP headers' values and the `Authorization` sent to the
//! collector.
//!
//! The cost is one Aho-Corasick scan of each formatted line, which finds no
//! match in all but a leaking line; with no secret configured it is one
//! `Option` check. It masks what it knows, as it is written: a secret that
//! a crate re-encodes (other than the percent-decoding and the escaping of
//! JSON and `Debug`, which are covered) passes. Values shorter than
//! [`MIN_MASKED_BYTES`] are not masked: they would garble ordinary words in
//! every line (a query's `sslmode=require`). The rules above still keep them
//! out of every URL and error warmgate and the exporter print, but a
//! server's answer quoting one would show it.

use std::io;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use tracing_subscriber::fmt::MakeWriter;
use warmgate_config::{AuthConfig, Config, JwtKeys, ProbeConfig, SecretUrl};

/// What a masked secret becomes, as in a redacted URL's password.
const MASK: &str = "***";

/// Secrets shorter than this are left alone.
pub(crate) const MIN_MASKED_BYTES: usize = 8;

/// The OTLP header variables the exporter reads itself.
const OTLP_HEADER_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
];

/// Finds and masks a fixed set of secrets.
#[derive(Debug)]
pub(crate) struct Redactor {
    secrets: AhoCorasick,
}

impl Redactor {
    /// A redactor for `secrets` and their escaped forms, or `None` when none
    /// is long enough to mask.
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Option<Redactor> {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets {
            if secret.len() < MIN_MASKED_BYTES {
                continue;
            }
            // JSON strings and `Debug` both escape quotes and backslashes.
            let escaped = secret.replace('\\', "\\\\").replace('"', "\\\"");
            if escaped != secret {
                patterns.push(escaped);
            }
            patterns.push(secret);
        }
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            return None;
        }
        // The longest match first, so that a secret holding another is
        // masked whole.
        let secrets = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()?;
        Some(Redactor { secrets })
    }

    /// `line` with every secret masked, or `None` when it holds none.
    fn mask(&self, line: &[u8]) -> Option<Vec<u8>> {
        if !self.secrets.is_match(line) {
            return None;
        }
        let mut masked = Vec::with_capacity(line.len());
        self.secrets
            .replace_all_with_bytes(line, &mut masked, |_, _, masked| {
                masked.extend_from_slice(MASK.as_bytes());
                true
            });
        Some(masked)
    }
}

/// Every secret the config holds and the telemetry variables name, as
/// written; [`Redactor::new`] keeps those long enough.
pub(crate) fn config_secrets(
    config: &Config,
    otlp_endpoint: Option<&SecretUrl>,
    env: super::Env<'_>,
) -> Vec<String> {
    let mut urls: Vec<&SecretUrl> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    for check in config.phases.iter().flat_map(|phase| &phase.checks) {
        match &check.probe {
            ProbeConfig::Postgres { url }
            | ProbeConfig::Redis { url }
            | ProbeConfig::Http { url, .. } => urls.push(url),
            ProbeConfig::Tcp { .. } | ProbeConfig::Signal | ProbeConfig::Jwks => {}
        }
    }
    if let AuthConfig::Jwt(jwt) = &config.auth {
        match &jwt.keys {
            JwtKeys::Jwks(url) => urls.push(url),
            JwtKeys::Secret(secret) => secrets.push(secret.expose().to_owned()),
        }
    }
    urls.extend(&config.telemetry.otlp_endpoint);
    if let Some(endpoint) = otlp_endpoint {
        urls.push(endpoint);
        if let (_, Some((user, password))) = endpoint.split_credentials() {
            // The credentials as they travel, without the scheme's name.
            let authorization = super::traces::basic_authorization(&user, &password);
            secrets.push(authorization.trim_start_matches("Basic ").to_owned());
        }
    }
    secrets.extend(urls.into_iter().flat_map(SecretUrl::hidden_values));
    for token in [&config.admin_token, &config.admin_read_token]
        .into_iter()
        .flatten()
    {
        secrets.push(token.expose().to_owned());
    }
    for variable in OTLP_HEADER_VARIABLES {
        let Some(headers) = env(variable) else {
            continue;
        };
        for value in headers
            .split(',')
            .filter_map(|pair| pair.split_once('=').map(|(_, value)| value.trim()))
            .filter(|value| !value.is_empty())
        {
            secrets.push(value.to_owned());
            let decoded = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            if decoded != value {
                secrets.push(decoded);
            }
        }
    }
    secrets
}

// === impl RedactingStderr ===

/// Makes the log layer's writers: stderr, through the redactor if any.
#[derive(Debug, Clone)]
pub(crate) struct RedactingStderr {
    redactor: Option<Arc<Redactor>>,
}

impl RedactingStderr {
    pub(crate) fn new(redactor: Option<Redactor>) -> Self {
        RedactingStderr {
            redactor: redactor.map(Arc::new),
        }
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            redactor: self.redactor.as_deref(),
        }
    }
}

/// Writes one formatted event to stderr, masked. The log layer hands over
/// each event whole, in one `write`, so a secret is never split between
/// two calls.
pub(crate) struct RedactingWriter<'a> {
    redactor: Option<&'a Redactor>,
}

impl io::Write for RedactingWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut stderr = io::stderr().lock();
        match self.redactor.and_then(|redactor| redactor.mask(line)) {
            Some(masked) => stderr.write_all(&masked)?,
            None => stderr.write_all(line)?,
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests;
