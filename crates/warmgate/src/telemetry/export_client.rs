//! The HTTP client of the OTLP/HTTP exporter: the only holder of the
//! endpoint's query.
//!
//! The exporter logs the URL it posts to at `debug` when an export fails
//! (and quotes the client's error, which repeats the URL), so it is given
//! the endpoint without its query. [`ExportClient`] puts the query back on
//! each request just before sending it, and strips the URL from every error
//! it returns, so neither the exporter nor its log lines ever see the
//! query. Redirects are not followed: reqwest logs the URLs of a redirect,
//! and an export should reach the configured collector or fail.
//!
//! The client does not set up the exporter, nor does it send the user and
//! password of the endpoint: `traces` turns those into a header.

use std::fmt;
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use warmgate_config::SecretUrl;

/// A blocking reqwest client (the batch span processor exports from a
/// thread of its own, outside the runtime) that sends every request to one
/// URL, query included.
pub(crate) struct ExportClient {
    client: reqwest::blocking::Client,
    /// The URL the exporter was given, with its query.
    endpoint: SecretUrl,
}

impl ExportClient {
    /// A client posting to `endpoint` (without credentials, which go in a
    /// header), each request bounded by `timeout`.
    pub(crate) fn new(endpoint: SecretUrl, timeout: Duration) -> Result<Self, String> {
        // The blocking client runs a runtime of its own, which cannot be
        // started from inside ours: build it on a thread of its own.
        let client = std::thread::Builder::new()
            .name("otlp-client-setup".to_owned())
            .spawn(move || {
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
            })
            .map_err(|error| format!("cannot start a thread for the HTTP client: {error}"))?
            .join()
            .map_err(|_| "the thread building the HTTP client panicked".to_owned())?
            .map_err(|error| format!("cannot build the HTTP client: {}", error.without_url()))?;
        Ok(ExportClient { client, endpoint })
    }
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, mut request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        *request.uri_mut() = self
            .endpoint
            .expose()
            .parse()
            .map_err(|_| -> HttpError { "the OTLP endpoint is not a valid URI".into() })?;
        self.client.send_bytes(request).await.map_err(without_url)
    }
}

/// The error with any URL taken out of it, worded with its causes (the
/// exporter prints only the error itself, and "error sending request" alone
/// does not say that the connection was refused). Only reqwest's errors
/// carry a URL; anything else (such as a body too large) passes unchanged,
/// so that the exporter still recognises it.
fn without_url(error: HttpError) -> HttpError {
    match error.downcast::<reqwest::Error>() {
        Ok(error) => {
            let error = (*error).without_url();
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text.into()
        }
        Err(other) => other,
    }
}

#[cfg(test)]
mod tests;
