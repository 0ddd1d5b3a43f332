//! Free loopback ports for the servers the commands start.
//!
//! A port found here is free when it is found, not when it is used: the
//! listener that found it is closed at once, so another process may take
//! it in between. The commands that start a server on one either retry on
//! another or start it straight away; a listener kept open on purpose
//! (such as the benchmarks' "black hole") is not this module's business.

use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;

/// A loopback address with a port that is free right now.
pub(crate) fn free_loopback_address() -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("cannot find a free port on 127.0.0.1")?;
    listener
        .local_addr()
        .context("cannot read the address of a listener on 127.0.0.1")
}

/// [`free_loopback_address`]'s port.
pub(crate) fn free_loopback_port() -> anyhow::Result<u16> {
    Ok(free_loopback_address()?.port())
}
