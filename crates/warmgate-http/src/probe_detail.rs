//! The probes in kube-apiserver's conventions: `?verbose`, `?exclude=` and
//! one probe per check.
//!
//! Both listeners serve the same routes (`/livez`, `/readyz`, `/startupz`,
//! `/livez/{check}`, `/readyz/{check}`); what differs is how much a line
//! says, the listener's [`Disclosure`]. Without `verbose` or `exclude`,
//! `/livez` and `/readyz` answer the JSON of [`crate::public`], unchanged.
//!
//! The verdict without excluded checks is [`Snapshot::state_without`], the
//! machine's own rule; nothing here decides readiness. `/livez` has one
//! check, `engine`: the readiness engine's heartbeat.
//!
//! Format (text/plain, as kube-apiserver's health endpoints,
//! <https://kubernetes.io/docs/reference/using-api/health-checks/>):
//!
//! ```text
//! [+]database ok
//! [-]redis failed: reason withheld (optional)
//! [+]app excluded: ok
//! readyz check passed
//! ```

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::percent_decode_str;
use warmgate_core::{CheckStatus, GateState, Snapshot};
use warmgate_engine::ReadinessHandle;

use crate::public::{livez_json, readyz_json, startupz_json};

/// How much a listener's probes say about each check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disclosure {
    /// The verdict only: no check names in `?verbose`, and `/readyz/{check}`
    /// answers 404 (the public listener with `readiness_detail = false`).
    VerdictOnly,
    /// Check names and statuses; a failure's reason is withheld (the public
    /// listener).
    Names,
    /// Check names, statuses and each failure's reason (the admin listener,
    /// whose verbose snapshot already carries the error text).
    Reasons,
}

/// The probe routes for a listener that discloses `disclosure`.
pub(crate) fn probe_routes(handle: ReadinessHandle, disclosure: Disclosure) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/livez/{check}", get(livez_check))
        .route("/readyz", get(readyz))
        .route("/readyz/{check}", get(readyz_check))
        .route("/startupz", get(startupz))
        .with_state((handle, disclosure))
}

type ProbeState = State<(ReadinessHandle, Disclosure)>;

/// The check `/livez` reports: the engine's heartbeat.
const ENGINE_CHECK: &str = "engine";

/// What a probe's query asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ProbeQuery {
    /// `verbose` was given (with any value, or none).
    pub(crate) verbose: bool,
    /// Every name of every `exclude`, in order; `exclude=a,b` names two.
    pub(crate) exclude: Vec<String>,
}

impl ProbeQuery {
    /// Reads `verbose` and every `exclude=NAME` of a query string; other
    /// parameters are ignored, as kube-apiserver does.
    pub(crate) fn parse(query: Option<&str>) -> Self {
        let mut parsed = ProbeQuery::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match decode(key).as_str() {
                "verbose" => parsed.verbose = true,
                "exclude" => parsed.exclude.extend(
                    decode(value)
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
        parsed
    }

    /// True when the plain JSON answer is wanted.
    fn is_plain(&self) -> bool {
        !self.verbose && self.exclude.is_empty()
    }

    fn excludes(&self, name: &str) -> bool {
        self.exclude.iter().any(|excluded| excluded == name)
    }
}

/// A query component, `+` as a space and percent-escapes decoded.
fn decode(component: &str) -> String {
    percent_decode_str(&component.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The text kube-apiserver puts where a public listener withholds a reason.
const REASON_WITHHELD: &str = "reason withheld";

/// A `text/plain` answer, marked not to be sniffed as anything else.
fn text(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn status_for(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// kube-apiserver's warning for excluded names that are no check:
/// `warn: some health checks cannot be excluded: no matches for "a","b"`.
fn warn_of_unknown_exclusions(
    body: &mut String,
    query: &ProbeQuery,
    is_check: impl Fn(&str) -> bool,
) {
    let unknown: Vec<String> = query
        .exclude
        .iter()
        .filter(|name| !is_check(name))
        .map(|name| format!("{name:?}"))
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(
            body,
            "warn: some health checks cannot be excluded: no matches for {}",
            unknown.join(",")
        );
    }
}

/// The last line: `readyz check passed` or `livez check failed`.
fn end_with_verdict(body: &mut String, probe: &str, passed: bool) {
    let verdict = if passed { "passed" } else { "failed" };
    let _ = writeln!(body, "{probe} check {verdict}");
}

// === /readyz ===

async fn readyz(State((handle, disclosure)): ProbeState, RawQuery(query): RawQuery) -> Response {
    let query = ProbeQuery::parse(query.as_deref());
    if query.is_plain() {
        return readyz_json(&handle);
    }
    let snapshot = handle.current();
    let reasons = Reasons::of(&handle, disclosure);
    let (ready, body) = readyz_report(&snapshot, &query, disclosure, &reasons);
    text(status_for(ready), body)
}

/// The verdict of `/readyz` under `query`, and its text: the check lines
/// when `verbose`, then `readyz check passed` or `readyz check failed`.
pub(crate) fn readyz_report(
    snapshot: &Snapshot,
    query: &ProbeQuery,
    disclosure: Disclosure,
    reasons: &Reasons,
) -> (bool, String) {
    let ready = snapshot
        .state_without(|name| query.excludes(name))
        .admits_traffic();
    let mut body = String::new();
    if query.verbose && disclosure != Disclosure::VerdictOnly {
        for check in &snapshot.checks {
            let name = &check.name;
            if query.excludes(name) {
                let _ = writeln!(body, "[+]{name} excluded: ok");
                continue;
            }
            match check.status {
                CheckStatus::Passing => {
                    let _ = writeln!(body, "[+]{name} ok");
                }
                status => {
                    let reason = match status {
                        CheckStatus::Unknown => "no result yet".to_owned(),
                        _ => reasons.of_check(name),
                    };
                    let optional = if check.required { "" } else { " (optional)" };
                    let _ = writeln!(body, "[-]{name} failed: {reason}{optional}");
                }
            }
        }
        // kube-apiserver's readyz fails its `shutdown` check once it is
        // shutting down; draining is not a check here, so it cannot be
        // excluded.
        if snapshot.state == GateState::Draining {
            body.push_str("[-]shutdown failed: draining\n");
        }
    }
    if disclosure != Disclosure::VerdictOnly {
        warn_of_unknown_exclusions(&mut body, query, |name| snapshot.check(name).is_some());
    }
    end_with_verdict(&mut body, "readyz", ready);
    (ready, body)
}

/// `GET /readyz/{check}`: 200 `ok` while the check passes, 503 `failed:
/// REASON` otherwise, 404 for a name that is no check (and for every name
/// where the listener shows the verdict only).
async fn readyz_check(
    State((handle, disclosure)): ProbeState,
    Path(name): Path<String>,
) -> Response {
    if disclosure == Disclosure::VerdictOnly {
        return text(
            StatusCode::NOT_FOUND,
            "per-check probes are turned off on this listener ([routes] readiness_detail = false)\n"
                .to_owned(),
        );
    }
    let snapshot = handle.current();
    let Some(check) = snapshot.check(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no check named {name:?}; GET /readyz?verbose lists the checks\n"),
        );
    };
    match check.status {
        CheckStatus::Passing => text(StatusCode::OK, "ok\n".to_owned()),
        CheckStatus::Unknown => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "failed: no result yet\n".to_owned(),
        ),
        CheckStatus::Failing => {
            let reason = Reasons::of(&handle, disclosure).of_check(&name);
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("failed: {reason}\n"),
            )
        }
    }
}

// === /livez ===

async fn livez(State((handle, disclosure)): ProbeState, RawQuery(query): RawQuery) -> Response {
    let query = ProbeQuery::parse(query.as_deref());
    if query.is_plain() {
        return livez_json(&handle);
    }
    let alive = handle.is_alive();
    let excluded = query.excludes(ENGINE_CHECK);
    let mut body = String::new();
    if query.verbose {
        if excluded {
            let _ = writeln!(body, "[+]{ENGINE_CHECK} excluded: ok");
        } else if alive {
            let _ = writeln!(body, "[+]{ENGINE_CHECK} ok");
        } else {
            let reason = engine_reason(&handle, disclosure);
            let _ = writeln!(body, "[-]{ENGINE_CHECK} failed: {reason}");
        }
    }
    warn_of_unknown_exclusions(&mut body, &query, |name| name == ENGINE_CHECK);
    let passed = alive || excluded;
    end_with_verdict(&mut body, "livez", passed);
    text(status_for(passed), body)
}

/// `GET /livez/{check}`: the one check is `engine`.
async fn livez_check(
    State((handle, disclosure)): ProbeState,
    Path(name): Path<String>,
) -> Response {
    if name != ENGINE_CHECK {
        return text(
            StatusCode::NOT_FOUND,
            format!("no liveness check named {name:?}; the one check is {ENGINE_CHECK:?}\n"),
        );
    }
    if handle.is_alive() {
        text(StatusCode::OK, "ok\n".to_owned())
    } else {
        let reason = engine_reason(&handle, disclosure);
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("failed: {reason}\n"),
        )
    }
}

/// Why the engine check fails, as far as the listener says.
fn engine_reason(handle: &ReadinessHandle, disclosure: Disclosure) -> String {
    match disclosure {
        Disclosure::Reasons => format!(
            "the readiness engine has not beaten its heartbeat for {} ms",
            handle.heartbeat_age().as_millis()
        ),
        Disclosure::Names | Disclosure::VerdictOnly => REASON_WITHHELD.to_owned(),
    }
}

async fn startupz(State((handle, _)): ProbeState) -> Response {
    startupz_json(&handle)
}

// === impl Reasons ===

/// The reasons a listener gives for failing checks: withheld, or the last
/// error of each from the verbose snapshot.
#[derive(Debug)]
pub(crate) enum Reasons {
    Withheld,
    Shown(std::sync::Arc<warmgate_core::VerboseSnapshot>),
}

impl Reasons {
    fn of(handle: &ReadinessHandle, disclosure: Disclosure) -> Self {
        match disclosure {
            Disclosure::Reasons => Reasons::Shown(handle.verbose()),
            Disclosure::Names | Disclosure::VerdictOnly => Reasons::Withheld,
        }
    }

    /// The reason the failing check `name` fails.
    fn of_check(&self, name: &str) -> String {
        let Reasons::Shown(verbose) = self else {
            return REASON_WITHHELD.to_owned();
        };
        let details = verbose
            .checks
            .iter()
            .find(|check| check.view.name == name)
            .map(|check| &check.details);
        match details {
            Some(details) => match &details.last_error {
                Some(error) => error.clone(),
                // Failing, though the latest attempt passed: recovering,
                // short of its success threshold.
                None => format!(
                    "recovering: {} consecutive success(es), short of the success threshold",
                    details.consecutive_successes
                ),
            },
            None => "no detail recorded".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
