//! The `redis` probe: `PING` answered by `PONG`, over a connection kept
//! between attempts.

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::error::{describe_io, io_cause};
use crate::{Probe, ProbeError, ProbeFuture};

/// Sends `PING` and expects `PONG`. The connection (with `AUTH` from the
/// URL's password, and `SELECT` of its database) is kept between attempts
/// and dropped after any failure or cancellation.
pub struct RedisProbe {
    client: redis::Client,
    target: String,
    connection: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProbe")
            .field("target", &self.target)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl RedisProbe {
    /// `url` is a `redis://` URL; `target` is how errors and logs name it,
    /// with no password.
    pub fn new(url: &str, target: impl Into<String>) -> Result<Self, ProbeError> {
        let target = target.into();
        let client = redis::Client::open(url).map_err(|error| ProbeError::InvalidTarget {
            target: target.clone(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            client,
            target,
            connection: None,
        })
    }

    fn describe(&self, error: &redis::RedisError) -> String {
        if error.kind() == redis::ErrorKind::AuthenticationFailed
            || error
                .code()
                .is_some_and(|code| code == "WRONGPASS" || code == "NOAUTH")
        {
            return format!("authentication failed for {}: {error}", self.target);
        }
        if let Some(io) = io_cause(error) {
            return format!("{} to {}", describe_io(io), self.address());
        }
        error.to_string()
    }

    fn address(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }
}

impl Probe for RedisProbe {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn target(&self) -> String {
        self.target.clone()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut connection = match self.connection.take() {
                Some(connection) => connection,
                // The engine's timeout bounds every attempt, so the
                // client's own timeouts are off: they would cut in first
                // with a vaguer message.
                None => self
                    .client
                    .get_multiplexed_async_connection_with_config(
                        &AsyncConnectionConfig::new()
                            .set_connection_timeout(None)
                            .set_response_timeout(None),
                    )
                    .await
                    .map_err(|error| ProbeError::Failed {
                        message: self.describe(&error),
                    })?,
            };
            let reply: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|error| ProbeError::Failed {
                    message: self.describe(&error),
                })?;
            if reply != "PONG" {
                return Err(ProbeError::Failed {
                    message: format!(
                        "PING to {} answered {reply:?}, expected \"PONG\"",
                        self.target
                    ),
                });
            }
            self.connection = Some(connection);
            Ok(())
        })
    }
}
