//! Probing `/livez` and `/readyz` the way a platform does: a fresh TCP
//! connection per probe, every `interval`, each timed from the connect to
//! the end of the answer.
//!
//! The prober runs on a thread of its own with blocking sockets, so the
//! load generator's own busy runtime never delays a probe or inflates its
//! time.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use warmgate_loadgen::report::{
    FailedProbe, PathProbes, ProbeAnswer, ProbePaths, ProbeRecord, ProbeSummary, SlowProbe,
};

use crate::clock::Clock;
use crate::stats;

/// How long one probe may take before it counts as unanswered.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many slow or failed probes are listed one by one (all are counted).
const LISTED: usize = 200;

const PATHS: [&str; 2] = ["/livez", "/readyz"];

/// One probe's result.
#[derive(Debug)]
struct Probe {
    at_ms: f64,
    /// The system's wall time when the probe started, read directly rather
    /// than through the run's clock: it is compared with times that
    /// warmgate logs (when it stopped listening) from the same system clock.
    system_ms: f64,
    latency: Duration,
    outcome: Result<u16, String>,
}

/// The running prober; [`Prober::finish`] stops it and summarises.
#[derive(Debug)]
pub(crate) struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<Probe>>>,
    interval: Duration,
    limit: Duration,
}

impl Prober {
    /// Starts probing `addr` every `interval`; a probe slower than `limit`
    /// is listed.
    pub(crate) fn start(
        addr: SocketAddr,
        clock: Clock,
        interval: Duration,
        limit: Duration,
    ) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut results: Vec<Vec<Probe>> = PATHS.iter().map(|_| Vec::new()).collect();
            let mut next = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                for (path, results) in PATHS.iter().zip(&mut results) {
                    let system_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |since| since.as_secs_f64() * 1e3);
                    let started = Instant::now();
                    let outcome = probe(addr, path);
                    results.push(Probe {
                        at_ms: clock.unix_ms(started),
                        system_ms,
                        latency: started.elapsed(),
                        outcome,
                    });
                }
                next += interval;
                let now = Instant::now();
                if next > now {
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "the probe thread's own schedule: a dedicated thread, so that the gate's load cannot delay it"
                    )]
                    std::thread::sleep(next - now);
                } else {
                    // Behind schedule (a probe took long): start afresh
                    // rather than probing in a burst.
                    next = now;
                }
            }
            results
        });
        Prober {
            stop,
            thread,
            interval,
            limit,
        }
    }

    /// Stops the prober and returns, per path, the count, the latency
    /// summary of answered probes, the statuses, the slow and failed probes
    /// with their wall times, and every probe.
    pub(crate) fn finish(self) -> ProbeSummary {
        self.stop.store(true, Ordering::Relaxed);
        // A prober thread that panicked counts as no probe at all.
        let mut results = self.thread.join().unwrap_or_default().into_iter();
        let mut next = || path_summary(&results.next().unwrap_or_default(), self.limit);
        let (livez, readyz) = (next(), next());
        ProbeSummary {
            interval_ms: self.interval.as_secs_f64() * 1e3,
            limit_ms: self.limit.as_secs_f64() * 1e3,
            paths: ProbePaths { livez, readyz },
        }
    }
}

/// One path's summary: a probe slower than `limit` is listed as slow.
fn path_summary(probes: &[Probe], limit: Duration) -> PathProbes {
    let mut latencies: Vec<Duration> = probes
        .iter()
        .filter(|probe| probe.outcome.is_ok())
        .map(|probe| probe.latency)
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for probe in probes {
        if let Ok(status) = probe.outcome {
            *statuses.entry(status).or_default() += 1;
        }
    }
    let slow: Vec<&Probe> = probes
        .iter()
        .filter(|probe| probe.outcome.is_ok() && probe.latency > limit)
        .collect();
    let failed: Vec<&Probe> = probes
        .iter()
        .filter(|probe| probe.outcome.is_err())
        .collect();
    let latency_ms = |probe: &Probe| probe.latency.as_secs_f64() * 1e3;
    PathProbes {
        probes: probes.len(),
        first_ms: probes.first().map(|probe| probe.at_ms),
        last_ms: probes.last().map(|probe| probe.at_ms),
        latency: stats::summary(&mut latencies),
        statuses,
        slow_count: slow.len(),
        slow: slow
            .iter()
            .take(LISTED)
            .map(|probe| SlowProbe {
                at_ms: probe.at_ms,
                latency_ms: latency_ms(probe),
            })
            .collect(),
        failed_count: failed.len(),
        failed: failed
            .iter()
            .take(LISTED)
            .map(|probe| FailedProbe {
                at_ms: probe.at_ms,
                latency_ms: latency_ms(probe),
                error: probe.outcome.clone().err().unwrap_or_default(),
            })
            .collect(),
        // Every probe, so that a judge can pick the ones of any window
        // (up to when warmgate stopped listening) itself.
        all: probes
            .iter()
            .map(|probe| ProbeRecord {
                system_ms: probe.system_ms,
                latency_ms: latency_ms(probe),
                answer: match &probe.outcome {
                    Ok(status) => ProbeAnswer::Status(*status),
                    Err(error) => ProbeAnswer::Error(error.clone()),
                },
            })
            .collect(),
    }
}

/// One `GET path` on a new connection; the status, or why there was none.
fn probe(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|error| format!("cannot connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|error| format!("cannot set timeouts: {error}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|error| format!("cannot send: {error}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|error| format!("no answer: {error}"))?;
    let head = String::from_utf8_lossy(&response);
    head.lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                head.lines().next().unwrap_or_default()
            )
        })
}
