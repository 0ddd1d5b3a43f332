//! From the raw file to a [`Config`]: defaults, and the rules that span more
//! than one key.
//!
//! Single values were already checked while deserializing (see `values`).
//! What is left needs context: required keys, which kind uses which keys,
//! unique names across the file, and distinct listeners. Each error names
//! the key path of the item, such as `phase[1].check[0].addr`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::describe::human;
use crate::error::Origin;
use crate::raw::{RawCheck, RawConfig, RawGate, RawPhase, RawTelemetry};
use crate::values::{KindNames, Name, NonZeroDuration, ProbeKind};
use crate::{
    CheckConfig, Config, ConfigError, GateConfig, PhaseConfig, ProbeConfig, SamplerError,
    SecretUrl, TelemetryConfig, TraceSampler,
};
use crate::{auth, edge, upstream};

/// Applies defaults and rules to the raw file.
pub(crate) fn config(mut raw: RawConfig, origin: &Origin<'_>) -> Result<Config, ConfigError> {
    let (listen, admin_listen) = listeners(&raw, origin)?;
    let grpc_health_listen = grpc_health_listener(&raw, listen, admin_listen, origin)?;
    let (admin_token, admin_read_token) = auth::admin_tokens(&raw, origin)?;
    let variable =
        |name: &Option<Spanned<String>>| name.as_ref().map(|name| name.get_ref().clone());
    let admin_token_env = variable(&raw.admin_token_env);
    let admin_read_token_env = variable(&raw.admin_read_token_env);
    let upstream = upstream::upstream(raw.upstream.take(), origin)?;
    let websocket = upstream::websocket_routes(
        std::mem::take(&mut raw.route),
        &raw.routes,
        upstream.as_ref(),
        origin,
    )?;
    let routes = edge::routes(&raw.routes, websocket, origin)?;
    let clients = edge::clients(std::mem::take(&mut raw.clients));
    let raw_auth = std::mem::take(&mut raw.auth);
    let check_spans: Vec<Vec<Range<usize>>> = raw
        .phase
        .iter()
        .map(|phase| phase.get_ref().check.iter().map(Spanned::span).collect())
        .collect();
    let mut names = UniqueNames::default();
    let phases = raw
        .phase
        .into_iter()
        .enumerate()
        .map(|(phase_index, phase)| {
            self::phase(phase, &format!("phase[{phase_index}]"), origin, &mut names)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let auth = auth::check_jwks_wiring(
        auth::auth(&raw_auth, origin)?,
        &raw_auth,
        &phases,
        &check_spans,
        origin,
    )?;
    let config = Config {
        source: origin.file.to_owned(),
        listen,
        admin_listen,
        grpc_health_listen,
        gate: gate(raw.gate, origin)?,
        phases,
        telemetry: telemetry(raw.telemetry, origin)?,
        auth,
        admin_token,
        admin_read_token,
        admin_token_env,
        admin_read_token_env,
        routes,
        clients,
        upstream,
    };
    if let Err(error) = config.check_admin_exposure() {
        // The same words, located at the key in the file.
        let message = match error {
            ConfigError::Invalid { message, .. } => message,
            other => other.to_string(),
        };
        return Err(origin.invalid(
            "admin_listen",
            &message,
            raw.admin_listen.as_ref().map(Spanned::span),
        ));
    }
    Ok(config)
}

/// The `[telemetry]` table. The sampler's name and argument are checked
/// together, because the argument's meaning depends on the name.
fn telemetry(raw: RawTelemetry, origin: &Origin<'_>) -> Result<TelemetryConfig, ConfigError> {
    let sampler = match (&raw.sampler, &raw.sampler_arg) {
        (None, None) => TraceSampler::default(),
        (None, Some(arg)) => {
            return Err(origin.invalid(
                "telemetry.sampler_arg",
                "`sampler_arg` without `sampler`, expected `sampler = \"traceidratio\"` or `\"parentbased_traceidratio\"` beside it",
                Some(arg.span()),
            ));
        }
        (Some(name), arg) => TraceSampler::parse(
            name.get_ref(),
            arg.as_ref().map(|arg| *arg.get_ref()),
        )
        .map_err(|error| {
            let (key, span) = match (&error, arg) {
                (SamplerError::Argument(_), Some(arg)) => ("telemetry.sampler_arg", arg.span()),
                _ => ("telemetry.sampler", name.span()),
            };
            origin.invalid(key, &error.to_string(), Some(span))
        })?,
    };
    Ok(TelemetryConfig {
        log_format: raw.log_format.unwrap_or_default(),
        gcp_project: raw.gcp_project.map(|name| name.into_inner().0),
        otlp_endpoint: raw.otlp_endpoint.map(|endpoint| endpoint.0),
        otlp_protocol: raw.otlp_protocol.unwrap_or_default(),
        service_name: raw.service_name.map(|name| name.into_inner().0),
        sampler,
    })
}

/// The two listener addresses, which must differ: binding the same one twice
/// would only fail later, at startup.
fn listeners(
    raw: &RawConfig,
    origin: &Origin<'_>,
) -> Result<(SocketAddr, SocketAddr), ConfigError> {
    let listen = raw
        .listen
        .as_ref()
        .map_or(Config::DEFAULT_LISTEN, |listen| listen.get_ref().0);
    let admin_listen = raw
        .admin_listen
        .as_ref()
        .map_or(Config::DEFAULT_ADMIN_LISTEN, |admin| admin.get_ref().0);
    // Port 0 asks the OS for a free port, so two listeners on port 0 differ.
    if listen == admin_listen && listen.port() != 0 {
        let span = raw
            .admin_listen
            .as_ref()
            .or(raw.listen.as_ref())
            .map(Spanned::span);
        return Err(origin.invalid(
            "admin_listen",
            &format!(
                "address \"{listen}\" is also the `listen` address, expected a different address or port for the admin listener"
            ),
            span,
        ));
    }
    Ok((listen, admin_listen))
}

/// `grpc_health_listen`, when set: an address neither listener has (port 0
/// excepted, which asks the OS for a free port).
fn grpc_health_listener(
    raw: &RawConfig,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    origin: &Origin<'_>,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(spanned) = &raw.grpc_health_listen else {
        return Ok(None);
    };
    let address = spanned.get_ref().0;
    for (key, other) in [("listen", listen), ("admin_listen", admin_listen)] {
        if address == other && address.port() != 0 {
            return Err(origin.invalid(
                "grpc_health_listen",
                &format!(
                    "address \"{address}\" is also the `{key}` address, expected a different address or port for the gRPC health listener"
                ),
                Some(spanned.span()),
            ));
        }
    }
    Ok(Some(address))
}

/// The `[gate]` table with its defaults. Every value was checked while
/// deserializing; two rules span keys: `drain_grace` fits in
/// `shutdown_budget` (with the close margin and the exit reserve), so the
/// whole shutdown ends within the budget, and `shutdown_delay` is at most
/// `drain_grace`, so the listeners close within the drain.
fn gate(raw: RawGate, origin: &Origin<'_>) -> Result<GateConfig, ConfigError> {
    let default = GateConfig::default();
    let duration =
        |value: Option<NonZeroDuration>, default: Duration| value.map_or(default, |d| d.0);
    let (shutdown_budget, drain_grace) = shutdown_budget(&raw, origin)?;
    let shutdown_delay = match &raw.shutdown_delay {
        // Unset, it never stretches a short grace.
        None => default.shutdown_delay.min(drain_grace),
        Some(delay) if delay.get_ref().0 <= drain_grace => delay.get_ref().0,
        Some(delay) => {
            return Err(origin.invalid(
                "gate.shutdown_delay",
                &format!(
                    "{:?} is longer than `drain_grace` ({:?}), expected a duration from \"0s\" to `drain_grace`: the listeners close within the drain",
                    human(delay.get_ref().0),
                    human(drain_grace)
                ),
                Some(delay.span()),
            ));
        }
    };
    Ok(GateConfig {
        startup_deadline: duration(raw.startup_deadline, default.startup_deadline),
        retry_cap: duration(raw.retry_cap, default.retry_cap),
        hold_timeout: duration(raw.hold_timeout, default.hold_timeout),
        warming_interval: duration(raw.warming_interval, default.warming_interval),
        retry_after: raw.retry_after.map_or(default.retry_after, |r| r.0),
        shutdown_budget,
        drain_grace,
        shutdown_delay,
        handshake_timeout: duration(raw.handshake_timeout, default.handshake_timeout),
        ping_interval: duration(raw.ping_interval, default.ping_interval),
        write_timeout: duration(raw.write_timeout, default.write_timeout),
        max_connections: raw.max_connections.map_or(default.max_connections, |n| n.0),
        max_held: raw.max_held.map_or(default.max_held, |n| n.0),
        max_message_bytes: raw
            .max_message_bytes
            .map_or(default.max_message_bytes, |n| n.0),
        allowed_origins: raw.allowed_origins.map_or(default.allowed_origins, |list| {
            list.0.into_iter().map(|origin| origin.0).collect()
        }),
        messages_per_second: raw
            .messages_per_second
            .map_or(default.messages_per_second, |n| n.0),
        message_burst: raw.message_burst.map_or(default.message_burst, |n| n.0),
    })
}

/// `shutdown_budget` and `drain_grace`: the grace is set, and must fit in
/// the budget, or derived from it (see [`GateConfig::drain_grace_within`]).
/// An error names the key to change and both ways out.
fn shutdown_budget(
    raw: &RawGate,
    origin: &Origin<'_>,
) -> Result<(Duration, Duration), ConfigError> {
    let budget = raw
        .shutdown_budget
        .as_ref()
        .map_or(GateConfig::DEFAULT_SHUTDOWN_BUDGET, |budget| {
            budget.get_ref().0
        });
    let fits = GateConfig::drain_grace_within(budget);
    let reserved = GateConfig::CLOSE_MARGIN + GateConfig::EXIT_RESERVE;
    let why = format!(
        "the shutdown budget holds `drain_grace`, {} for the last closing handshakes and {} for the last span export and the exit",
        human(GateConfig::CLOSE_MARGIN),
        human(GateConfig::EXIT_RESERVE)
    );
    match &raw.drain_grace {
        Some(grace) if grace.get_ref().0 <= fits => Ok((budget, grace.get_ref().0)),
        Some(grace) => {
            let grace_value = grace.get_ref().0;
            Err(origin.invalid(
                "gate.drain_grace",
                &format!(
                    "{:?} does not fit in `shutdown_budget` ({:?}): {why}; expected a `drain_grace` of at most {:?}, or a `shutdown_budget` of at least {:?}",
                    human(grace_value),
                    human(budget),
                    human(fits),
                    human(grace_value + reserved)
                ),
                Some(grace.span()),
            ))
        }
        None if !fits.is_zero() => Ok((budget, fits)),
        None => Err(origin.invalid(
            "gate.shutdown_budget",
            &format!(
                "{:?} leaves no time to drain: {why}; expected more than {:?}",
                human(budget),
                human(reserved)
            ),
            raw.shutdown_budget.as_ref().map(Spanned::span),
        )),
    }
}

fn phase(
    raw: Spanned<RawPhase>,
    path: &str,
    origin: &Origin<'_>,
    names: &mut UniqueNames,
) -> Result<PhaseConfig, ConfigError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let name = required_name(raw.name, "phase", path, span, origin)?;
    names.claim(&name, "phase", path, origin)?;
    let checks = raw
        .check
        .into_iter()
        .enumerate()
        .map(|(check_index, check)| {
            self::check(
                check,
                &format!("{path}.check[{check_index}]"),
                origin,
                names,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PhaseConfig {
        name: name.into_inner().0,
        checks,
    })
}

fn check(
    raw: Spanned<RawCheck>,
    path: &str,
    origin: &Origin<'_>,
    names: &mut UniqueNames,
) -> Result<CheckConfig, ConfigError> {
    let span = raw.span();
    let mut raw = raw.into_inner();
    let name = required_name(raw.name.take(), "check", path, span.clone(), origin)?;
    names.claim(&name, "check", path, origin)?;
    let Some(kind) = raw.kind.as_ref().map(|kind| *kind.get_ref()) else {
        return Err(origin.invalid(
            &format!("{path}.kind"),
            &format!("missing key `kind`, expected {KindNames}"),
            Some(span),
        ));
    };
    let probe = probe(&raw, kind, path, span, origin)?;
    let interval = raw.interval.map_or(CheckConfig::DEFAULT_INTERVAL, |i| i.0);
    Ok(CheckConfig {
        name: name.into_inner().0,
        required: raw.required.unwrap_or(true),
        timeout: raw.timeout.map_or(CheckConfig::DEFAULT_TIMEOUT, |t| t.0),
        interval,
        backoff_cap: raw
            .backoff_cap
            .map_or(CheckConfig::default_backoff_cap(interval), |c| c.0),
        failure_threshold: raw
            .failure_threshold
            .map_or(kind.default_failure_threshold(), |t| t.0),
        success_threshold: raw
            .success_threshold
            .map_or(CheckConfig::DEFAULT_SUCCESS_THRESHOLD, |t| t.0),
        probe,
    })
}

/// Builds the probe of one kind from its keys, refusing keys it does not use.
fn probe(
    raw: &RawCheck,
    kind: ProbeKind,
    path: &str,
    span: Range<usize>,
    origin: &Origin<'_>,
) -> Result<ProbeConfig, ConfigError> {
    for (key, key_span) in raw.kind_specific_keys() {
        if !kind.keys().contains(&key) {
            let uses = match kind.keys() {
                [] => "no kind-specific keys".to_owned(),
                keys => keys
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            return Err(origin.invalid(
                &format!("{path}.{key}"),
                &format!(
                    "key `{key}` is not used by kind `{}`, expected only its keys ({uses})",
                    kind.name()
                ),
                Some(key_span),
            ));
        }
    }
    let missing = |key: &str, expected: &str| {
        origin.invalid(
            &format!("{path}.{key}"),
            &format!(
                "missing key `{key}`, which kind `{}` needs: expected {expected}",
                kind.name()
            ),
            Some(span.clone()),
        )
    };
    Ok(match kind {
        ProbeKind::Tcp => ProbeConfig::Tcp {
            addr: raw
                .addr
                .as_ref()
                .ok_or_else(|| missing("addr", "a host and port such as \"127.0.0.1:5432\""))?
                .get_ref()
                .0
                .clone(),
        },
        ProbeKind::Signal => ProbeConfig::Signal,
        ProbeKind::Jwks => ProbeConfig::Jwks,
        ProbeKind::Postgres => ProbeConfig::Postgres {
            url: secret_url(raw, kind, path, &span, origin)?,
        },
        ProbeKind::Redis => ProbeConfig::Redis {
            url: secret_url(raw, kind, path, &span, origin)?,
        },
        ProbeKind::Http => ProbeConfig::Http {
            url: secret_url(raw, kind, path, &span, origin)?,
            expect_status: match &raw.expect_status {
                Some(statuses) => Some(statuses.get_ref().statuses().map_err(|message| {
                    origin.invalid(
                        &format!("{path}.expect_status"),
                        &message,
                        Some(statuses.span()),
                    )
                })?),
                None => None,
            },
            expect_body: raw.expect_body.as_ref().map(|body| body.get_ref().clone()),
        },
    })
}

/// The URL of a kind that connects by URL, from exactly one of `url` or
/// `url_env` (the name of an environment variable that holds it, so a secret
/// stays out of the file). No error repeats the URL, which may hold a
/// password.
fn secret_url(
    raw: &RawCheck,
    kind: ProbeKind,
    path: &str,
    span: &Range<usize>,
    origin: &Origin<'_>,
) -> Result<SecretUrl, ConfigError> {
    let schemes = kind.url_schemes();
    let example = format!("{}://...", schemes.first().copied().unwrap_or("scheme"));
    match (&raw.url, &raw.url_env) {
        (Some(url), None) => SecretUrl::parse(url.get_ref(), schemes).map_err(|message| {
            origin.invalid(&format!("{path}.url"), &message, Some(url.span()))
        }),
        (None, Some(variable)) => {
            let name = variable.get_ref();
            let key = format!("{path}.url_env");
            let value = std::env::var(name).map_err(|_| {
                origin.invalid(
                    &key,
                    &format!(
                        "environment variable {name:?} is not set, expected it to hold a URL such as {example:?}"
                    ),
                    Some(variable.span()),
                )
            })?;
            SecretUrl::parse(&value, schemes).map_err(|message| {
                origin.invalid(
                    &key,
                    &format!("environment variable {name:?} does not hold a usable URL: {message}"),
                    Some(variable.span()),
                )
            })
        }
        (Some(url), Some(_)) => Err(origin.invalid(
            &format!("{path}.url"),
            "both `url` and `url_env` are set, expected only one of them",
            Some(url.span()),
        )),
        (None, None) => Err(origin.invalid(
            &format!("{path}.url"),
            &format!(
                "missing key `url`, which kind `{}` needs: expected `url = {example:?}` or `url_env = \"NAME_OF_A_VARIABLE\"`",
                kind.name()
            ),
            Some(span.clone()),
        )),
    }
}

fn required_name(
    name: Option<Spanned<Name>>,
    what: &str,
    path: &str,
    span: Range<usize>,
    origin: &Origin<'_>,
) -> Result<Spanned<Name>, ConfigError> {
    name.ok_or_else(|| {
        origin.invalid(
            &format!("{path}.name"),
            &format!("missing key `name`, expected a name for this {what}"),
            Some(span),
        )
    })
}

/// The names seen so far, with where each was first used. Phases and checks
/// have separate namespaces, as in the core plan.
#[derive(Debug, Default)]
struct UniqueNames {
    first_use: HashMap<(&'static str, String), (String, Range<usize>)>,
}

impl UniqueNames {
    fn claim(
        &mut self,
        name: &Spanned<Name>,
        what: &'static str,
        path: &str,
        origin: &Origin<'_>,
    ) -> Result<(), ConfigError> {
        let text = &name.get_ref().0;
        if let Some((first_path, first_span)) = self.first_use.get(&(what, text.clone())) {
            let first_at = match origin.locate(Some(first_span.clone())) {
                Some(location) => format!(", {location}"),
                None => String::new(),
            };
            return Err(origin.invalid(
                &format!("{path}.name"),
                &format!(
                    "duplicate {what} name {text:?} (already used at {first_path}.name{first_at}), expected {what} names to be unique{}",
                    if what == "check" { " across all phases" } else { "" }
                ),
                Some(name.span()),
            ));
        }
        self.first_use
            .insert((what, text.clone()), (path.to_owned(), name.span()));
        Ok(())
    }
}
