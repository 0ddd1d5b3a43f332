//! The `http` probe: a `GET` whose status (and optionally body) is as
//! expected.
//!
//! Behaviour, as documented in `docs/configuration.md`:
//! - redirects are followed, up to 5; the final response is judged;
//! - `https://` uses TLS with the system's root certificates (rustls);
//!   certificate errors fail the check and are not ignorable;
//! - the attempt's timeout bounds the whole exchange, body included;
//! - at most 64 KiB of the body is read when `expect_body` is set.

use std::time::Duration;

use crate::error::{describe_io, io_cause};
use crate::{Probe, ProbeError, ProbeFuture};

/// The most body read to look for `expect_body`.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sends `GET url` and checks the answer.
#[derive(Debug)]
pub struct HttpProbe {
    client: reqwest::Client,
    url: reqwest::Url,
    target: String,
    expect_status: Option<Vec<u16>>,
    expect_body: Option<String>,
}

impl HttpProbe {
    /// `url` is an `http://` or `https://` URL; `target` is how errors and
    /// logs name it, with no password or query. `expect_status` of `None`
    /// accepts any 2xx.
    pub fn new(
        url: &str,
        target: impl Into<String>,
        expect_status: Option<Vec<u16>>,
        expect_body: Option<String>,
    ) -> Result<Self, ProbeError> {
        let target = target.into();
        let invalid = |reason: String| ProbeError::InvalidTarget {
            target: target.clone(),
            reason,
        };
        // rustls needs one process-wide crypto provider; installing it twice
        // is harmless, so every probe makes sure.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = reqwest::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("warmgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            client,
            url,
            target,
            expect_status,
            expect_body,
        })
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

    fn describe(&self, error: &reqwest::Error) -> String {
        if let Some(io) = io_cause(error) {
            return format!("{} to {}", describe_io(io), self.target);
        }
        let mut deepest = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(current) = source {
            deepest = current.to_string();
            source = current.source();
        }
        // reqwest's own message repeats the full URL, query included; the
        // innermost cause says what went wrong without it.
        format!("GET {} failed: {deepest}", self.target)
    }
}

impl Probe for HttpProbe {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn target(&self) -> String {
        self.target.clone()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let failed = |message: String| ProbeError::Failed { message };
            let mut response = self
                .client
                .get(self.url.clone())
                .send()
                .await
                .map_err(|error| failed(self.describe(&error)))?;
            let status = response.status();
            let status_ok = match &self.expect_status {
                Some(statuses) => statuses.contains(&status.as_u16()),
                None => status.is_success(),
            };
            if !status_ok {
                return Err(failed(format!(
                    "HTTP {} from {}, expected {}",
                    status.as_u16(),
                    self.target,
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
                    .map_err(|error| failed(self.describe(&error)))?
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
                    self.target,
                    MAX_BODY_BYTES / 1024
                )))
            }
        })
    }
}
