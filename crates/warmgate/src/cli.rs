//! Command-line arguments and environment overrides.
//!
//! Precedence, highest first: a flag, its environment variable, the config
//! file, the built-in default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use warmgate_config::{Config, ConfigError};

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
    #[arg(long, value_name = "FILE", env = "WARMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// The public listener's address, such as 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR", env = "WARMGATE_LISTEN")]
    listen: Option<SocketAddr>,
    /// The admin listener's address; keep it on loopback.
    #[arg(long, value_name = "ADDR", env = "WARMGATE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validates a config file and prints the plan it describes.
    CheckConfig {
        /// The TOML config file to check.
        file: PathBuf,
    },
}

impl RunArgs {
    /// The config file (or the embedded default) with flag and environment
    /// overrides applied.
    pub(crate) fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::embedded_default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(admin_listen) = self.admin_listen {
            config.admin_listen = admin_listen;
        }
        // Checked again: the flag may have moved the listener off loopback.
        config.check_admin_exposure()?;
        Ok(config)
    }
}
