//! No retry storms, against a real PostgreSQL: before the first ready a
//! failing check is retried fast; after it, a failing check backs off to
//! about one attempt per interval, counted both by warmgate's own metrics
//! and by PostgreSQL's log of the connections it received.

use std::time::{Duration, Instant};

use warmgate_devservers::Postgres;
use warmgate_devservers::process::{Signal, send_signal};
use warmgate_tests::{Check, Gateway, Plan, blocking, new_postgres, within};

/// A required `database` check on `url` every `interval`, beside the
/// required signal `app` of the probe tests' plan.
fn plan(url: &str, interval: &str) -> Plan {
    crate::probes::plan([Check::postgres("database", url).set("interval", interval)])
}

/// The `database` check's attempts so far, from the admin `/metrics`: the
/// count of its latency histogram, one sample per attempt.
async fn attempts(gateway: &Gateway) -> u64 {
    let metrics = gateway.admin_get("/metrics").await.text;
    let series = r#"warmgate_check_duration_seconds_count{check="database"} "#;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn before_the_first_ready_a_failing_check_is_retried_fast() {
    // Prepared but not started: every attempt is refused at once.
    let postgres = new_postgres(false).await;
    let gateway = Gateway::builder()
        .config(plan(&postgres.url(), "500ms"))
        .spawn()
        .await;
    let started = Instant::now();
    // Waits on the attempts themselves: 20 retries capped at 100 ms take at
    // most 2 s; backing off at the interval's pace they would take 10 s.
    within("20 fast retries", async {
        while attempts(&gateway).await < 20 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "20 attempts took {took:?}");
    assert_eq!(gateway.get("/readiness").await.json["state"], "starting");
}

/// Appends `line` to the cluster's `file` (in its data directory), keeping
/// the file's owner.
fn append_to(postgres: &Postgres, file: &str, line: &str) {
    use std::io::Write as _;
    let path = postgres.directory().join("data").join(file);
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(config, "\n{line}").unwrap();
}

/// Puts `line` first in the cluster's `pg_hba.conf`, where the first match
/// wins.
fn prepend_hba(postgres: &Postgres, line: &str) {
    let path = postgres.directory().join("data").join("pg_hba.conf");
    let rules = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{line}\n{rules}")).unwrap();
}

/// The server processes of role `app`'s sessions, by their process title
/// (`postgres: app app 127.0.0.1(PORT) idle`).
fn app_sessions() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let title = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&title)
                .starts_with("postgres: app app ")
                .then_some(pid)
        })
        .collect()
}

/// Lines of the server log written since `from` bytes that contain `what`.
fn log_lines_since(postgres: &Postgres, from: usize, what: &str) -> usize {
    let log = std::fs::read(postgres.log_file()).unwrap();
    String::from_utf8_lossy(&log[from.min(log.len())..])
        .lines()
        .filter(|line| line.contains(what))
        .count()
}

fn log_length(postgres: &Postgres) -> usize {
    std::fs::metadata(postgres.log_file()).map_or(0, |meta| meta.len() as usize)
}

const REJECTED: &str = "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"app\"";

#[tokio::test]
async fn after_the_first_ready_a_refused_database_gets_about_one_login_per_interval() {
    let postgres = new_postgres(false).await;
    // Every connection the server receives is logged, refused ones too.
    append_to(&postgres, "postgresql.conf", "log_connections = on");
    let postgres = blocking("PostgreSQL to start", move || {
        postgres.start().unwrap();
        postgres
    })
    .await;
    let gateway = Gateway::builder()
        .config(plan(&postgres.url(), "500ms"))
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    let mut events = gateway.events().await;
    events.until(|s| s["state"] == "ready").await;

    // The server stays up but refuses every login of `app`: the rule first
    // in pg_hba.conf, a reload (SIGHUP to the postmaster), then the probe's
    // kept session is ended, so its next attempt logs in again.
    prepend_hba(&postgres, "host all app 127.0.0.1/32 reject");
    send_signal(postgres.pid().unwrap(), Signal::Hangup).unwrap();
    let sessions = app_sessions();
    assert!(!sessions.is_empty(), "no session of `app` to end");
    for session in sessions {
        send_signal(session, Signal::Terminate).unwrap();
    }
    events.until(|s| s["state"] == "not_ready").await;

    // The window: the check has failed three times in a row at its
    // interval and now backs off. Attempts come at random; this is the
    // stretch they are counted over, not a wait for something to happen.
    const WINDOW: Duration = Duration::from_secs(10);
    let log_start = log_length(&postgres);
    let attempts_start = attempts(&gateway).await;
    tokio::time::sleep(WINDOW).await;
    let attempts_end = attempts(&gateway).await;
    let n_attempts = attempts_end - attempts_start;
    let n_received = log_lines_since(&postgres, log_start, "connection received: host=127.0.0.1");
    let n_rejected = log_lines_since(&postgres, log_start, REJECTED);
    eprintln!(
        "over {WINDOW:?} after not_ready: {n_attempts} attempts (metrics), \
         {n_received} connections received and {n_rejected} rejected (PostgreSQL's log)"
    );

    // The rule: waits drawn uniformly up to backoff_cap (twice the 500 ms
    // interval, so 500 ms on average) once the doubling from 10 ms has
    // reached it, about 0.6 s and 5 attempts in. That is about 24 attempts
    // in 10 s (a standard deviation of about 3); 100 ms retries would make
    // 100 to 200.
    let interval = Duration::from_millis(500);
    let at_most = WINDOW.as_millis() / interval.as_millis() + 15;
    assert!(
        (8..=at_most as u64).contains(&n_attempts),
        "{n_attempts} attempts in {WINDOW:?}, expected at most {at_most}"
    );
    // PostgreSQL saw the same attempts (give or take one straddling an
    // edge of the window), each refused.
    for n_logged in [n_received, n_rejected] {
        assert!(
            (n_logged as u64).abs_diff(n_attempts) <= 2,
            "PostgreSQL logged {n_logged}, the metrics counted {n_attempts}"
        );
    }
    let verbose = gateway.admin_get("/readiness").await.json;
    let database = &verbose["checks"][0];
    assert!(
        database["last_error"]
            .as_str()
            .unwrap()
            .contains("pg_hba.conf rejects connection"),
        "{database}"
    );
}
