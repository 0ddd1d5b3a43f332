//! The `warmgate` program: reads the config, starts the engine, serves the
//! public and admin listeners, and drains on SIGTERM or SIGINT.
//!
//! It owns process concerns only (arguments, environment, logging, signals,
//! sockets); readiness rules live in `warmgate-core`, check scheduling in
//! `warmgate-engine` and the endpoints in `warmgate-http`. The program is a
//! library with a one-line `main.rs` so that the end-to-end tests can build
//! the very same program as their own binary.
//!
//! The same program is the operator's command line (`status`, `signal`,
//! `drain`, `history`: `operator`), a client of a running one's admin
//! listener.

#![forbid(unsafe_code)]

mod budget;
mod cli;
mod metrics;
mod operator;
mod serve;
mod systemd;
mod telemetry;
mod wiring;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use warmgate_config::GateConfig;

use crate::budget::ShutdownBudget;
use crate::cli::{Cli, Command};
use crate::operator::OperatorCommand;

/// Runs the program with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => {
            let run = cli.run.with_config(file);
            match run.load_config() {
                Ok(config) => {
                    print!("{}", config.describe());
                    match run.config_file() {
                        Some(file) => println!("ok: {} is valid", file.display()),
                        None => println!("ok: the embedded default config is valid"),
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Command::Status { json }) => {
            run_operator_command(&cli.run, OperatorCommand::Status { json })
        }
        Some(Command::Signal {
            name,
            value,
            reason,
            ttl,
        }) => run_operator_command(
            &cli.run,
            OperatorCommand::Signal {
                name,
                ready: value.ready,
                reason,
                ttl,
            },
        ),
        Some(Command::Drain) => run_operator_command(&cli.run, OperatorCommand::Drain),
        Some(Command::History { json }) => {
            run_operator_command(&cli.run, OperatorCommand::History { json })
        }
        None => {
            let config = match cli.run.load_config() {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return ExitCode::from(2);
                }
            };
            let budget = Arc::new(ShutdownBudget::new(config.gate.shutdown_budget));
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            // rustls needs one process-wide crypto provider before any HTTPS
            // client (the OTLP exporter, the http probes) is built.
            warmgate_outbound::install_crypto_provider();
            // Inside the runtime, which an OTLP exporter over gRPC needs.
            let telemetry = {
                let _runtime = runtime.enter();
                match telemetry::init(&config) {
                    Ok(telemetry) => telemetry,
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::from(2);
                    }
                }
            };
            // On a worker thread, not on this one: `block_on` would run the
            // accept loops here, and every new connection would cost two
            // thread wake-ups before its request is read.
            let result = runtime.block_on(async {
                tokio::spawn(serve::run(config, Arc::clone(&budget)))
                    .await
                    .unwrap_or_else(|error| Err(anyhow::anyhow!("the server task ended: {error}")))
            });
            // The drain is over: the last spans go out, in what is left of
            // the budget, while the runtime still runs (the gRPC exporter
            // sends on it); then the tasks still running stop.
            telemetry.shutdown(budget.remaining().unwrap_or(GateConfig::EXIT_RESERVE));
            runtime.shutdown_timeout(budget::RUNTIME_STOP);
            if let Some(elapsed) = budget.elapsed() {
                tracing::info!(
                    shutdown_ms = elapsed.as_millis() as u64,
                    budget_ms = budget.budget().as_millis() as u64,
                    "exiting within the shutdown budget"
                );
            }
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs an operator's command against the admin listener of the config the
/// server would use (flags, variables, file), for its address and token.
fn run_operator_command(run: &cli::RunArgs, command: OperatorCommand) -> ExitCode {
    match run.load_admin_access() {
        Ok(access) => operator::run(&access, command),
        Err(error) => {
            eprintln!(
                "error: {error:#}\n(the operator's commands read admin_listen and the admin token keys of the server's config; or pass --admin-listen ADDR without --config)"
            );
            ExitCode::from(2)
        }
    }
}
