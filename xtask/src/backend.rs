//! `cargo xtask backend`: the stand-in upstream, `tests/backend/app.py` (a
//! FastAPI chat service on uvicorn, like the Cloud Run backend warmgate was
//! built for), installed into its own virtualenv and run in the foreground.
//!
//! The virtualenv lives in `target/backend-venv` and holds exactly the
//! packages pinned in `tests/backend/requirements.txt`. [`install`] makes it
//! once and again only when that file changes: the venv keeps a copy of the
//! requirements it was built from, and a venv whose copy differs is thrown
//! away and built anew, so a dropped pin does not linger. `cargo xtask ci`
//! installs it before the tests, which start the backend themselves
//! (`warmgate_tests::backend`); this module does not run tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use warmgate_devservers::stand_in_backend;

use crate::command::{self, workspace_root};
use crate::server::http_request;

/// The port `cargo xtask backend` serves on unless told otherwise
/// (uvicorn's own default).
const DEFAULT_PORT: u16 = 8000;

/// The startup delay in seconds unless told otherwise: the app's own
/// default.
const DEFAULT_STARTUP_DELAY_SECONDS: &str = "2";

/// How long the backend may take past its startup delay to answer
/// `/healthz` (the interpreter's start and the imports take about a second).
const START_MARGIN: Duration = Duration::from_secs(30);

/// What `cargo xtask backend` is asked for.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub(crate) struct BackendArgs {
    /// The port on 127.0.0.1 to serve on
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT)]
    pub(crate) port: u16,
    /// How long the app takes to start, in seconds (its STARTUP_DELAY), such
    /// as 2 or 0.5
    #[arg(
        long,
        value_name = "S",
        default_value = DEFAULT_STARTUP_DELAY_SECONDS,
        value_parser = crate::seconds
    )]
    pub(crate) startup_delay: Duration,
    /// Only install the virtualenv (what the tests need), then exit
    #[arg(long)]
    pub(crate) install_only: bool,
}

pub(crate) fn run(args: &BackendArgs) -> anyhow::Result<()> {
    let &BackendArgs {
        port,
        startup_delay,
        install_only,
    } = args;
    let python = install()?;
    if install_only {
        println!("backend: installed; its Python is {}", python.display());
        return Ok(());
    }
    let mut child = spawn(port, startup_delay)?;
    wait_until_healthy(&mut child, port, startup_delay)?;
    println!(
        "backend: serving http://127.0.0.1:{port} (WebSockets on ws://127.0.0.1:{port}/ws); Ctrl-C stops it"
    );
    let status = child.wait().context("cannot wait for the backend")?;
    // uvicorn shuts down cleanly on SIGINT and SIGTERM and then dies of
    // that signal again, so an exit by signal is how it is stopped.
    if status.code().is_some_and(|code| code != 0) {
        bail!("the backend exited with {status}");
    }
    println!("backend: stopped ({status})");
    Ok(())
}

/// The virtualenv's folder; its Python runs the backend.
pub(crate) fn venv_dir() -> PathBuf {
    stand_in_backend::venv_dir(&workspace_root())
}

fn requirements_path() -> PathBuf {
    stand_in_backend::requirements(&workspace_root())
}

/// Makes sure the virtualenv holds the pinned packages, building it when it
/// is missing or was built from other requirements; returns its Python.
/// When it is up to date this only reads two small files.
pub(crate) fn install() -> anyhow::Result<PathBuf> {
    install_venv(&venv_dir(), &requirements_path())
}

/// Makes sure the virtualenv at `venv` holds exactly the packages pinned in
/// `requirements_path`, building it anew when it is missing or was built
/// from other requirements; returns its Python. The backend's and
/// `cargo xtask deploy-check`'s tools are installed this way.
pub(crate) fn install_venv(venv: &Path, requirements_path: &Path) -> anyhow::Result<PathBuf> {
    let requirements = std::fs::read_to_string(requirements_path)
        .with_context(|| format!("cannot read {}", requirements_path.display()))?;
    let python = stand_in_backend::venv_python(venv);
    let marker = venv.join(stand_in_backend::INSTALLED_REQUIREMENTS);
    let installed = std::fs::read_to_string(&marker).ok();
    if python.is_file() && installed.as_deref() == Some(requirements.as_str()) {
        return Ok(python);
    }
    if venv.exists() {
        println!(
            "{} was built from other requirements; building it anew",
            venv.display()
        );
        std::fs::remove_dir_all(venv)
            .with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    let venv_arg = path_arg(venv)?;
    command::run("python3", &["-m", "venv", venv_arg]).with_context(|| {
        format!(
            "cannot create the virtualenv {}; it needs Python 3.11 with its venv module \
             (Debian package python3-venv)",
            venv.display()
        )
    })?;
    // Every dependency is pinned in the file, so pip installs exactly those
    // (--no-deps) and `pip check` fails the install when one is missing or
    // two disagree, instead of pip quietly adding an unpinned version.
    let python_arg = path_arg(&python)?;
    command::run(
        python_arg,
        &[
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-deps",
            "--require-virtualenv",
            "-r",
            path_arg(requirements_path)?,
        ],
    )?;
    command::run(
        python_arg,
        &["-m", "pip", "check", "--disable-pip-version-check"],
    )
    .with_context(|| {
        format!(
            "{} does not pin every dependency consistently",
            requirements_path.display()
        )
    })?;
    // Written last: an install cut short is redone next time.
    std::fs::write(&marker, &requirements)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(python)
}

fn path_arg(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

/// The command that runs the backend on `127.0.0.1:port` with
/// `startup_delay`, installing it first when needed. Its output goes where
/// the caller sends it (by default, this process's).
pub(crate) fn command(port: u16, startup_delay: Duration) -> anyhow::Result<Command> {
    let python = install()?;
    Ok(stand_in_backend::command(
        &python,
        &workspace_root(),
        port,
        startup_delay,
    ))
}

/// Starts the backend on `127.0.0.1:port` (installing it first when
/// needed) and returns at once, while it is still starting: its port
/// refuses connections until `startup_delay` has passed. Its output is this
/// process's. Killing the child stops it.
pub(crate) fn spawn(port: u16, startup_delay: Duration) -> anyhow::Result<Child> {
    let mut command = command(port, startup_delay)?;
    println!("backend: starting on 127.0.0.1:{port}, ready in {startup_delay:?}");
    command.spawn().context("cannot start the backend")
}

/// Polls `GET /healthz` until it answers 200, failing early when the
/// backend exits, and after `startup_delay` and a margin. The backend is
/// another process that tells no one it is ready except by serving, hence
/// the polling.
pub(crate) fn wait_until_healthy(
    child: &mut Child,
    port: u16,
    startup_delay: Duration,
) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let patience = startup_delay + START_MARGIN;
    let started = Instant::now();
    loop {
        let answer = http_request(addr, "GET", "/healthz", None);
        if matches!(answer, Ok((200, _))) {
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("cannot ask whether it runs")? {
            bail!("the backend exited with {status} before it served on {addr}");
        }
        if started.elapsed() > patience {
            let last = match answer {
                Ok((status, body)) => format!("it last answered {status}: {body}"),
                Err(error) => format!("the last attempt failed: {error:#}"),
            };
            bail!("GET http://{addr}/healthz did not answer 200 within {patience:?}; {last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
