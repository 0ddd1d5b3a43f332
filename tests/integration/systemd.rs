//! systemd's `Type=notify`, without systemd: the test stands in for the
//! service manager with a datagram socket of its own, starts the real
//! program with `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) naming it, and reads
//! the `sd_notify` messages from warming to the exit. Without
//! `NOTIFY_SOCKET` nothing is attempted. The unit file under
//! `deploy/systemd/` is checked against its example config.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::sync::mpsc;
use warmgate_devservers::ScratchDir;
use warmgate_tests::{Check, Gateway, Plan, scratch_dir, within};

/// A watchdog of one second: the program then ticks every 500 ms, and
/// extends a timeout by three ticks.
const WATCHDOG_USEC: &str = "1000000";
const EXTEND: &str = "EXTEND_TIMEOUT_USEC=1500000";

/// The service manager's end: a bound datagram socket whose messages a
/// task reads as they come (so the sender never waits on a full queue),
/// and every message seen so far.
struct ServiceManager {
    path: PathBuf,
    datagrams_rx: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    _dir: ScratchDir,
}

impl ServiceManager {
    fn bind() -> Self {
        let dir = scratch_dir();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let (datagrams_tx, datagrams_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buffer = vec![0; 64 * 1024];
            while let Ok(n) = socket.recv(&mut buffer).await {
                let datagram = String::from_utf8_lossy(&buffer[..n]).into_owned();
                if datagrams_tx.send(datagram).is_err() {
                    break;
                }
            }
        });
        Self {
            path,
            datagrams_rx,
            seen: Vec::new(),
            _dir: dir,
        }
    }

    fn socket(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Waits for the next message that `accept` takes, keeping every one
    /// on the way.
    async fn until(&mut self, what: &str, accept: impl Fn(&str) -> bool) -> String {
        within(what, async {
            loop {
                let datagram = self.datagrams_rx.recv().await.unwrap();
                self.seen.push(datagram.clone());
                if accept(&datagram) {
                    return datagram;
                }
            }
        })
        .await
    }

    /// Waits for the next heartbeat.
    async fn heartbeat(&mut self, what: &str) -> String {
        self.until(what, |datagram| datagram.starts_with("WATCHDOG=1\n"))
            .await
    }

    /// Waits for the next message with a `STATUS=` line.
    async fn status(&mut self, what: &str) -> String {
        self.until(what, |datagram| datagram.contains("STATUS="))
            .await
    }

    /// How many messages so far hold the line `line`.
    fn count(&self, line: &str) -> usize {
        self.seen
            .iter()
            .filter(|datagram| datagram.lines().any(|seen| seen == line))
            .count()
    }
}

#[tokio::test]
async fn the_service_manager_hears_warming_ready_every_transition_heartbeats_and_the_drain() {
    let mut manager = ServiceManager::bind();
    let mut gateway = Gateway::builder()
        .config(
            Plan::new()
                .gate(|gate| gate.set("shutdown_delay", "1s"))
                .phase(
                    "services",
                    [Check::signal("app").set("failure_threshold", 1)],
                ),
        )
        .env("NOTIFY_SOCKET", manager.socket())
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .spawn()
        .await;
    // Warming: the state, then heartbeats that pet the watchdog and extend
    // the start timeout. No READY=1 before the signal.
    let first = manager.status("the first status").await;
    assert_eq!(
        first,
        format!("STATUS=starting: waiting for app\n{EXTEND}\n")
    );
    assert_eq!(manager.seen.len(), 1, "{:?}", manager.seen);
    for _ in 0..2 {
        let beat = manager.heartbeat("a heartbeat while warming").await;
        assert_eq!(beat, format!("WATCHDOG=1\n{EXTEND}\n"));
    }
    assert_eq!(manager.count("READY=1"), 0, "{:?}", manager.seen);

    // Ready: READY=1 with its status, then heartbeats without extensions.
    gateway.set_signal("app", true).await;
    let ready = manager.status("READY=1").await;
    assert_eq!(ready, "READY=1\nSTATUS=ready: check `app` passed\n");
    let beat = manager.heartbeat("a heartbeat while ready").await;
    assert_eq!(beat, "WATCHDOG=1\n");

    // A flip: one status per transition, and READY=1 only the first time.
    gateway.set_signal("app", false).await;
    let not_ready = manager.status("not_ready").await;
    assert_eq!(
        not_ready,
        "STATUS=not_ready: check `app` failed 1 time(s) in a row: set by a test\n"
    );
    gateway.set_signal("app", true).await;
    let ready_again = manager.status("ready again").await;
    assert_eq!(ready_again, "STATUS=ready: check `app` passed\n");

    // SIGTERM: STOPPING=1 with the draining status, and heartbeats that
    // extend the stop timeout until the exit.
    gateway.terminate();
    let stopping = manager.status("STOPPING=1").await;
    assert_eq!(
        stopping,
        format!("STOPPING=1\nSTATUS=draining: drain requested\n{EXTEND}\n")
    );
    let beat = manager.heartbeat("a heartbeat while draining").await;
    assert_eq!(beat, format!("WATCHDOG=1\n{EXTEND}\n"));
    assert!(gateway.exit_status().await.success());

    let statuses: Vec<&str> = manager
        .seen
        .iter()
        .flat_map(|datagram| datagram.lines())
        .filter_map(|line| line.strip_prefix("STATUS="))
        .map(|status| status.split(':').next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["starting", "ready", "not_ready", "ready", "draining"]
    );
    assert_eq!(manager.count("READY=1"), 1, "{:?}", manager.seen);
    assert_eq!(manager.count("STOPPING=1"), 1, "{:?}", manager.seen);
    // Every message is a heartbeat or carries a status.
    for datagram in &manager.seen {
        assert!(
            datagram.starts_with("WATCHDOG=1\n") || datagram.contains("STATUS="),
            "{datagram:?}"
        );
    }
    // The log, read to its end once the process has exited.
    let log = gateway.log();
    assert!(log.contains("notifying the service manager"), "{log}");
    assert!(!log.contains("cannot notify"), "{log}");
}

#[tokio::test]
async fn without_notify_socket_nothing_is_attempted() {
    // An empty NOTIFY_SOCKET counts as none, as an unset one does; the
    // watchdog alone asks for nothing.
    let mut gateway = Gateway::builder()
        .config(Plan::app_signal())
        .env("NOTIFY_SOCKET", "")
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway.terminate();
    assert!(gateway.exit_status().await.success());
    let log = gateway.log();
    assert!(!log.contains("service manager"), "{log}");
    assert!(!log.contains("NOTIFY_SOCKET"), "{log}");
}

/// The shipped unit and its example config: the program accepts the
/// config, and the unit's timeouts are tied to it as its comments say.
#[tokio::test]
async fn the_shipped_unit_fits_its_example_config() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let config_path = dir.join("warmgate.toml");
    let output = within(
        "check-config",
        tokio::process::Command::new(warmgate_tests::program())
            .arg("check-config")
            .arg(&config_path)
            .output(),
    )
    .await
    .unwrap();
    let described = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{described}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let unit = std::fs::read_to_string(dir.join("warmgate.service")).unwrap();
    let setting = |key: &str| -> &str {
        let prefix = format!("{key}=");
        unit.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("the unit has no {key}="))
    };
    assert_eq!(setting("Type"), "notify");
    assert_eq!(setting("NotifyAccess"), "main");
    assert_eq!(setting("KillSignal"), "SIGTERM");
    assert_eq!(
        setting("ExecStart"),
        "/usr/local/bin/warmgate --config /etc/warmgate/warmgate.toml"
    );
    // `check-config` prints every effective value, defaults included.
    let config_value = |key: &str| -> Duration {
        let prefix = format!("  {key} = ");
        let value = described
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("check-config printed no {key}: {described}"));
        seconds(value.split(' ').next().unwrap())
    };
    let startup_deadline = config_value("startup_deadline");
    let shutdown_budget = config_value("shutdown_budget");
    assert!(seconds(setting("TimeoutStartSec")) > startup_deadline);
    assert!(seconds(setting("TimeoutStopSec")) > shutdown_budget);
    // Twice the engine's one-second heartbeat at least.
    assert!(seconds(setting("WatchdogSec")) >= Duration::from_secs(2));
}

/// A whole number of seconds or minutes ("150s", "2m"), as the unit and
/// the config spell them.
fn seconds(text: &str) -> Duration {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap());
    let number: u64 = number.parse().unwrap();
    match unit {
        "s" => Duration::from_secs(number),
        "m" | "min" => Duration::from_secs(number * 60),
        other => panic!("unexpected unit {other:?} in {text:?}"),
    }
}
