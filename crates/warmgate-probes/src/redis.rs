//! The `redis` probe: `PING` answered by `PONG`, over a connection kept
//! between attempts.

use std::io;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use warmgate_secret::SecretUrl;

use crate::error::describe_io;
use crate::{Probe, ProbeError, ProbeFuture};
use warmgate_outbound::io_cause;

/// Sends `PING` and expects `PONG`. The connection (with `AUTH` from the
/// URL's password, and `SELECT` of its database) is kept between attempts
/// and dropped after any failure or cancellation.
pub struct RedisProbe {
    /// Turned into a client (whose `Debug` shows the password) only when
    /// connecting.
    url: SecretUrl,
    /// Host and port, for "connection refused to 127.0.0.1:6380".
    address: String,
    connection: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProbe")
            .field("url", &self.url)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl RedisProbe {
    /// `url` is a `redis://` URL; errors and logs name it by its redacted
    /// form.
    pub fn new(url: SecretUrl) -> Result<Self, ProbeError> {
        // Opened here so that a bad URL stops the start; redis's errors
        // never repeat the URL. The client is dropped, and opened again
        // for each connection.
        let client =
            redis::Client::open(url.expose()).map_err(|error| ProbeError::InvalidTarget {
                target: url.redacted().to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Self {
            address: client.get_connection_info().addr().to_string(),
            url,
            connection: None,
        })
    }

    fn describe(&self, error: &redis::RedisError) -> String {
        if error.kind() == redis::ErrorKind::AuthenticationFailed
            || error
                .code()
                .is_some_and(|code| code == "WRONGPASS" || code == "NOAUTH")
        {
            return format!("authentication failed for {}: {error}", self.url);
        }
        if let Some(io) = io_cause(error) {
            return format!("{} to {}", describe_io(io), self.address);
        }
        error.to_string()
    }

    /// A failed attempt as every probe reports one: a refused or timed-out
    /// connection (a new one, or the kept one reconnecting) is
    /// [`ProbeError::Connect`] to the server's address, so it reads, and is
    /// classed, as a TCP or PostgreSQL check's would; anything else says
    /// what the client said.
    ///
    /// The client keeps its IO error behind a shared pointer, which the
    /// error chain does not see through, so its kind comes from the
    /// client's own questions.
    fn failure(&self, error: &redis::RedisError) -> ProbeError {
        let kind = if error.is_connection_refusal() {
            io::ErrorKind::ConnectionRefused
        } else if error.is_timeout() {
            io::ErrorKind::TimedOut
        } else {
            return ProbeError::Failed {
                message: self.describe(error),
            };
        };
        ProbeError::Connect {
            target: self.address.clone(),
            source: io::Error::from(kind),
        }
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        // The engine's timeout bounds every attempt, so the client's own
        // timeouts are off: they would cut in first with a vaguer message.
        redis::Client::open(self.url.expose())?
            .get_multiplexed_async_connection_with_config(
                &AsyncConnectionConfig::new()
                    .set_connection_timeout(None)
                    .set_response_timeout(None),
            )
            .await
    }
}

impl Probe for RedisProbe {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn target(&self) -> String {
        self.url.redacted().to_owned()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut connection = match self.connection.take() {
                Some(connection) => connection,
                None => self.connect().await.map_err(|error| self.failure(&error))?,
            };
            let reply: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|error| self.failure(&error))?;
            if reply != "PONG" {
                return Err(ProbeError::Failed {
                    message: format!("PING to {} answered {reply:?}, expected \"PONG\"", self.url),
                });
            }
            self.connection = Some(connection);
            Ok(())
        })
    }
}
