//! Command-line arguments and environment overrides, and the subcommands:
//! `check-config`, and the operator's `status`, `signal`, `drain` and
//! `history` (carried out by `operator`).
//!
//! Precedence, highest first: a flag, its environment variable, the config
//! file, the built-in default. The public listener has one more source,
//! between the variable and the file: `PORT`, the port a platform such as
//! Cloud Run or Heroku tells the container to serve on, which means
//! `0.0.0.0:$PORT`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use warmgate_config::{AdminAccess, Config};

/// An event-driven readiness gate for WebSocket backends.
///
/// With no config file, warmgate runs an embedded plan that needs no
/// outside service and is ready within milliseconds.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The TOML config file; without it, the embedded default plan.
    #[arg(long, value_name = "FILE", env = "WARMGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The public listener's address, such as 0.0.0.0:8080. Without it,
    /// a `PORT` variable means 0.0.0.0:$PORT.
    #[arg(long, value_name = "ADDR", env = "WARMGATE_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// The admin listener's address; keep it on loopback. The operator's
    /// commands connect to it (0.0.0.0 means loopback).
    #[arg(
        long,
        value_name = "ADDR",
        env = "WARMGATE_ADMIN_LISTEN",
        global = true
    )]
    admin_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validates a config file and prints the plan it describes, with the
    /// flags and variables applied as the server would apply them (`PORT`
    /// included), so the listeners shown are the ones it would bind.
    CheckConfig {
        /// The TOML config file to check; without it, the one the server
        /// would read: `--config`, then `WARMGATE_CONFIG`, then the
        /// embedded default.
        file: Option<PathBuf>,
    },
    /// Shows why the gate is or is not ready, and since when: the state,
    /// the transition that led to it, and each check's status, kind, last
    /// result and consecutive failures. Exits 0 when ready or degraded, 1
    /// otherwise, 2 when the admin listener cannot be asked.
    Status {
        /// Print the admin listener's verbose snapshot as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Sets a signal check through the admin listener. Exits 0 once it is
    /// applied, 1 when the server refuses it (its message is shown), 2 when
    /// the admin listener cannot be asked.
    Signal {
        /// The signal check's name.
        name: String,
        #[command(flatten)]
        value: SignalValue,
        /// Why it is not ready; shown as the check's last result.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// A lease, such as 30s: unless set again within it, the signal
        /// turns not ready on its own.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Starts draining, as SIGTERM does.
    Drain,
    /// Shows the latest state transitions, oldest first: when, from and
    /// to, how long the previous state lasted, and the cause.
    History {
        /// Print the admin listener's history document as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// `--ready` or `--not-ready`: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SignalValue {
    /// Set the signal ready.
    #[arg(long)]
    pub(crate) ready: bool,
    /// Set the signal not ready.
    #[arg(long)]
    pub(crate) not_ready: bool,
}

/// The variable a platform sets to the port the container must serve on.
const PORT_VARIABLE: &str = "PORT";

impl RunArgs {
    /// The same arguments with `file`, when given, as the config file (for
    /// `check-config FILE`, whose file beats `--config` and
    /// `WARMGATE_CONFIG`).
    pub(crate) fn with_config(self, file: Option<PathBuf>) -> RunArgs {
        RunArgs {
            config: file.or(self.config),
            ..self
        }
    }

    /// The config file the server would read, or `None` for the embedded
    /// default.
    pub(crate) fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    /// The config file (or the embedded default) with flag and environment
    /// overrides applied, `PORT` read from the process environment.
    ///
    /// # Errors
    /// A config file error ([`warmgate_config::ConfigError`]), a `PORT` that
    /// is not a port number from 1 to 65535, or an admin listener moved off
    /// loopback without a token.
    pub(crate) fn load_config(&self) -> anyhow::Result<Config> {
        self.load_config_with(std::env::var(PORT_VARIABLE).ok().as_deref())
    }

    /// [`RunArgs::load_config`] with `PORT`'s value given (`None` or empty
    /// when it is unset).
    fn load_config_with(&self, port: Option<&str>) -> anyhow::Result<Config> {
        let config = self.overridden_config(port)?;
        // Checked again: the flag may have moved the listener off loopback.
        config.check_admin_exposure()?;
        Ok(config)
    }

    /// What the operator's commands need: the admin listener's address
    /// and tokens, from the same file, flag and variable as the server's,
    /// read leniently ([`AdminAccess`]): the rest of the file, and the
    /// server's secrets, are the server's business.
    ///
    /// # Errors
    /// A file that cannot be read, is not TOML, or whose `admin_listen` is
    /// not an address ([`warmgate_config::ConfigError`]).
    pub(crate) fn load_admin_access(&self) -> anyhow::Result<AdminAccess> {
        let mut access = match &self.config {
            Some(path) => AdminAccess::from_file(path)?,
            None => AdminAccess::embedded_default(),
        };
        if let Some(admin_listen) = self.admin_listen {
            access.admin_listen = admin_listen;
        }
        Ok(access)
    }

    /// The file (or the embedded default) with the flags and `port`
    /// applied.
    fn overridden_config(&self, port: Option<&str>) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::embedded_default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        } else if let Some(port) = port.map(str::trim).filter(|port| !port.is_empty()) {
            config.listen = port_listen(port)?;
        }
        if let Some(admin_listen) = self.admin_listen {
            config.admin_listen = admin_listen;
        }
        Ok(config)
    }
}

/// The address `PORT` asks for: every IPv4 interface, on that port.
fn port_listen(port: &str) -> anyhow::Result<SocketAddr> {
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .with_context(|| {
            format!(
                "{PORT_VARIABLE}: invalid value {port:?}, expected a port number from 1 to 65535 (it means listening on 0.0.0.0:$PORT; --listen or WARMGATE_LISTEN overrides it)"
            )
        })?;
    Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
}

#[cfg(test)]
mod tests;
