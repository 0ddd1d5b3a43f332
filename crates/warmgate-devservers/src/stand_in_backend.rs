//! The stand-in upstream that proxy mode is tested against:
//! `tests/backend/app.py`, FastAPI on uvicorn, in a virtualenv under the
//! target directory. Where the app, its pinned requirements and its
//! virtualenv live, how a virtualenv records what it was built from, and
//! the command that starts the app, written once for xtask (which installs
//! and runs it: `cargo xtask backend`, `dev --upstream`, `ci`) and for the
//! tests (which run it). Nothing here installs or spawns anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The file in a virtualenv that holds a copy of the requirements it was
/// built from: a virtualenv whose copy differs from the requirements file
/// is stale.
pub const INSTALLED_REQUIREMENTS: &str = "warmgate-requirements.txt";

/// The environment variable that tells the app how long to refuse
/// connections before it serves, in seconds (`2`, `0.5`).
pub const STARTUP_DELAY_VARIABLE: &str = "BACKEND_STARTUP_DELAY";

/// The app's folder: `tests/backend` under the workspace root.
pub fn app_dir(workspace_root: &Path) -> PathBuf {
    workspace_root.join("tests").join("backend")
}

/// The pinned requirements, `tests/backend/requirements.txt`.
pub fn requirements(workspace_root: &Path) -> PathBuf {
    app_dir(workspace_root).join("requirements.txt")
}

/// The virtualenv's folder: `backend-venv` in the target directory.
pub fn venv_dir(workspace_root: &Path) -> PathBuf {
    crate::target_dir(workspace_root).join("backend-venv")
}

/// A virtualenv's Python.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The command that runs the app with `python` on `127.0.0.1:port`,
/// refusing connections for `startup_delay` first. Its working directory is
/// the workspace root; where its output goes is the caller's choice.
pub fn command(
    python: &Path,
    workspace_root: &Path,
    port: u16,
    startup_delay: Duration,
) -> Command {
    let mut command = Command::new(python);
    command
        .args(["-m", "uvicorn", "app:app", "--app-dir"])
        .arg(app_dir(workspace_root))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        // The implementation the Cloud Run service runs.
        .args(["--ws", "websockets"])
        .env(
            STARTUP_DELAY_VARIABLE,
            startup_delay.as_secs_f64().to_string(),
        )
        // Each log line as it is written, for the tests that read them.
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(workspace_root);
    command
}
