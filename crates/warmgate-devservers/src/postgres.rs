//! [`Postgres`]: a throwaway PostgreSQL cluster on a loopback port.
//!
//! The cluster lives in a directory of the caller's choosing:
//!
//! ```text
//! <directory>/data/               the cluster (initdb's PGDATA)
//! <directory>/postgres.log        the server's log, appended to by each start
//! <directory>/devserver.settings  port and passwords, for `Postgres::open_existing`
//! ```
//!
//! PostgreSQL refuses to run as root. When the caller is root, the directory
//! is handed to the `postgres` user and `initdb`, `postgres` and `pg_ctl`
//! run as that user through `runuser`.
//!
//! The server listens on `127.0.0.1` only and has no Unix socket, so clusters
//! never collide in `/var/run/postgresql` and no socket path can grow too
//! long. It trades durability for speed (`fsync = off`): it is for tests.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DevServerError;
use crate::command::{self, Progress, RunAs};
use crate::ephemeral::{free_loopback_port, generate_password};
use crate::process;
use crate::settings_file::{Settings, write_settings};

/// The name `Postgres` uses for itself in messages and settings files.
const SERVER: &str = "PostgreSQL";
const KIND: &str = "postgres";

/// How many fresh ports `start_new` tries when another process takes the
/// picked port before the server binds it.
const PORT_ATTEMPTS: usize = 3;

/// A PostgreSQL cluster on `127.0.0.1`, with scram-sha-256 authentication,
/// a superuser `postgres`, and a role `app` that owns a database `app`, each
/// with a generated password.
///
/// The port stays the same for the cluster's whole life, across
/// [`Postgres::stop`] and [`Postgres::start`].
///
/// A handle made by [`Postgres::start_new`] or
/// [`Postgres::prepare_without_starting`] stops the server at once
/// (`pg_ctl stop -m immediate`) when dropped, unless
/// [`Postgres::leave_running`] was called. A handle made by
/// [`Postgres::open_existing`] never stops it on drop. The data directory is
/// never removed.
#[derive(Debug)]
pub struct Postgres {
    directory: PathBuf,
    port: u16,
    app_password: String,
    superuser_password: String,
    programs: PostgresPrograms,
    run_as: RunAs,
    stop_on_drop: bool,
}

// === impl Postgres ===

impl Postgres {
    /// Creates a fresh cluster under `directory` (which must not already
    /// hold one), starts it on a free loopback port, and returns once it
    /// accepts connections.
    pub fn start_new(directory: &Path) -> Result<Postgres, DevServerError> {
        let mut postgres = Postgres::prepare_without_starting(directory)?;
        for attempt in 1..=PORT_ATTEMPTS {
            match postgres.start() {
                // The port was free when picked but another process took it
                // before the server bound it; a new port fixes that.
                Err(error) if error.is_port_taken() && attempt < PORT_ATTEMPTS => {
                    postgres.port = free_loopback_port()?;
                    postgres.write_port_to_config()?;
                    postgres.write_settings()?;
                }
                result => return result.map(|()| postgres),
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// Creates a fresh cluster under `directory`, with its roles, database
    /// and port, but does not start it; [`Postgres::start`] does.
    ///
    /// The port is free when picked but not held, so start the server soon.
    pub fn prepare_without_starting(directory: &Path) -> Result<Postgres, DevServerError> {
        let programs = PostgresPrograms::find()?;
        let run_as = RunAs::detect()?;
        fs::create_dir_all(directory).map_err(|source| DevServerError::Io {
            action: "create the PostgreSQL directory",
            path: directory.to_owned(),
            source,
        })?;
        let directory = fs::canonicalize(directory).map_err(|source| DevServerError::Io {
            action: "resolve the PostgreSQL directory",
            path: directory.to_owned(),
            source,
        })?;
        if let RunAs::PostgresUser { .. } = run_as {
            check_traversable_by_others(&directory)?;
        }
        let postgres = Postgres {
            directory,
            port: free_loopback_port()?,
            app_password: generate_password(),
            superuser_password: generate_password(),
            programs,
            run_as,
            stop_on_drop: true,
        };
        postgres.initdb()?;
        postgres.write_port_to_config()?;
        postgres.create_app_role_and_database()?;
        postgres.write_settings()?;
        Ok(postgres)
    }

    /// Finds the cluster that an earlier call (perhaps in another process)
    /// created under `directory`, running or not.
    ///
    /// The returned handle never stops the server on drop.
    pub fn open_existing(directory: &Path) -> Result<Postgres, DevServerError> {
        let settings = Settings::read(directory, KIND)?;
        Ok(Postgres {
            directory: directory.to_owned(),
            port: settings.get_port("port")?,
            app_password: settings.get("app_password")?.to_owned(),
            superuser_password: settings.get("superuser_password")?.to_owned(),
            programs: PostgresPrograms::find()?,
            run_as: RunAs::detect()?,
            stop_on_drop: false,
        })
    }

    /// Starts the server on its port and returns once it accepts
    /// connections.
    pub fn start(&self) -> Result<(), DevServerError> {
        if let Some(pid) = self.pid().filter(|&pid| process::is_alive(pid)) {
            return Err(DevServerError::AlreadyRunning {
                server: SERVER,
                port: self.port,
                pid,
            });
        }
        let log_file = self.log_file();
        let log_start = command::log_length(&log_file);
        let start_failed = |reason: String| DevServerError::StartFailed {
            server: SERVER,
            port: self.port,
            reason,
            log_file: log_file.clone(),
            log_tail: command::log_tail(&log_file, log_start),
        };
        let mut pg_ctl = self.run_as.command(&self.programs.pg_ctl);
        pg_ctl
            .args(["start", "--silent", "--wait", "--timeout"])
            .arg(command::READINESS_LIMIT.as_secs().to_string())
            .arg("--pgdata")
            .arg(self.data_directory())
            .arg("--log")
            .arg(&log_file)
            .current_dir(&self.directory);
        let output = command::run_unchecked(&mut pg_ctl, None, None)?;
        if !output.status.success() {
            return Err(start_failed(format!(
                "`{}` failed ({}): {}",
                command::describe(&pg_ctl, None),
                output.status,
                one_line(&command::printed(&output))
            )));
        }
        // `pg_ctl --wait` already waits for the postmaster to report that it
        // accepts connections; asking over TCP, as a client would, confirms
        // that the port and not just the process is ready.
        command::wait_until(
            command::READINESS_LIMIT,
            "it did not accept connections",
            || {
                if self.is_accepting_connections() {
                    Progress::Done
                } else {
                    Progress::NotYet
                }
            },
        )
        .map_err(start_failed)
    }

    /// Stops the server the polite way (`pg_ctl stop -m fast`: connections
    /// are closed and the server shuts down cleanly), keeping its data.
    /// Stopping a server that is not running does nothing.
    pub fn stop(&self) -> Result<(), DevServerError> {
        self.stop_with_mode("fast")
    }

    /// The URL of the `app` database as the `app` role:
    /// `postgres://app:PASSWORD@127.0.0.1:PORT/app`.
    pub fn url(&self) -> String {
        self.url_with_password(&self.app_password)
    }

    /// The URL of the `app` database as the `app` role, with `password`
    /// instead of the right one, for testing what a wrong credential does.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("postgres://app:{password}@127.0.0.1:{}/app", self.port)
    }

    /// The URL of the `postgres` database as the `postgres` superuser.
    pub fn superuser_url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.superuser_password, self.port
        )
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id while the server runs (read from its pid
    /// file, which may be stale if the server was killed).
    pub fn pid(&self) -> Option<u32> {
        command::read_pid_file(&self.data_directory().join("postmaster.pid"))
    }

    /// The directory that holds the cluster, its log and its settings.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.directory.join("postgres.log")
    }

    /// True when the server accepts connections on its port right now
    /// (`pg_isready`; whether a login would succeed is not checked).
    pub fn is_accepting_connections(&self) -> bool {
        Command::new(&self.programs.pg_isready)
            .args(["--quiet", "--host", "127.0.0.1", "--timeout", "1", "--port"])
            .arg(self.port.to_string())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Consumes the handle without stopping the server, so that it outlives
    /// this process (as `cargo xtask deps up` needs).
    pub fn leave_running(mut self) {
        self.stop_on_drop = false;
    }

    // === private ===

    fn data_directory(&self) -> PathBuf {
        self.directory.join("data")
    }

    fn stop_with_mode(&self, mode: &str) -> Result<(), DevServerError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let mut pg_ctl = self.run_as.command(&self.programs.pg_ctl);
        pg_ctl
            .args(["stop", "--silent", "--wait", "--mode", mode, "--timeout"])
            .arg(command::STOP_LIMIT.as_secs().to_string())
            .arg("--pgdata")
            .arg(self.data_directory())
            .current_dir(&self.directory);
        let output = command::run_unchecked(&mut pg_ctl, None, None)?;
        if output.status.success() || !process::is_alive(pid) {
            // A server that died without removing its pid file is stopped
            // too, whatever pg_ctl made of the stale file.
            return Ok(());
        }
        Err(DevServerError::StopFailed {
            server: SERVER,
            pid,
            port: self.port,
            reason: format!(
                "`{}` failed ({}): {}",
                command::describe(&pg_ctl, None),
                output.status,
                one_line(&command::printed(&output))
            ),
        })
    }

    /// Runs `initdb`, with the superuser's password passed in a file that
    /// exists only while `initdb` runs.
    fn initdb(&self) -> Result<(), DevServerError> {
        let password_file = self.directory.join("superuser-password");
        let io_error = |source| DevServerError::Io {
            action: "write the superuser password file",
            path: password_file.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&password_file)
            .map_err(io_error)?;
        file.write_all(self.superuser_password.as_bytes())
            .map_err(io_error)?;
        drop(file);
        let result = self.run_as.give_ownership(&self.directory).and_then(|()| {
            let mut initdb = self.run_as.command(&self.programs.initdb);
            initdb
                .arg("--pgdata")
                .arg(self.data_directory())
                .arg(format!("--pwfile={}", password_file.display()))
                // Fixed encoding and locale make every cluster the same,
                // whatever locale the caller's environment names (or lacks).
                .args([
                    "--username=postgres",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .current_dir(&self.directory);
            command::run(&mut initdb, None, None).map(drop)
        });
        let _ = fs::remove_file(&password_file);
        result
    }

    /// Appends the listening settings to `postgresql.conf`; a later block
    /// overrides an earlier one, which is how a new port replaces the old.
    fn write_port_to_config(&self) -> Result<(), DevServerError> {
        let path = self.data_directory().join("postgresql.conf");
        let block = format!(
            "\n# Added by warmgate-devservers: loopback only, no Unix socket, fast and not durable.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = ''\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 32MB\n",
            self.port
        );
        let io_error = |source| DevServerError::Io {
            action: "append to",
            path: path.clone(),
            source,
        };
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(block.as_bytes()))
            .map_err(io_error)
    }

    /// Creates the `app` role and database in single-user mode, which needs
    /// no running server, no port and no authentication.
    fn create_app_role_and_database(&self) -> Result<(), DevServerError> {
        let sql = format!(
            "CREATE ROLE app LOGIN PASSWORD '{}';\nCREATE DATABASE app OWNER app;\n",
            self.app_password
        );
        let mut single = self.run_as.command(&self.programs.postgres);
        single
            .args(["--single", "-D"])
            .arg(self.data_directory())
            .arg("postgres")
            .current_dir(&self.directory);
        let printed = command::run(&mut single, Some(&sql), Some(&self.app_password))?;
        // Single-user mode reports a failed statement on its output but
        // still exits with success.
        if printed.contains("ERROR:") || printed.contains("FATAL:") {
            return Err(DevServerError::CommandFailed {
                command: command::describe(&single, None),
                status: "a statement failed".to_owned(),
                output: command::tail(&printed.replace(&self.app_password, "***")),
            });
        }
        Ok(())
    }

    fn write_settings(&self) -> Result<(), DevServerError> {
        write_settings(
            &self.directory,
            KIND,
            &[
                ("port", &self.port.to_string()),
                ("app_password", &self.app_password),
                ("superuser_password", &self.superuser_password),
            ],
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Immediate mode skips the shutdown checkpoint: the data is
            // thrown away with the test anyway. Errors cannot be reported
            // from a drop.
            let _ = self.stop_with_mode("immediate");
        }
    }
}

/// `pg_ctl`'s few lines of complaint, joined into one.
fn one_line(printed: &str) -> String {
    printed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fails unless every directory above `directory` lets other users through,
/// since the `postgres` user must reach `directory` to use it.
fn check_traversable_by_others(directory: &Path) -> Result<(), DevServerError> {
    for ancestor in directory.ancestors().skip(1) {
        let mode = fs::metadata(ancestor)
            .map_err(|source| DevServerError::Io {
                action: "inspect",
                path: ancestor.to_owned(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(DevServerError::DirectoryNotTraversable {
                directory: ancestor.to_owned(),
                mode: mode & 0o7777,
            });
        }
    }
    Ok(())
}

// === PostgresPrograms ===

/// Where the PostgreSQL programs are.
#[derive(Debug, Clone)]
struct PostgresPrograms {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    pg_isready: PathBuf,
    postgres: PathBuf,
}

impl PostgresPrograms {
    /// Looks in the newest `/usr/lib/postgresql/<version>/bin` (where Debian
    /// installs them, off the `PATH`), then on the `PATH`.
    fn find() -> Result<PostgresPrograms, DevServerError> {
        if let Some(bin) = newest_debian_bin_directory() {
            return Ok(PostgresPrograms {
                initdb: bin.join("initdb"),
                pg_ctl: bin.join("pg_ctl"),
                pg_isready: bin.join("pg_isready"),
                postgres: bin.join("postgres"),
            });
        }
        let not_found_anywhere = |error| match error {
            DevServerError::ProgramNotFound {
                program, package, ..
            } => DevServerError::ProgramNotFound {
                program,
                searched: "under /usr/lib/postgresql/*/bin nor on PATH".to_owned(),
                package,
            },
            other => other,
        };
        Ok(PostgresPrograms {
            initdb: command::find_on_path("initdb", "postgresql").map_err(not_found_anywhere)?,
            pg_ctl: command::find_on_path("pg_ctl", "postgresql").map_err(not_found_anywhere)?,
            pg_isready: command::find_on_path("pg_isready", "postgresql-client")
                .map_err(not_found_anywhere)?,
            postgres: command::find_on_path("postgres", "postgresql")
                .map_err(not_found_anywhere)?,
        })
    }
}

/// The `bin` directory of the newest PostgreSQL under `/usr/lib/postgresql`
/// that has every program this crate runs.
fn newest_debian_bin_directory() -> Option<PathBuf> {
    let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = version_key(&entry.file_name().to_string_lossy())?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "pg_isready", "postgres"]
                .iter()
                .all(|program| bin.join(program).is_file())
                .then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// Orders `9.6` before `15` before `16`; `None` for a name that is not a
/// version.
pub(crate) fn version_key(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.split_once('.').unwrap_or((name, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}
