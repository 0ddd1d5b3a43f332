//! systemd's `Type=notify`: telling the service manager how startup and
//! shutdown go, with `sd_notify` datagrams to the socket `NOTIFY_SOCKET`
//! names (the `sd-notify` crate sends them).
//!
//! [`SystemdNotifier`] is an engine observer, so everything is sent from
//! the engine task, as it happens, in order:
//! - at start: `STATUS=` for `starting`;
//! - on every transition: one `STATUS=` line (the new state and why); with
//!   the first `ready` (or `degraded`: startup is complete either way),
//!   `READY=1`, once; with `draining`, `STOPPING=1`;
//! - on every heartbeat: `WATCHDOG=1` when the service manager enabled its
//!   watchdog (`WatchdogSec=`, which it passes as `WATCHDOG_USEC`);
//! - while `starting` (that is, before the startup deadline, which turns
//!   the state `failed`) and while `draining`: `EXTEND_TIMEOUT_USEC` of
//!   [`EXTEND_HEARTBEATS`] heartbeats, with the start and the drain's first
//!   message and again on every heartbeat. The start or stop timeout then
//!   waits for a gate that is still warming or draining, yet fires a few
//!   heartbeats after the engine stops turning.
//!
//! It does not unset `NOTIFY_SOCKET`: warmgate starts no child process that
//! could inherit it (and changing the environment once threads run is not
//! sound). It words what the engine reports and decides nothing about
//! readiness. The unit file is `deploy/systemd/warmgate.service`.

use std::time::Duration;

use sd_notify::NotifyState;
use warmgate_core::{GateState, Snapshot, Transition};
use warmgate_engine::EngineObserver;

/// How many heartbeats one `EXTEND_TIMEOUT_USEC` covers: enough that a late
/// tick does not let the timeout fire, few enough that a stuck engine does.
pub(crate) const EXTEND_HEARTBEATS: u32 = 3;

/// The shortest heartbeat a short watchdog may ask for.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// The longest `STATUS=` line, in characters; `systemctl status` shows one
/// line.
const MAX_STATUS_CHARS: usize = 200;

/// Sends the service manager the engine's transitions and heartbeats.
///
/// The watchdog: `WATCHDOG=1` goes out on every engine heartbeat, which
/// ticks every second, so `WatchdogSec=` must be at least twice that
/// (`WatchdogSec=10s` leaves room for a slow tick). Given a shorter
/// watchdog, warmgate ticks at half of it instead (see
/// [`SystemdNotifier::heartbeat_interval`]). The heartbeat also feeds
/// `/livez`: a stuck engine fails both.
///
/// A notification that cannot be sent is logged as a warning, once until
/// one is sent again; the engine goes on either way. The datagram is sent
/// on the engine task: the service manager reads its socket at once, and
/// a manager that stopped reading would stall the engine just as it would
/// stop hearing from it.
#[derive(Debug)]
pub(crate) struct SystemdNotifier {
    /// The watchdog the service manager enabled; with one, every heartbeat
    /// sends `WATCHDOG=1`.
    watchdog: Option<Duration>,
    heartbeat_interval: Duration,
    ready_sent: bool,
    /// True after a failed notification until one succeeds.
    failing: bool,
}

impl SystemdNotifier {
    /// A notifier when the service manager asked for notifications
    /// (`NOTIFY_SOCKET` set and not empty), with the watchdog it enabled,
    /// if any; `None` otherwise, and then nothing is ever sent.
    /// `heartbeat_interval` is the engine's usual one.
    pub(crate) fn from_env(heartbeat_interval: Duration) -> Option<Self> {
        let socket = std::env::var_os("NOTIFY_SOCKET")?;
        if socket.is_empty() {
            return None;
        }
        // `WATCHDOG_USEC=0` enables nothing.
        let watchdog = sd_notify::watchdog_enabled().filter(|usec| !usec.is_zero());
        Some(Self::new(heartbeat_interval, watchdog))
    }

    fn new(heartbeat_interval: Duration, watchdog: Option<Duration>) -> Self {
        let heartbeat_interval = match watchdog {
            Some(watchdog) => heartbeat_interval.min(watchdog / 2).max(MIN_HEARTBEAT),
            None => heartbeat_interval,
        };
        Self {
            watchdog,
            heartbeat_interval,
            ready_sent: false,
            failing: false,
        }
    }

    /// The engine's heartbeat interval with this notifier: the usual one,
    /// or half the watchdog's when that is shorter.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// The watchdog the service manager enabled.
    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `EXTEND_TIMEOUT_USEC`'s value while `state` is one the service
    /// manager times: starting up or stopping.
    fn extension(&self, state: GateState) -> Option<u32> {
        match state {
            GateState::Starting | GateState::Draining => {
                let extension = self.heartbeat_interval * EXTEND_HEARTBEATS;
                Some(u32::try_from(extension.as_micros()).unwrap_or(u32::MAX))
            }
            GateState::Ready | GateState::Degraded | GateState::NotReady | GateState::Failed => {
                None
            }
        }
    }

    /// The messages for a new state: `READY=1` the first time startup is
    /// complete, `STOPPING=1` at the drain, `STATUS=` always.
    fn tell(&mut self, snapshot: &Snapshot, status: &str) {
        let mut states = Vec::with_capacity(4);
        if snapshot.ever_ready && !self.ready_sent {
            self.ready_sent = true;
            states.push(NotifyState::Ready);
        }
        if snapshot.state == GateState::Draining {
            states.push(NotifyState::Stopping);
        }
        states.push(NotifyState::Status(status));
        if let Some(usec) = self.extension(snapshot.state) {
            states.push(NotifyState::ExtendTimeoutUsec(usec));
        }
        self.send(&states);
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        match sd_notify::notify(states) {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("notifying the service manager works again");
            }
            Ok(()) => {}
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(
                    %error,
                    "cannot notify the service manager through NOTIFY_SOCKET; the gate goes on \
                     unchanged, and its watchdog may restart it; logged again only after a \
                     notification has gone through"
                );
            }
            Err(_) => {}
        }
    }
}

impl EngineObserver for SystemdNotifier {
    fn started(&mut self, snapshot: &Snapshot) {
        self.tell(snapshot, &status_line(snapshot, ""));
    }

    fn transition(&mut self, transition: &Transition, snapshot: &Snapshot) {
        self.tell(snapshot, &status_line(snapshot, &transition.reason));
    }

    fn heartbeat(&mut self, snapshot: &Snapshot) {
        let mut states = Vec::with_capacity(2);
        if self.watchdog.is_some() {
            states.push(NotifyState::Watchdog);
        }
        if let Some(usec) = self.extension(snapshot.state) {
            states.push(NotifyState::ExtendTimeoutUsec(usec));
        }
        if !states.is_empty() {
            self.send(&states);
        }
    }
}

/// One line for `STATUS=`: the state, then why (the transition's reason),
/// or what it waits for; control characters as spaces, and at most
/// [`MAX_STATUS_CHARS`] characters.
fn status_line(snapshot: &Snapshot, reason: &str) -> String {
    let state = snapshot.state.as_str();
    let line = if !reason.is_empty() {
        format!("{state}: {reason}")
    } else if !snapshot.pending.is_empty() {
        format!("{state}: waiting for {}", snapshot.pending.join(", "))
    } else {
        state.to_owned()
    };
    let mut line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some((cut, _)) = line.char_indices().nth(MAX_STATUS_CHARS) {
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests;
