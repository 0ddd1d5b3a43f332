//! Clients that come and go, and what each connection attempt ended with.
//!
//! An attempt ends in one of five ways: admitted (`ready`, at once or after
//! a hold), told `unavailable` with a reason (then close 1013), refused
//! before the upgrade with an HTTP status (401 for a bad token), no
//! connection at all (nothing listens), or **silent**: the connection
//! opened, then ended or stalled without `ready` or `unavailable`. The
//! protocol promises that silence never happens.
//!
//! Churn workers make attempts one after another: an admitted client stays
//! a moment and leaves; a refused one waits as long as the server asked
//! (`retry_after_ms`) before its next attempt. With authentication on, every
//! few attempts carry a bad credential (see `tokens`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
pub(crate) use warmgate_loadgen::report::AttemptOutcome as Outcome;
use warmgate_loadgen::report::{AttemptCounts, AttemptRecord};

use crate::client::{self, Refused, Target, Ws};
use crate::clock::Clock;
use crate::tokens::{self, Credential, Tokens};

/// The pause before the next attempt when the server gave no hint.
const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// The pause after an attempt that found nothing listening.
const NO_CONNECTION_PAUSE: Duration = Duration::from_millis(100);

/// How many silent attempts are listed one by one (all are counted).
const LISTED: usize = 100;

/// One connection attempt.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) credential: Credential,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
    pub(crate) outcome: Outcome,
    /// For an admitted client: how its stay ended (`left`, or `draining`
    /// then the close code).
    pub(crate) stay: Option<String>,
}

/// What every attempt shares.
#[derive(Debug)]
pub(crate) struct AttemptSettings {
    pub(crate) target: Target,
    /// How long an attempt may go without `ready` or `unavailable` before
    /// it counts as silent: longer than the gate's `hold_timeout`.
    pub(crate) deadline: Duration,
}

/// Makes one attempt. `held` hears of the first `warming` frame. Returns
/// the admitted connection too, for the caller to use and leave.
pub(crate) async fn attempt(
    settings: &AttemptSettings,
    credential: Credential,
    token: Option<&str>,
    held: Option<&mpsc::UnboundedSender<Instant>>,
) -> (Attempt, Option<Ws>) {
    let started = Instant::now();
    let (outcome, ws) =
        match tokio::time::timeout(settings.deadline, run_attempt(settings, token, held)).await {
            Ok(result) => result,
            Err(_) => (
                Outcome::Silent {
                    why: format!(
                        "no `ready` or `unavailable` within {} s",
                        settings.deadline.as_secs()
                    ),
                },
                None,
            ),
        };
    let attempt = Attempt {
        credential,
        started,
        ended: Instant::now(),
        outcome,
        stay: None,
    };
    (attempt, ws)
}

async fn run_attempt(
    settings: &AttemptSettings,
    token: Option<&str>,
    held: Option<&mpsc::UnboundedSender<Instant>>,
) -> (Outcome, Option<Ws>) {
    let mut ws = match client::connect_as(&settings.target, token).await {
        Ok(ws) => ws,
        Err(Refused::Http { status, body }) => {
            let error = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|body| body["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "no_json_error".to_owned());
            return (Outcome::Refused { status, error }, None);
        }
        Err(Refused::NoConnection(why)) => return (Outcome::NoConnection { why }, None),
        Err(Refused::Broken(why)) => return (Outcome::Silent { why }, None),
    };
    let mut was_held = false;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                match frame["type"].as_str().unwrap_or_default() {
                    "ready" => return (Outcome::Admitted { held: was_held }, Some(ws)),
                    "warming" if !was_held => {
                        was_held = true;
                        if let Some(held) = held {
                            let _ = held.send(Instant::now());
                        }
                    }
                    "unavailable" => {
                        let reason = frame["reason"].as_str().unwrap_or("none").to_owned();
                        let retry_after_ms = frame["retry_after_ms"].as_u64();
                        let close_code = closing_code(&mut ws).await;
                        return (
                            Outcome::Unavailable {
                                reason,
                                retry_after_ms,
                                close_code,
                            },
                            None,
                        );
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|frame| u16::from(frame.code));
                return (
                    Outcome::Silent {
                        why: format!("closed ({code:?}) without `ready` or `unavailable`"),
                    },
                    None,
                );
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                return (
                    Outcome::Silent {
                        why: format!("broke off without `ready` or `unavailable`: {error}"),
                    },
                    None,
                );
            }
            None => {
                return (
                    Outcome::Silent {
                        why: "ended without `ready` or `unavailable`".to_owned(),
                    },
                    None,
                );
            }
        }
    }
}

/// The code of the close frame that follows `unavailable`.
async fn closing_code(ws: &mut Ws) -> Option<u16> {
    let wait = async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|frame| u16::from(frame.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .ok()
        .flatten()
}

/// Stays admitted for `stay`, leaving at once if the server drains; says
/// how the stay ended.
pub(crate) async fn stay_and_leave(mut ws: Ws, stay: Duration) -> String {
    let until = tokio::time::sleep(stay);
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => {
                client::leave(&mut ws).await;
                return "left".to_owned();
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(text)))
                    if serde_json::from_str::<Value>(&text).is_ok_and(|frame| frame["type"] == "draining") =>
                {
                    // The protocol asks a drained client to leave.
                    let code = client::leave(&mut ws).await;
                    return format!("told draining, left ({code:?})");
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|frame| u16::from(frame.code));
                    return format!("closed by the server ({code:?})");
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return format!("broke off: {error}"),
                None => return "ended".to_owned(),
            }
        }
    }
}

/// The pause a well-behaved client makes after `outcome`.
pub(crate) fn pause_after(outcome: &Outcome) -> Duration {
    match outcome {
        Outcome::Unavailable {
            retry_after_ms: Some(ms),
            ..
        } => Duration::from_millis(*ms),
        Outcome::Unavailable { .. } => DEFAULT_RETRY,
        Outcome::NoConnection { .. } | Outcome::Silent { .. } => NO_CONNECTION_PAUSE,
        Outcome::Admitted { .. } | Outcome::Refused { .. } => Duration::ZERO,
    }
}

/// The churn workers' plan.
#[derive(Debug)]
pub(crate) struct ChurnSettings {
    pub(crate) attempts: AttemptSettings,
    pub(crate) workers: usize,
    /// An admitted client stays between these two durations.
    pub(crate) stay: (Duration, Duration),
    /// With authentication on, one attempt in this many carries a bad
    /// credential (they take turns).
    pub(crate) unauthorised_every: usize,
}

/// Starts the workers; each returns its attempts once `stop` turns true
/// (its attempt in progress finishes first).
pub(crate) fn spawn_workers(
    settings: &Arc<ChurnSettings>,
    tokens: &Arc<Tokens>,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Vec<Attempt>>> {
    let counter = Arc::new(AtomicUsize::new(0));
    (0..settings.workers)
        .map(|worker| {
            let settings = Arc::clone(settings);
            let tokens = Arc::clone(tokens);
            let counter = Arc::clone(&counter);
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut attempts = Vec::new();
                while !*stop.borrow_and_update() {
                    let number = counter.fetch_add(1, Ordering::Relaxed);
                    let credential = credential_for(number, &settings, &tokens);
                    let token = match tokens.token(credential, &format!("churn-{worker}-{number}"))
                    {
                        Ok(token) => token,
                        Err(error) => {
                            eprintln!("churn: cannot sign a token: {error:#}");
                            break;
                        }
                    };
                    let (mut attempt, ws) =
                        attempt(&settings.attempts, credential, token.as_deref(), None).await;
                    if let Some(ws) = ws {
                        let stay = settings.stay.0
                            + (settings.stay.1.saturating_sub(settings.stay.0))
                                .mul_f64(fastrand::f64());
                        attempt.stay = Some(stay_and_leave(ws, stay).await);
                    }
                    let pause = pause_after(&attempt.outcome);
                    attempts.push(attempt);
                    if !pause.is_zero() {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            _ = stop.wait_for(|stop| *stop) => {}
                        }
                    }
                }
                attempts
            })
        })
        .collect()
}

fn credential_for(number: usize, settings: &ChurnSettings, tokens: &Tokens) -> Credential {
    if !tokens.enabled()
        || settings.unauthorised_every == 0
        || !number.is_multiple_of(settings.unauthorised_every)
    {
        return Credential::Good;
    }
    let turn = number / settings.unauthorised_every;
    tokens::UNAUTHORISED[turn % tokens::UNAUTHORISED.len()]
}

impl Attempt {
    /// The attempt as reported, with its times on the wall clock.
    pub(crate) fn record(&self, clock: Clock) -> AttemptRecord {
        AttemptRecord {
            credential: self.credential,
            started_ms: clock.unix_ms(self.started),
            ended_ms: clock.unix_ms(self.ended),
            outcome: self.outcome.clone(),
            stay: self.stay.clone(),
        }
    }
}

/// Counts by credential and outcome, and the silent attempts one by one.
pub(crate) fn summarise(attempts: &[Attempt], clock: Clock) -> AttemptCounts {
    let mut by_credential = BTreeMap::<Credential, BTreeMap<String, u64>>::new();
    for attempt in attempts {
        *by_credential
            .entry(attempt.credential)
            .or_default()
            .entry(attempt.outcome.label())
            .or_default() += 1;
    }
    let silent = attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Outcome::Silent { .. }))
        .take(LISTED)
        .map(|attempt| attempt.record(clock))
        .collect();
    AttemptCounts {
        total: attempts.len(),
        by_credential,
        silent,
    }
}
