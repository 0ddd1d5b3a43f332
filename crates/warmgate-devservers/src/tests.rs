//! Tests of the devservers crate. Most start and stop real servers; the
//! Redis ones fail with a clear message when `redis-server` is not installed.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use crate::command;
use crate::process;
use crate::redis::{answers_ping, reported_pid, resp_command};
use crate::settings_file::{Settings, write_settings};
use crate::{DevServerError, Postgres, Redis, ScratchDir, generate_password};

// === helpers ===

/// Runs `sql` through `psql` against `url` and returns its unaligned,
/// tuples-only output, or what it printed on failure.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([
            url,
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--command",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql runs (it comes with the Debian package `postgresql`)");
    let printed = command::printed(&output);
    if output.status.success() {
        Ok(printed.trim().to_owned())
    } else {
        Err(printed)
    }
}

/// Fails the calling test with a clear message when `redis-server` is
/// missing: these tests need the real server, and `cargo xtask ci` installs
/// it, so a missing one is a broken set-up, never a reason to pass.
fn redis_server_installed(test: &str) -> bool {
    if let Err(error) = command::find_on_path("redis-server", "redis-server") {
        panic!("{test}: {error} (`cargo xtask ci` installs it when run as root)");
    }
    true
}

// === PostgreSQL ===

#[test]
fn postgres_serves_the_app_database_and_rejects_a_wrong_password() {
    let scratch = ScratchDir::new("pg-serves").unwrap();
    let postgres = Postgres::start_new(&scratch.path().join("pg")).unwrap();

    assert!(postgres.is_accepting_connections());
    let url = postgres.url();
    let password = url
        .strip_prefix("postgres://app:")
        .and_then(|rest| rest.strip_suffix(&format!("@127.0.0.1:{}/app", postgres.port())))
        .unwrap_or_else(|| panic!("unexpected URL {url}"));
    assert_eq!(password.len(), 32);
    assert_eq!(
        psql(
            &postgres.url(),
            "select current_user || '@' || current_database()"
        )
        .unwrap(),
        "app@app"
    );
    assert_eq!(
        psql(
            &postgres.superuser_url(),
            "select rolsuper from pg_roles where rolname = current_user"
        )
        .unwrap(),
        "t"
    );
    let rejected = psql(&postgres.url_with_password("wrong"), "select 1").unwrap_err();
    assert!(
        rejected.contains("password authentication failed for user \"app\""),
        "{rejected}"
    );
}

#[test]
fn postgres_restarts_on_the_same_port_with_its_data() {
    let scratch = ScratchDir::new("pg-restarts").unwrap();
    let postgres = Postgres::start_new(&scratch.path().join("pg")).unwrap();
    let port = postgres.port();
    psql(
        &postgres.url(),
        "create table kept (n int); insert into kept values (42)",
    )
    .unwrap();
    let first_pid = postgres.pid().unwrap();

    let already_running = postgres.start().unwrap_err();
    assert!(
        matches!(already_running, DevServerError::AlreadyRunning { pid, .. } if pid == first_pid),
        "{already_running}"
    );

    postgres.stop().unwrap();
    assert!(!postgres.is_accepting_connections());
    assert_eq!(postgres.pid(), None);
    assert!(!process::is_alive(first_pid));
    // Stopping a stopped server is not an error.
    postgres.stop().unwrap();

    postgres.start().unwrap();
    assert_eq!(postgres.port(), port);
    assert!(postgres.is_accepting_connections());
    assert_eq!(psql(&postgres.url(), "select n from kept").unwrap(), "42");
}

#[test]
fn postgres_prepared_without_starting_runs_only_once_started() {
    let scratch = ScratchDir::new("pg-prepared").unwrap();
    let postgres = Postgres::prepare_without_starting(&scratch.path().join("pg")).unwrap();

    assert!(!postgres.is_accepting_connections());
    assert_eq!(postgres.pid(), None);
    assert!(psql(&postgres.url(), "select 1").is_err());

    postgres.start().unwrap();
    assert!(postgres.is_accepting_connections());
    assert_eq!(psql(&postgres.url(), "select 1").unwrap(), "1");
}

#[test]
fn postgres_is_stopped_by_dropping_its_creator_but_not_an_opened_handle() {
    let scratch = ScratchDir::new("pg-drop").unwrap();
    let directory = scratch.path().join("pg");
    let postgres = Postgres::start_new(&directory).unwrap();
    let pid = postgres.pid().unwrap();

    let opened = Postgres::open_existing(&directory).unwrap();
    assert_eq!(opened.port(), postgres.port());
    assert_eq!(opened.url(), postgres.url());
    assert_eq!(opened.superuser_url(), postgres.superuser_url());
    drop(opened);
    assert!(postgres.is_accepting_connections());

    drop(postgres);
    assert!(!process::is_alive(pid));
    let reopened = Postgres::open_existing(&directory).unwrap();
    assert!(!reopened.is_accepting_connections());
}

#[test]
fn postgres_left_running_is_stopped_through_an_opened_handle() {
    let scratch = ScratchDir::new("pg-left").unwrap();
    let directory = scratch.path().join("pg");
    let postgres = Postgres::start_new(&directory).unwrap();
    let pid = postgres.pid().unwrap();
    postgres.leave_running();
    assert!(process::is_alive(pid));

    let opened = Postgres::open_existing(&directory).unwrap();
    assert!(opened.is_accepting_connections());
    opened.stop().unwrap();
    assert!(!process::is_alive(pid));
    assert!(!opened.is_accepting_connections());
}

#[test]
fn postgres_refuses_a_directory_that_already_holds_a_cluster() {
    let scratch = ScratchDir::new("pg-twice").unwrap();
    let directory = scratch.path().join("pg");
    let _postgres = Postgres::prepare_without_starting(&directory).unwrap();

    let error = Postgres::prepare_without_starting(&directory).unwrap_err();
    assert!(error.to_string().contains("initdb"), "{error}");
}

#[test]
fn postgres_reports_a_taken_port_from_its_log() {
    let scratch = ScratchDir::new("pg-taken").unwrap();
    let postgres = Postgres::prepare_without_starting(&scratch.path().join("pg")).unwrap();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", postgres.port())).unwrap();

    let error = postgres.start().unwrap_err();
    assert!(error.is_port_taken(), "{error}");
    assert!(error.to_string().contains("pg_ctl"), "{error}");
    assert_eq!(postgres.pid(), None);
}

#[test]
fn postgres_as_root_names_a_directory_the_postgres_user_cannot_enter() {
    if !matches!(
        command::RunAs::detect(),
        Ok(command::RunAs::PostgresUser { .. })
    ) {
        eprintln!("postgres_as_root_…: skipped, PostgreSQL runs as the current user here");
        return;
    }
    let scratch = ScratchDir::new("pg-private").unwrap();
    let private = scratch.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();

    let error = Postgres::start_new(&private.join("pg")).unwrap_err();
    assert!(
        matches!(&error, DevServerError::DirectoryNotTraversable { directory, mode: 0o700 } if *directory == private),
        "{error}"
    );
    assert!(error.to_string().contains("chmod o+x"), "{error}");
}

// === Redis ===

#[test]
fn redis_with_a_password_answers_only_with_it_and_restarts_on_the_same_port() {
    if !redis_server_installed("redis_with_a_password_…") {
        return;
    }
    let scratch = ScratchDir::new("redis-password").unwrap();
    let mut redis = Redis::start_new(&scratch.path().join("redis"), Some("s3cret")).unwrap();
    let port = redis.port();

    assert_eq!(redis.url(), format!("redis://:s3cret@127.0.0.1:{port}/"));
    assert_eq!(
        redis.url_with_password("x"),
        format!("redis://:x@127.0.0.1:{port}/")
    );
    assert!(redis.is_accepting_connections());
    assert_eq!(reported_pid(port, Some("s3cret")), redis.pid());
    assert_eq!(reported_pid(port, Some("wrong")), None);
    assert!(!answers_ping(port, Some("wrong")));
    assert!(!answers_ping(port, None));

    let pid = redis.pid().unwrap();
    let already_running = redis.start().unwrap_err();
    assert!(matches!(
        already_running,
        DevServerError::AlreadyRunning { .. }
    ));

    redis.kill().unwrap();
    assert!(!process::is_alive(pid));
    assert!(!redis.is_accepting_connections());
    assert_eq!(redis.pid(), None);
    // Killing a dead server is not an error.
    redis.kill().unwrap();

    redis.start().unwrap();
    assert_eq!(redis.port(), port);
    assert!(redis.is_accepting_connections());

    let pid = redis.pid().unwrap();
    redis.stop().unwrap();
    assert!(!process::is_alive(pid));
    assert!(!redis.is_accepting_connections());
}

#[test]
fn redis_without_a_password_is_killed_when_dropped() {
    if !redis_server_installed("redis_without_a_password_…") {
        return;
    }
    let scratch = ScratchDir::new("redis-open").unwrap();
    let redis = Redis::start_new(&scratch.path().join("redis"), None).unwrap();
    let port = redis.port();
    let pid = redis.pid().unwrap();

    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert!(answers_ping(port, None));

    drop(redis);
    assert!(!process::is_alive(pid));
    assert!(!answers_ping(port, None));
}

#[test]
fn redis_detached_outlives_its_handle_and_is_stopped_through_an_opened_one() {
    if !redis_server_installed("redis_detached_…") {
        return;
    }
    let scratch = ScratchDir::new("redis-detached").unwrap();
    let directory = scratch.path().join("redis");
    let password = generate_password();
    let redis = Redis::start_new_detached(&directory, Some(&password)).unwrap();
    let pid = redis.pid().unwrap();
    let url = redis.url();
    redis.leave_running();
    assert!(process::is_alive(pid));

    let mut opened = Redis::open_existing(&directory).unwrap();
    assert_eq!(opened.url(), url);
    assert_eq!(opened.pid(), Some(pid));
    assert!(opened.is_accepting_connections());

    opened.stop().unwrap();
    assert!(!process::is_alive(pid));
    assert!(!opened.is_accepting_connections());

    // A detached server started again through an opened handle is detached
    // too, and that handle does not stop it on drop.
    opened.start().unwrap();
    let restarted_pid = opened.pid().unwrap();
    drop(opened);
    assert!(process::is_alive(restarted_pid));
    let mut reopened = Redis::open_existing(&directory).unwrap();
    reopened.kill().unwrap();
    assert!(!process::is_alive(restarted_pid));
}

#[test]
fn redis_detached_reports_a_taken_port_from_its_log() {
    if !redis_server_installed("redis_detached_reports_…") {
        return;
    }
    let scratch = ScratchDir::new("redis-taken").unwrap();
    let first = Redis::start_new(&scratch.path().join("first"), None).unwrap();
    // A second server whose settings name the first one's port, as if
    // another process had taken its port while it was stopped.
    let second_directory = scratch.path().join("second");
    std::fs::create_dir(&second_directory).unwrap();
    let port = first.port().to_string();
    write_settings(
        &second_directory,
        "redis",
        &[("port", &port), ("password", "")],
    )
    .unwrap();
    let mut second = Redis::open_existing(&second_directory).unwrap();

    let error = second.start().unwrap_err();
    assert!(error.is_port_taken(), "{error}");
    assert!(error.to_string().contains("it exited"), "{error}");
}

// === pieces ===

#[test]
fn a_missing_program_names_its_debian_package() {
    let error = command::find_on_path("warmgate-no-such-program", "warmgate-package").unwrap_err();
    assert_eq!(
        error.to_string(),
        "warmgate-no-such-program not found on PATH: install the Debian package `warmgate-package`"
    );
}

#[test]
fn a_failed_command_reports_its_output_with_the_secret_masked() {
    let mut shell = Command::new("sh");
    shell.args(["-c", "echo about hunter2 >&2; exit 3"]);
    let error = command::run(&mut shell, None, Some("hunter2")).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("`sh -c echo about *** >&2; exit 3` failed (exit status: 3)"),
        "{message}"
    );
    assert!(message.ends_with("about hunter2"), "{message}");
}

#[test]
fn redis_commands_are_encoded_as_resp_arrays() {
    assert_eq!(resp_command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(
        resp_command(&["AUTH", "pw"]),
        b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
    );
}

#[test]
fn a_log_tail_quotes_only_what_was_written_since_a_point() {
    let scratch = ScratchDir::new("log").unwrap();
    let log = scratch.path().join("redis.log");
    std::fs::write(&log, "111:C old run\n").unwrap();
    let since = command::log_length(&log);
    assert_eq!(command::log_tail(&log, since), "(nothing)");
    std::fs::write(&log, "111:C old run\n222:C new run\n222:M bind failed\n").unwrap();
    assert_eq!(
        command::log_tail(&log, since),
        "222:C new run\n222:M bind failed"
    );
    assert_eq!(
        command::log_tail(&scratch.path().join("absent"), 0),
        "(no log was written)"
    );
}

#[test]
fn postgres_versions_order_numerically() {
    use crate::postgres::version_key;
    assert!(version_key("9.6") < version_key("15"));
    assert!(version_key("15") < version_key("16"));
    assert_eq!(version_key("README"), None);
}

#[test]
fn settings_round_trip_and_name_what_is_missing() {
    let scratch = ScratchDir::new("settings").unwrap();
    write_settings(
        scratch.path(),
        "redis",
        &[("port", "6380"), ("password", "")],
    )
    .unwrap();
    let settings = Settings::read(scratch.path(), "redis").unwrap();
    assert_eq!(settings.get_port("port").unwrap(), 6380);
    assert_eq!(settings.get_optional("password"), None);
    let missing = settings.get("app_password").unwrap_err();
    assert!(
        missing
            .to_string()
            .ends_with("it has no `app_password` line"),
        "{missing}"
    );
    let wrong_kind = Settings::read(scratch.path(), "postgres").unwrap_err();
    assert!(
        wrong_kind
            .to_string()
            .ends_with("it describes a `redis` server, not `postgres`")
    );
    let mode = std::fs::metadata(scratch.path().join("devserver.settings"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn generated_passwords_are_long_distinct_hex() {
    let first = generate_password();
    let second = generate_password();
    assert_eq!(first.len(), 32);
    assert!(first.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_ne!(first, second);
}

#[test]
fn a_scratch_dir_is_traversable_and_removed_when_dropped() {
    let scratch = ScratchDir::new("scratch").unwrap();
    let path = scratch.path().to_owned();
    std::fs::write(path.join("file"), "x").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    drop(scratch);
    assert!(!path.exists());
}
