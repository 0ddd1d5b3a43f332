//! The `postgres` probe: `SELECT 1` over a connection kept between attempts.

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use warmgate_secret::SecretUrl;

use crate::error::describe_io;
use crate::{Probe, ProbeError, ProbeFuture};
use warmgate_outbound::io_cause;

/// Runs `SELECT 1` within the attempt's timeout.
///
/// The connection is kept between attempts and dropped after any failure or
/// cancellation, so the next attempt reconnects. TLS is not offered: connect
/// over loopback, a private network, a Unix socket or a proxy such as the
/// Cloud SQL Auth Proxy.
pub struct PostgresProbe {
    /// Turned into a connection config only when connecting.
    url: SecretUrl,
    /// Host and port, for "connection refused to 127.0.0.1:5433".
    address: String,
    connection: Option<(Client, JoinHandle<()>)>,
}

impl std::fmt::Debug for PostgresProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresProbe")
            .field("url", &self.url)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl PostgresProbe {
    /// `url` is a `postgres://` URL; errors and logs name it by its
    /// redacted form.
    pub fn new(url: SecretUrl) -> Result<Self, ProbeError> {
        // Parsed here so that a bad URL stops the start; the config is
        // dropped, and built again for each connection.
        let config = connection_config(&url).map_err(|reason| ProbeError::InvalidTarget {
            target: url.redacted().to_owned(),
            reason,
        })?;
        Ok(Self {
            address: address(&config),
            url,
            connection: None,
        })
    }

    /// The probe's error for `error`: a failed connect as
    /// [`ProbeError::Connect`] (so its kind, such as a refused connection,
    /// is kept), anything else in words.
    fn failure(&self, error: &tokio_postgres::Error) -> ProbeError {
        if error.as_db_error().is_none()
            && let Some(io) = io_cause(error)
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return ProbeError::Connect {
                target: self.address.clone(),
                source: io.kind().into(),
            };
        }
        ProbeError::Failed {
            message: self.describe(error),
        }
    }

    fn describe(&self, error: &tokio_postgres::Error) -> String {
        if let Some(db) = error.as_db_error() {
            return format!("{} (SQLSTATE {})", db.message(), db.code().code());
        }
        if let Some(io) = io_cause(error) {
            return format!("{} to {}", describe_io(io), self.address);
        }
        error.to_string()
    }
}

/// The connection config from the URL. tokio-postgres's parse errors name
/// an option, never its value.
fn connection_config(url: &SecretUrl) -> Result<tokio_postgres::Config, String> {
    url.expose()
        .parse()
        .map_err(|error: tokio_postgres::Error| error.to_string())
}

/// Host and port, for "connection refused to 127.0.0.1:5433".
fn address(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

impl Drop for PostgresProbe {
    fn drop(&mut self) {
        if let Some((_, task)) = self.connection.take() {
            task.abort();
        }
    }
}

impl Probe for PostgresProbe {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn target(&self) -> String {
        self.url.redacted().to_owned()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            // Taking the connection out means a cancelled attempt leaves none
            // behind, and the next attempt starts from a fresh one.
            let (client, task) = match self.connection.take() {
                Some(connection) => connection,
                None => {
                    let config = connection_config(&self.url)
                        .map_err(|message| ProbeError::Failed { message })?;
                    let (client, connection) = config
                        .connect(NoTls)
                        .await
                        .map_err(|error| self.failure(&error))?;
                    let task = tokio::spawn(async move {
                        // The error, if any, surfaces on the next query.
                        let _ = connection.await;
                    });
                    (client, task)
                }
            };
            let guard = AbortOnDrop(Some(task));
            match client.simple_query("SELECT 1").await {
                Ok(_) => {
                    self.connection = Some((client, guard.disarm()));
                    Ok(())
                }
                Err(error) => Err(self.failure(&error)),
            }
        })
    }
}

/// Aborts the connection task unless disarmed, so a failed or cancelled
/// attempt never leaks it.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    fn disarm(mut self) -> JoinHandle<()> {
        match self.0.take() {
            Some(task) => task,
            None => tokio::spawn(async {}),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
