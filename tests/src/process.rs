//! The warmgate program as a process: where the build put it, and running
//! it to see it refuse to start.
//!
//! A program that starts and serves is a [`crate::Gateway`]
//! (`gateway.rs`); signals go through `warmgate_devservers::process`.

use std::path::PathBuf;

use crate::within;

/// The path of the warmgate program built for these tests.
///
/// Cargo builds this package's binaries before its integration tests, next
/// to the `deps` folder that holds the test executable. Nextest also says
/// where it is through `CARGO_BIN_EXE_warmgate-e2e` at run time.
pub fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_warmgate-e2e") {
        return PathBuf::from(path);
    }
    let test_executable = std::env::current_exe().unwrap();
    let profile_dir = test_executable.parent().unwrap().parent().unwrap();
    let program = profile_dir.join(format!("warmgate-e2e{}", std::env::consts::EXE_SUFFIX));
    assert!(program.exists(), "{} was not built", program.display());
    program
}

/// Runs the program with `args` and `env`, expecting it to refuse to
/// start: it must exit unsuccessfully without serving (nothing on stdout).
/// Returns what it wrote to stderr.
pub async fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(program());
    command.args(args).envs(env.iter().copied());
    let output = within("warmgate to refuse to start", command.output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "it must not have served: {stderr}"
    );
    stderr
}
