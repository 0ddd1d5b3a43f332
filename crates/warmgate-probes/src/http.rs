//! The `http` probe: a `GET` whose status (and optionally body) is as
//! expected.
//!
//! Behaviour, as documented in `docs/configuration.md`:
//! - redirects are followed, up to 5; the final response is judged;
//! - `https://` uses TLS with the system's root certificates (rustls);
//!   certificate errors fail the check and are not ignorable;
//! - the attempt's timeout bounds the whole exchange, body included;
//! - at most 64 KiB of the body is read when `expect_body` is set.

use warmgate_secret::SecretUrl;

use crate::error::describe_io;
use crate::{Probe, ProbeError, ProbeFuture};
use warmgate_outbound::io_cause;

/// The most body read to look for `expect_body`.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sends `GET url` and checks the answer.
pub struct HttpProbe {
    client: reqwest::Client,
    /// Read only when the request is built, so that nothing else (reqwest's
    /// `Url` prints its password and query in `Debug`) ever holds it.
    url: SecretUrl,
    expect_status: Option<Vec<u16>>,
    expect_body: Option<String>,
}

impl std::fmt::Debug for HttpProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProbe")
            .field("url", &self.url)
            .field("expect_status", &self.expect_status)
            .field("expect_body", &self.expect_body)
            .finish()
    }
}

impl HttpProbe {
    /// `url` is an `http://` or `https://` URL; errors and logs name it by
    /// its redacted form. `expect_status` of `None` accepts any 2xx.
    pub fn new(
        url: SecretUrl,
        expect_status: Option<Vec<u16>>,
        expect_body: Option<String>,
    ) -> Result<Self, ProbeError> {
        let invalid = |reason: String| ProbeError::InvalidTarget {
            target: url.redacted().to_owned(),
            reason,
        };
        // Checked here so that a bad URL stops the start; a parse error never
        // repeats the text.
        reqwest::Url::parse(url.expose()).map_err(|error| invalid(error.to_string()))?;
        let client =
            warmgate_outbound::fetch_client().map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            client,
            url,
            expect_status,
            expect_body,
        })
    }

    /// How errors and logs name the URL: no password, no query.
    fn shown(&self) -> &str {
        self.url.redacted()
    }

    fn status_expected(&self) -> String {
        match &self.expect_status {
            Some(statuses) => statuses
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            None => "2xx".to_owned(),
        }
    }

    fn describe(&self, error: reqwest::Error) -> String {
        // reqwest's own message repeats the full URL, query included: drop
        // it, and say what went wrong with the innermost cause.
        let error = error.without_url();
        if let Some(io) = io_cause(&error) {
            return format!("{} to {}", describe_io(io), self.shown());
        }
        format!(
            "GET {} failed: {}",
            self.shown(),
            warmgate_outbound::deepest_cause(&error)
        )
    }
}

impl Probe for HttpProbe {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn target(&self) -> String {
        self.url.redacted().to_owned()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let failed = |message: String| ProbeError::Failed { message };
            let mut response = self
                .client
                .get(self.url.expose())
                .send()
                .await
                .map_err(|error| failed(self.describe(error)))?;
            let status = response.status();
            let status_ok = match &self.expect_status {
                Some(statuses) => statuses.contains(&status.as_u16()),
                None => status.is_success(),
            };
            if !status_ok {
                return Err(failed(format!(
                    "HTTP {} from {}, expected {}",
                    status.as_u16(),
                    self.shown(),
                    self.status_expected()
                )));
            }
            let Some(expected) = &self.expect_body else {
                return Ok(());
            };
            let mut body = Vec::new();
            while body.len() < MAX_BODY_BYTES {
                match response
                    .chunk()
                    .await
                    .map_err(|error| failed(self.describe(error)))?
                {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None => break,
                }
            }
            body.truncate(MAX_BODY_BYTES);
            if String::from_utf8_lossy(&body).contains(expected.as_str()) {
                Ok(())
            } else {
                Err(failed(format!(
                    "HTTP {} from {} has no {expected:?} in the first {} KiB of its body",
                    status.as_u16(),
                    self.shown(),
                    MAX_BODY_BYTES / 1024
                )))
            }
        })
    }
}
