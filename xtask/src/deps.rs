//! `cargo xtask deps up|down|status`: a throwaway PostgreSQL cluster and a
//! `redis-server` on free loopback ports, left running in the background for
//! running warmgate by hand.
//!
//! Everything lives under `devdeps/` in the target directory (`target/`
//! unless `CARGO_TARGET_DIR` says otherwise, as for every other output):
//!
//! ```text
//! postgres/  the cluster, its log and settings
//! redis/     the server's log, pid file and settings
//! env        WARMGATE_DATABASE_URL=… and WARMGATE_REDIS_URL=…, for sourcing
//! state      what `up` started (directories, ports, pids), for `down` and `status`
//! ```
//!
//! Starting, stopping and finding the servers is `warmgate-devservers`'
//! job; this module decides where they live and keeps the record.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use warmgate_devservers::{Postgres, Redis, generate_password};

use crate::command;

/// The URLs of running development dependencies, as `deps up` leaves them.
#[derive(Debug)]
pub(crate) struct DevDeps {
    /// `postgres://app:PASSWORD@127.0.0.1:PORT/app`.
    pub(crate) database_url: String,
    /// `redis://:PASSWORD@127.0.0.1:PORT/`.
    pub(crate) redis_url: String,
    /// The env file that holds both URLs.
    pub(crate) env_file: PathBuf,
}

/// `cargo xtask deps up|down|status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum DepsCommand {
    /// Start a throwaway PostgreSQL and redis-server on free loopback ports
    ///
    /// They live under target/devdeps; their URLs are printed and written to
    /// target/devdeps/env. They keep running until `deps down`.
    Up,
    /// Stop them and remove target/devdeps
    Down,
    /// Show whether each one runs, its port and its URL (password masked)
    Status,
}

pub(crate) fn run(subcommand: DepsCommand) -> anyhow::Result<()> {
    match subcommand {
        DepsCommand::Up => {
            let deps = deps_up()?;
            println!("WARMGATE_DATABASE_URL={}", deps.database_url);
            println!("WARMGATE_REDIS_URL={}", deps.redis_url);
            println!(
                "load them into a shell with: set -a; . {}; set +a",
                shown(&deps.env_file)
            );
            Ok(())
        }
        DepsCommand::Down => deps_down(),
        DepsCommand::Status => deps_status(),
    }
}

/// Starts PostgreSQL and Redis under `target/devdeps` unless both are
/// already up, writes the env and state files, and returns once both answer.
/// The servers keep running after this process exits.
pub(crate) fn deps_up() -> anyhow::Result<DevDeps> {
    let layout = Layout::new();
    if layout.state_file.exists() {
        let postgres = Postgres::open_existing(&layout.postgres_directory);
        let redis = Redis::open_existing(&layout.redis_directory);
        if let (Ok(postgres), Ok(redis)) = (&postgres, &redis)
            && postgres.is_accepting_connections()
            && redis.is_accepting_connections()
        {
            println!("deps: PostgreSQL and redis-server are already up");
            return layout.write_env_file(postgres, redis);
        }
        println!("deps: the last `deps up` is no longer fully running; starting afresh");
    }
    // Leftovers of an earlier run (stopped, half started, or with a lost
    // state file) are stopped and removed, so that every `up` starts clean.
    layout.stop_and_remove(false)?;
    fs::create_dir_all(&layout.root)
        .with_context(|| format!("cannot create `{}`", shown(&layout.root)))?;

    println!(
        "deps: starting PostgreSQL in {}",
        shown(&layout.postgres_directory)
    );
    let postgres =
        Postgres::start_new(&layout.postgres_directory).context("cannot start PostgreSQL")?;
    println!(
        "deps: starting redis-server in {}",
        shown(&layout.redis_directory)
    );
    // If Redis fails, dropping `postgres` on the way out stops it again.
    let redis = Redis::start_new_detached(&layout.redis_directory, Some(&generate_password()))
        .context("cannot start redis-server")?;
    layout.write_state_file(&postgres, &redis)?;
    let deps = layout.write_env_file(&postgres, &redis)?;
    println!(
        "deps: PostgreSQL (pid {}) on 127.0.0.1:{} and redis-server (pid {}) on 127.0.0.1:{} are up",
        postgres.pid().map_or("?".to_owned(), |pid| pid.to_string()),
        postgres.port(),
        redis.pid().map_or("?".to_owned(), |pid| pid.to_string()),
        redis.port(),
    );
    postgres.leave_running();
    redis.leave_running();
    Ok(deps)
}

/// Stops what `deps up` started and removes `target/devdeps`.
fn deps_down() -> anyhow::Result<()> {
    let layout = Layout::new();
    if !layout.root.exists() {
        println!(
            "deps: nothing to stop: {} does not exist (start them with `cargo xtask deps up`)",
            shown(&layout.root)
        );
        return Ok(());
    }
    layout.stop_and_remove(true)
}

/// Shows whether each server runs, with its port, pid and URL (password
/// masked).
fn deps_status() -> anyhow::Result<()> {
    let layout = Layout::new();
    if !layout.state_file.exists() {
        println!("PostgreSQL    not running");
        println!("redis-server  not running");
        println!(
            "(no {}; start them with `cargo xtask deps up`)",
            shown(&layout.state_file)
        );
        return Ok(());
    }
    match Postgres::open_existing(&layout.postgres_directory) {
        Ok(postgres) => print_status(
            "PostgreSQL",
            postgres.is_accepting_connections(),
            postgres.port(),
            postgres.pid(),
            &postgres.url_with_password("***"),
        ),
        Err(error) => println!("PostgreSQL    unknown: {error}"),
    }
    match Redis::open_existing(&layout.redis_directory) {
        Ok(redis) => print_status(
            "redis-server",
            redis.is_accepting_connections(),
            redis.port(),
            redis.pid(),
            &redis.url_with_password("***"),
        ),
        Err(error) => println!("redis-server  unknown: {error}"),
    }
    println!("env file      {}", shown(&layout.env_file));
    Ok(())
}

fn print_status(server: &str, running: bool, port: u16, pid: Option<u32>, masked_url: &str) {
    let state = if running { "running" } else { "not running" };
    let pid = match pid {
        Some(pid) if running => format!("pid {pid}"),
        _ => String::new(),
    };
    println!("{server:<13} {state:<11}  port {port:<5}  {pid:<10}  {masked_url}");
}

/// Where `deps` keeps everything.
#[derive(Debug)]
struct Layout {
    root: PathBuf,
    postgres_directory: PathBuf,
    redis_directory: PathBuf,
    env_file: PathBuf,
    state_file: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let root = crate::server::target_dir().join("devdeps");
        Layout {
            postgres_directory: root.join("postgres"),
            redis_directory: root.join("redis"),
            env_file: root.join("env"),
            state_file: root.join("state"),
            root,
        }
    }

    /// Stops whichever server still runs under `target/devdeps`, then
    /// removes the directory; says what it stopped when `report` is set.
    fn stop_and_remove(&self, report: bool) -> anyhow::Result<()> {
        if self.postgres_directory.join("devserver.settings").exists() {
            let postgres = Postgres::open_existing(&self.postgres_directory)?;
            match postgres
                .pid()
                .filter(|_| postgres.is_accepting_connections())
            {
                Some(pid) => {
                    postgres.stop().context("cannot stop PostgreSQL")?;
                    println!(
                        "deps: stopped PostgreSQL (pid {pid}) on 127.0.0.1:{}",
                        postgres.port()
                    );
                }
                None if report => println!("deps: PostgreSQL was not running"),
                None => {}
            }
        }
        if self.redis_directory.join("devserver.settings").exists() {
            let mut redis = Redis::open_existing(&self.redis_directory)?;
            match redis.pid() {
                Some(pid) => {
                    redis.stop().context("cannot stop redis-server")?;
                    println!(
                        "deps: stopped redis-server (pid {pid}) on 127.0.0.1:{}",
                        redis.port()
                    );
                }
                None if report => println!("deps: redis-server was not running"),
                None => {}
            }
        }
        if self.root.exists() {
            fs::remove_dir_all(&self.root)
                .with_context(|| format!("cannot remove `{}`", shown(&self.root)))?;
            if report {
                println!("deps: removed {}", shown(&self.root));
            }
        }
        Ok(())
    }

    /// Writes the env file (readable by its owner only: it holds
    /// passwords) and returns the URLs it holds.
    fn write_env_file(&self, postgres: &Postgres, redis: &Redis) -> anyhow::Result<DevDeps> {
        let deps = DevDeps {
            database_url: postgres.url(),
            redis_url: redis.url(),
            env_file: self.env_file.clone(),
        };
        write_private_file(
            &self.env_file,
            &format!(
                "WARMGATE_DATABASE_URL={}\nWARMGATE_REDIS_URL={}\n",
                deps.database_url, deps.redis_url
            ),
        )?;
        Ok(deps)
    }

    fn write_state_file(&self, postgres: &Postgres, redis: &Redis) -> anyhow::Result<()> {
        let pid = |pid: Option<u32>| pid.map_or(String::new(), |pid| pid.to_string());
        write_private_file(
            &self.state_file,
            &format!(
                "# Written by `cargo xtask deps up`: what it started, for `deps down` and `deps status`.\n\
                 postgres_directory={}\npostgres_port={}\npostgres_pid={}\n\
                 redis_directory={}\nredis_port={}\nredis_pid={}\n",
                postgres.directory().display(),
                postgres.port(),
                pid(postgres.pid()),
                redis.directory().display(),
                redis.port(),
                pid(redis.pid()),
            ),
        )
    }
}

fn write_private_file(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write `{}`", shown(path)))
}

/// `path` relative to the workspace root when it is inside it, for shorter
/// messages.
fn shown(path: &Path) -> String {
    let root = command::workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}
