//! A config written back for people, for `warmgate check-config FILE`.
//!
//! The summary uses the file's own key names, so a reader can find each
//! setting in the file, and shows every default that was filled in.

use std::fmt::Write as _;
use std::time::Duration;

use crate::{AuthConfig, CheckConfig, Config, JwtKeys, ProbeConfig};

impl Config {
    /// A multi-line summary: the listeners, the gate settings, then each phase
    /// and its checks with kind, target, required or optional, timeout,
    /// interval and thresholds.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, so the results are ignored.
        let _ = writeln!(text, "config {}", self.source);
        let _ = writeln!(text, "  listen = {}", self.listen);
        let _ = writeln!(text, "  admin_listen = {}", self.admin_listen);
        if let Some(address) = self.grpc_health_listen {
            let _ = writeln!(text, "  grpc_health_listen = {address}");
        }
        let guard = if self.admin_token.is_some() {
            "set (admin requests need it)"
        } else {
            "none"
        };
        let _ = writeln!(text, "  admin_token = {guard}");
        if self.admin_read_token.is_some() {
            let _ = writeln!(
                text,
                "  admin_read_token = set (reads metrics and readiness only)"
            );
        }
        let routes = &self.routes;
        let _ = writeln!(text, "routes");
        for (key, on) in [
            ("chat_page", routes.chat_page),
            ("readiness_detail", routes.readiness_detail),
        ] {
            let _ = writeln!(text, "  {key} = {}", if on { "on" } else { "off (404)" });
        }
        for route in &routes.websocket {
            let _ = writeln!(text, "  websocket {} -> {}", route.path, route.app.name());
        }
        if let Some(upstream) = &self.upstream {
            let _ = writeln!(text, "upstream");
            let _ = writeln!(text, "  url = {}", upstream.url);
            let _ = writeln!(
                text,
                "  http = {}",
                if upstream.http {
                    "on (other paths are proxied)"
                } else {
                    "off"
                }
            );
            let _ = writeln!(text, "  subprotocols = {:?}", upstream.subprotocols);
            let _ = writeln!(
                text,
                "  max_concurrent_dials = {}",
                upstream.max_concurrent_dials
            );
            let _ = writeln!(
                text,
                "  dial_timeout = {}",
                humantime::format_duration(upstream.dial_timeout)
            );
            let _ = writeln!(text, "  identity_header = {}", upstream.identity_header);
        }
        let clients = &self.clients;
        let _ = writeln!(text, "clients");
        let proxies = if clients.trusted_proxies.is_empty() {
            "[] (the socket's peer is the client)".to_owned()
        } else {
            let ranges: Vec<String> = clients
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect();
            format!("{ranges:?}")
        };
        let _ = writeln!(text, "  trusted_proxies = {proxies}");
        let limit = |limit: Option<usize>| match limit {
            Some(limit) => limit.to_string(),
            None => "no limit".to_owned(),
        };
        let _ = writeln!(
            text,
            "  handshakes_per_second_per_address = {}",
            limit(
                clients
                    .handshakes_per_second_per_address
                    .map(|n| n as usize)
            )
        );
        let _ = writeln!(
            text,
            "  max_event_streams_per_address = {}",
            limit(clients.max_event_streams_per_address)
        );
        let _ = writeln!(text, "gate");
        let gate = &self.gate;
        for (key, value) in gate.durations() {
            let _ = writeln!(text, "  {key} = {}", human(value));
        }
        let _ = writeln!(
            text,
            "  shutdown_delay = {} (after SIGTERM, not SIGINT)",
            human(gate.shutdown_delay)
        );
        let _ = writeln!(text, "  max_connections = {}", gate.max_connections);
        let _ = writeln!(text, "  max_held = {}", gate.max_held);
        let _ = writeln!(text, "  max_message_bytes = {}", gate.max_message_bytes);
        let origins = if gate.allowed_origins.is_empty() {
            "[] (any origin)".to_owned()
        } else {
            format!("{:?}", gate.allowed_origins)
        };
        let _ = writeln!(text, "  allowed_origins = {origins}");
        let _ = writeln!(
            text,
            "  messages_per_second = {} (burst {})",
            gate.messages_per_second, gate.message_burst
        );
        let _ = writeln!(text, "auth");
        match &self.auth {
            AuthConfig::None => {
                let _ = writeln!(text, "  mode = none (clients are not authenticated)");
            }
            AuthConfig::Jwt(jwt) => {
                let _ = writeln!(
                    text,
                    "  mode = jwt, algorithms {}",
                    jwt.algorithms.join(", ")
                );
                let keys = match &jwt.keys {
                    JwtKeys::Jwks(url) => format!("JWKS {url}"),
                    JwtKeys::Secret(_) => "a shared secret from the environment".to_owned(),
                };
                let _ = writeln!(text, "  keys = {keys}");
                let _ = writeln!(
                    text,
                    "  issuer = {}, audience = {}",
                    jwt.issuer.as_deref().unwrap_or("any"),
                    jwt.audience.as_deref().unwrap_or("any")
                );
                let _ = writeln!(
                    text,
                    "  leeway = {}, allow_query_token = {}",
                    human(jwt.leeway),
                    jwt.allow_query_token
                );
            }
        }
        let _ = writeln!(text, "telemetry");
        let _ = writeln!(
            text,
            "  log_format = {}",
            self.telemetry.log_format.as_str()
        );
        if let Some(project) = &self.telemetry.gcp_project {
            let _ = writeln!(text, "  gcp_project = {project}");
        }
        match &self.telemetry.otlp_endpoint {
            Some(endpoint) => {
                let _ = writeln!(
                    text,
                    "  otlp_endpoint = {endpoint} ({})",
                    self.telemetry.otlp_protocol.as_str()
                );
            }
            None => {
                let _ = writeln!(text, "  otlp_endpoint = none (no trace export)");
            }
        }
        if let Some(name) = &self.telemetry.service_name {
            let _ = writeln!(text, "  service_name = {name}");
        }
        let _ = writeln!(text, "  sampler = {}", self.telemetry.sampler);
        if self.phases.is_empty() {
            let _ = writeln!(text, "no phases: the gate is ready as soon as it starts");
        }
        for (phase_index, phase) in self.phases.iter().enumerate() {
            let n_checks = match phase.checks.len() {
                0 => "no checks".to_owned(),
                1 => "1 check".to_owned(),
                n => format!("{n} checks"),
            };
            let _ = writeln!(
                text,
                "phase {} of {} {:?} ({n_checks})",
                phase_index + 1,
                self.phases.len(),
                phase.name
            );
            for check in &phase.checks {
                let _ = writeln!(text, "  {}", describe_check(check));
            }
        }
        text
    }
}

fn describe_check(check: &CheckConfig) -> String {
    let target = match &check.probe {
        ProbeConfig::Tcp { addr } => format!("tcp {addr}"),
        ProbeConfig::Signal => "signal".to_owned(),
        ProbeConfig::Jwks => "jwks (the keys of [auth])".to_owned(),
        ProbeConfig::Postgres { url } => format!("postgres {url}"),
        ProbeConfig::Redis { url } => format!("redis {url}"),
        ProbeConfig::Http {
            url,
            expect_status,
            expect_body,
        } => {
            let statuses = match expect_status {
                Some(statuses) => statuses
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                None => "any 2xx".to_owned(),
            };
            let body = match expect_body {
                Some(body) => format!(" with body containing {body:?}"),
                None => String::new(),
            };
            format!("http GET {url} expecting {statuses}{body}")
        }
    };
    format!(
        "check {:?}: {target}, {}, timeout {}, interval {}, backoff_cap {}, failure_threshold {}, success_threshold {}",
        check.name,
        if check.required {
            "required"
        } else {
            "optional"
        },
        human(check.timeout),
        human(check.interval),
        human(check.backoff_cap),
        check.failure_threshold,
        check.success_threshold,
    )
}

/// A duration as the file writes it, such as `7s` or `1m 30s`.
pub(crate) fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}
