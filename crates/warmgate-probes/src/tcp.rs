//! The `tcp` probe: a dependency is up when a TCP connection to it succeeds.

use tokio::net::TcpStream;

use crate::{Probe, ProbeError, ProbeFuture};

/// Connects to `addr` (`host:port`) and closes the connection at once.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    addr: String,
}

impl TcpProbe {
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

impl Probe for TcpProbe {
    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn target(&self) -> String {
        self.addr.clone()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let addrs: Vec<_> = tokio::net::lookup_host(self.addr.as_str())
                .await
                .map_err(|source| ProbeError::Resolve {
                    target: self.addr.clone(),
                    source,
                })?
                .collect();
            let mut last_error = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(_stream) => return Ok(()),
                    Err(error) => last_error = Some(error),
                }
            }
            Err(ProbeError::Connect {
                target: self.addr.clone(),
                source: last_error.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses found")
                }),
            })
        })
    }
}
