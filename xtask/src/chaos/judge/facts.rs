//! What the chaos checks read, digested once from the run: the state
//! changes matched with the fault timeline, the churn attempts counted by
//! window and by whether they ended as they should, and each probed path
//! judged against the moment warmgate stopped listening.

use std::collections::BTreeMap;

use warmgate_loadgen::report::{
    AttemptOutcome, AttemptRecord, Credential, PathProbes, ProbeAnswer, ProbeRecord, StateRecord,
};

use super::super::{Marks, Run};
use super::{EXIT_SLACK_MS, EXPECTED, Expected, LISTED_PROBLEMS, PROBE_LIMIT_MS, WINDOWS, since};

/// The run, digested once for every check and the report.
pub(super) struct Facts<'a> {
    /// When the load was under way: the zero of the report's times.
    pub(super) start: f64,
    /// The state changes seen on the event stream; the first is the state
    /// at the start.
    pub(super) changes: Vec<&'a StateRecord>,
    /// Each expected change, matched with what was seen.
    pub(super) expectations: Vec<Expectation<'a>>,
    pub(super) breaks: usize,
    pub(super) attempts: AttemptTally,
    /// The two probed paths, judged.
    pub(super) probes: [PathWindow<'a>; 2],
    pub(super) listening: Listening,
}

impl<'a> Facts<'a> {
    pub(super) fn of(run: &'a Run) -> Facts<'a> {
        let load = &run.load;
        let marks = &run.marks;
        let start = marks.at("load_joined").unwrap_or(load.started_unix_ms);
        let listening = Listening {
            stopped_ms: run.stopped_listening_ms,
            sigterm_ms: marks.at("sigterm"),
            exit_ms: marks.at("exited").unwrap_or(f64::INFINITY),
        };
        let changes = state_changes(&load.timeline.events);
        let expectations = expectations(&changes, marks);
        let attempts = AttemptTally::of(&load.attempt_list, marks, &listening, start);
        // Strict until warmgate stopped listening; a closed port after that
        // is the end of the drain, not a slow probe. Without the log line
        // nothing is excused.
        let cutoff = listening.stopped_ms.unwrap_or(listening.exit_ms);
        let draining_seen_ms = changes
            .iter()
            .find(|change| change.state == "draining")
            .map_or(f64::INFINITY, |change| change.at_ms);
        let window = |path, probes: &'a PathProbes, wanted, wanted_from| PathWindow {
            path,
            wanted,
            window: ProbeWindow::judge(
                &probes.all,
                cutoff,
                listening.sigterm_ms,
                wanted,
                wanted_from,
            ),
            probes,
        };
        let paths = &load.probes.paths;
        Facts {
            start,
            changes,
            expectations,
            breaks: load.timeline.breaks.len(),
            attempts,
            probes: [
                window("/livez", &paths.livez, 200, f64::NEG_INFINITY),
                window("/readyz", &paths.readyz, 503, draining_seen_ms),
            ],
            listening,
        }
    }
}

/// The snapshots in `seq` order (a reconnect repeats one), reduced to the
/// changes of state; the first is the state at the start.
fn state_changes(events: &[StateRecord]) -> Vec<&StateRecord> {
    let mut by_seq: BTreeMap<u64, &StateRecord> = BTreeMap::new();
    for event in events {
        by_seq.entry(event.seq).or_insert(event);
    }
    let mut changes: Vec<&StateRecord> = Vec::new();
    for event in by_seq.into_values() {
        if changes.last().is_some_and(|last| last.state == event.state) {
            continue;
        }
        changes.push(event);
    }
    changes
}

/// One expected change and what was seen in its place.
pub(super) struct Expectation<'a> {
    pub(super) expected: &'static Expected,
    pub(super) observed: Option<&'a StateRecord>,
    /// When its fault was injected.
    pub(super) after: Option<f64>,
    pub(super) matched: bool,
}

fn expectations<'a>(changes: &[&'a StateRecord], marks: &Marks) -> Vec<Expectation<'a>> {
    EXPECTED
        .iter()
        .enumerate()
        .map(|(index, expected)| {
            let observed = changes.get(index + 1).copied();
            let after = marks.at(expected.after);
            let before = marks.at(expected.before).map(|before| {
                if expected.before == "exited" {
                    before + EXIT_SLACK_MS
                } else {
                    before
                }
            });
            let matched = match (observed, after, before) {
                (Some(change), Some(after), Some(before)) => {
                    change.state == expected.state
                        && change.at_ms >= after
                        && change.at_ms <= before
                        && expected.names.is_none_or(|(list, name)| {
                            let names = if list == "pending" {
                                &change.pending
                            } else {
                                &change.degraded
                            };
                            names.iter().any(|item| item == name)
                        })
                }
                _ => false,
            };
            Expectation {
                expected,
                observed,
                after,
                matched,
            }
        })
        .collect()
}

/// When warmgate's first listener closed: the smallest `unix_ms` of the
/// `stopped listening` lines in its log (text or JSON), if there is one.
pub(crate) fn stopped_listening_ms(log: &str) -> Option<f64> {
    log.lines()
        .filter(|line| line.contains("stopped listening"))
        .filter_map(|line| {
            let (_, rest) = line.split_once("unix_ms")?;
            let digits: String = rest
                .trim_start_matches(['=', '"', ':', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<f64>().ok()
        })
        .reduce(f64::min)
}

/// SIGTERM, the moment warmgate stopped listening (from its log) and the
/// moment its exit was seen, in wall time.
pub(super) struct Listening {
    pub(super) stopped_ms: Option<f64>,
    pub(super) sigterm_ms: Option<f64>,
    /// Infinite when no exit was seen.
    pub(super) exit_ms: f64,
}

impl Listening {
    pub(super) fn text(&self) -> String {
        match (self.stopped_ms, self.sigterm_ms) {
            (Some(stopped), Some(sigterm)) => format!(
                "warmgate stopped listening {:.0} ms after SIGTERM{}",
                stopped - sigterm,
                if self.exit_ms.is_finite() {
                    format!(
                        ", {:.0} ms before its exit was seen",
                        self.exit_ms - stopped
                    )
                } else {
                    String::new()
                }
            ),
            (Some(_), None) => "warmgate stopped listening before any SIGTERM".to_owned(),
            (None, _) => "warmgate's log has no `stopped listening` line".to_owned(),
        }
    }
}

/// The churn attempts, counted the ways the checks and the report need.
#[derive(Debug, Default)]
pub(super) struct AttemptTally {
    /// Attempts in the list.
    pub(super) listed: usize,
    /// Attempts that started before warmgate stopped listening.
    pub(super) judged: u64,
    /// Attempts that started later, refused by a closed port.
    pub(super) after_exit: u64,
    /// Judged attempts by window (an index into [`WINDOWS`]) and class.
    pub(super) by_window: BTreeMap<usize, BTreeMap<String, u64>>,
    /// Attempts that ended otherwise than they should have, by credential
    /// and outcome.
    pub(super) problems: BTreeMap<String, u64>,
    /// The first few of those, described.
    pub(super) problem_samples: Vec<String>,
    pub(super) unauthorised: u64,
    pub(super) unauthorised_refused: u64,
    pub(super) unauthorised_admitted: u64,
    /// `unavailable` with the reason `draining`.
    pub(super) draining_refusals: u64,
    /// `unavailable` not followed by close 1013.
    pub(super) unavailable_not_1013: u64,
}

impl AttemptTally {
    pub(super) fn of(
        attempts: &[AttemptRecord],
        marks: &Marks,
        listening: &Listening,
        start: f64,
    ) -> AttemptTally {
        let mut tally = AttemptTally {
            listed: attempts.len(),
            ..AttemptTally::default()
        };
        for attempt in attempts {
            let outcome = &attempt.outcome;
            let started = attempt.started_ms;
            // Once warmgate has stopped listening, a refused connection is
            // the server gone (the exit is noticed by polling, a little
            // later). Until then every connect must be accepted.
            let listener_closed = matches!(outcome, AttemptOutcome::NoConnection { .. })
                && listening
                    .stopped_ms
                    .is_some_and(|stopped| started >= stopped);
            if started >= listening.exit_ms || listener_closed {
                tally.after_exit += 1;
                continue;
            }
            tally.judged += 1;
            let window = WINDOWS
                .iter()
                .position(|(_, from, to)| {
                    marks.at(from).is_some_and(|from| started >= from)
                        && marks.at(to).is_none_or(|to| started < to)
                })
                .unwrap_or(0);
            *tally
                .by_window
                .entry(window)
                .or_default()
                .entry(class(outcome))
                .or_default() += 1;
            let admitted = matches!(outcome, AttemptOutcome::Admitted { .. });
            let unavailable_1013 = matches!(
                outcome,
                AttemptOutcome::Unavailable {
                    close_code: Some(1013),
                    ..
                }
            );
            let fine = if attempt.credential == Credential::Good {
                admitted || unavailable_1013
            } else {
                tally.unauthorised += 1;
                tally.unauthorised_admitted += u64::from(admitted);
                let refused = matches!(outcome, AttemptOutcome::Refused { status: 401, .. });
                tally.unauthorised_refused += u64::from(refused);
                refused
            };
            if let AttemptOutcome::Unavailable { reason, .. } = outcome {
                tally.draining_refusals += u64::from(reason == "draining");
                tally.unavailable_not_1013 += u64::from(!unavailable_1013);
            }
            if !fine {
                let credential = attempt.credential.as_str();
                let label = outcome.label();
                *tally
                    .problems
                    .entry(format!("{credential} → {label}"))
                    .or_default() += 1;
                if tally.problem_samples.len() < LISTED_PROBLEMS {
                    tally.problem_samples.push(format!(
                        "{credential} at {} → {label} after {:.0} ms{}",
                        since(start, started),
                        attempt.ended_ms - started,
                        detail(outcome).map_or_else(String::new, |detail| format!(" ({detail})"))
                    ));
                }
            }
        }
        tally
    }
}

/// An outcome's column in the attempts table: `unavailable:REASON`,
/// `http_STATUS` (without the error), or the label.
fn class(outcome: &AttemptOutcome) -> String {
    match outcome {
        AttemptOutcome::Refused { status, .. } => format!("http_{status}"),
        _ => outcome.label(),
    }
}

/// What an outcome's label does not say.
fn detail(outcome: &AttemptOutcome) -> Option<String> {
    match outcome {
        AttemptOutcome::Unavailable {
            retry_after_ms,
            close_code,
            ..
        } => Some(format!(
            "close code {}, retry after {}",
            close_code.map_or_else(|| "none".to_owned(), |code| code.to_string()),
            retry_after_ms.map_or_else(|| "no hint".to_owned(), |ms| format!("{ms} ms"))
        )),
        AttemptOutcome::NoConnection { why } | AttemptOutcome::Silent { why } => Some(why.clone()),
        AttemptOutcome::Admitted { .. } | AttemptOutcome::Refused { .. } => None,
    }
}

/// One path's probes, judged against the moment warmgate stopped
/// listening (`cutoff`): before it every probe must be answered within
/// [`PROBE_LIMIT_MS`]; from SIGTERM until it, `wanted` is the only status
/// (once `draining` has been published, for `/readyz`: `wanted_from`).
#[derive(Debug, Default, PartialEq)]
pub(super) struct ProbeWindow {
    /// Probes started before the cutoff.
    pub(super) judged: u64,
    /// Of those, answered over the limit: `(at_ms, latency_ms)`.
    pub(super) slow: Vec<(f64, f64)>,
    /// Of those, not answered: `(at_ms, error)`.
    pub(super) unanswered: Vec<(f64, String)>,
    /// Probes started at or after the cutoff (a closed port is expected).
    pub(super) after_cutoff: u64,
    /// Probes started between SIGTERM and the cutoff.
    pub(super) draining: u64,
    /// Of those, any other answer than the wanted status, or none:
    /// `(at_ms, what)`.
    pub(super) draining_wrong: Vec<(f64, String)>,
}

impl ProbeWindow {
    pub(super) fn judge(
        all: &[ProbeRecord],
        cutoff: f64,
        sigterm: Option<f64>,
        wanted: u16,
        wanted_from: f64,
    ) -> ProbeWindow {
        let mut window = ProbeWindow::default();
        for probe in all {
            let at = probe.system_ms;
            if at >= cutoff {
                window.after_cutoff += 1;
                continue;
            }
            window.judged += 1;
            match &probe.answer {
                ProbeAnswer::Status(_) if probe.latency_ms > PROBE_LIMIT_MS => {
                    window.slow.push((at, probe.latency_ms));
                }
                ProbeAnswer::Status(_) => {}
                ProbeAnswer::Error(error) => window.unanswered.push((at, error.clone())),
            }
            if sigterm.is_some_and(|sigterm| at >= sigterm) {
                window.draining += 1;
                let wrong = match &probe.answer {
                    ProbeAnswer::Error(error) => Some(error.clone()),
                    ProbeAnswer::Status(status) if *status != wanted && at >= wanted_from => {
                        Some(format!("status {status}"))
                    }
                    ProbeAnswer::Status(_) => None,
                };
                if let Some(what) = wrong {
                    window.draining_wrong.push((at, what));
                }
            }
        }
        window
    }
}

/// One probed path: its figures from the load generator and its window.
pub(super) struct PathWindow<'a> {
    pub(super) path: &'static str,
    /// The status wanted while draining.
    pub(super) wanted: u16,
    pub(super) probes: &'a PathProbes,
    pub(super) window: ProbeWindow,
}
