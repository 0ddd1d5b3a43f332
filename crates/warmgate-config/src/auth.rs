//! The `[auth]` table, the admin tokens, and the rules that tie them to the
//! rest of the file: a JWKS needs a `jwks` check, a `jwks` check needs a
//! JWKS, an admin listener off loopback needs a control token, and a read
//! token needs a control token beside it.
//!
//! Secrets (the HMAC secret, the admin token, a JWKS URL with a password)
//! are held in types whose `Debug` hides them, and no error repeats them.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::error::Origin;
use crate::raw::{RawAuth, RawConfig};
use crate::values::AuthMode;
use crate::{Config, ConfigError, PhaseConfig, ProbeConfig, SecretText, SecretUrl};

/// The signing algorithms accepted in `[auth] algorithms`.
pub const JWT_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// The shortest HMAC secret accepted, in bytes: RFC 7518 asks for a key at
/// least as long as the hash (32 bytes for HS256).
pub const MIN_SECRET_BYTES: usize = 32;
/// The shortest admin token accepted, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;
/// The largest `leeway` accepted.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
/// The default `leeway`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The `[auth]` table: how WebSocket clients are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthConfig {
    /// `mode = "none"`, the default: every client is admitted anonymously.
    #[default]
    None,
    /// `mode = "jwt"`: every client presents a JWT.
    Jwt(JwtConfig),
}

/// `mode = "jwt"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The accepted `alg` values, from [`JWT_ALGORITHMS`]; all HMAC or all
    /// public-key. Default `["RS256", "ES256"]` with a JWKS, `["HS256"]`
    /// with a secret.
    pub algorithms: Vec<String>,
    pub keys: JwtKeys,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`. Default 30s, at most 5m.
    pub leeway: Duration,
    /// Whether `?token=` is accepted. Default false.
    pub allow_query_token: bool,
}

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeys {
    /// `jwks_url` or `jwks_url_env`, loaded by the check of kind `jwks`.
    Jwks(SecretUrl),
    /// The value of the variable `secret_env` names.
    Secret(SecretText),
}

/// `[auth]` from the raw table.
pub(crate) fn auth(raw: &RawAuth, origin: &Origin<'_>) -> Result<AuthConfig, ConfigError> {
    let mode = raw
        .mode
        .as_ref()
        .map_or(AuthMode::None, |mode| *mode.get_ref());
    if mode == AuthMode::None {
        if let Some((key, span)) = raw
            .present_keys()
            .into_iter()
            .find(|(key, _)| *key != "mode")
        {
            return Err(origin.invalid(
                &format!("auth.{key}"),
                &format!("key `{key}` has no effect while `mode = \"none\"`, expected `mode = \"jwt\"` beside it"),
                Some(span),
            ));
        }
        return Ok(AuthConfig::None);
    }
    let keys = jwt_keys(raw, origin)?;
    let algorithms = match &raw.algorithms {
        Some(list) => algorithms(list, &keys, origin)?,
        None => match keys {
            JwtKeys::Jwks(_) => vec!["RS256".to_owned(), "ES256".to_owned()],
            JwtKeys::Secret(_) => vec!["HS256".to_owned()],
        },
    };
    let leeway = match &raw.leeway {
        None => DEFAULT_LEEWAY,
        Some(text) => humantime::parse_duration(text.get_ref())
            .ok()
            .filter(|leeway| *leeway <= MAX_LEEWAY)
            .ok_or_else(|| {
                origin.invalid(
                    "auth.leeway",
                    &format!(
                        "invalid duration {:?}, expected a duration from \"0s\" to \"5m\" such as \"30s\"",
                        text.get_ref()
                    ),
                    Some(text.span()),
                )
            })?,
    };
    let text =
        |value: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
            match value {
                Some(value) if value.get_ref().trim().is_empty() => Err(origin.invalid(
                    &format!("auth.{key}"),
                    "empty value, expected a non-empty string or no key at all",
                    Some(value.span()),
                )),
                Some(value) => Ok(Some(value.get_ref().clone())),
                None => Ok(None),
            }
        };
    Ok(AuthConfig::Jwt(JwtConfig {
        algorithms,
        keys,
        issuer: text(&raw.issuer, "issuer")?,
        audience: text(&raw.audience, "audience")?,
        leeway,
        allow_query_token: raw
            .allow_query_token
            .as_ref()
            .is_some_and(|allow| *allow.get_ref()),
    }))
}

fn jwt_keys(raw: &RawAuth, origin: &Origin<'_>) -> Result<JwtKeys, ConfigError> {
    let sources: Vec<(&str, Range<usize>)> = [
        ("jwks_url", raw.jwks_url.as_ref().map(Spanned::span)),
        ("jwks_url_env", raw.jwks_url_env.as_ref().map(Spanned::span)),
        ("secret_env", raw.secret_env.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(key, span)| Some((key, span?)))
    .collect();
    match sources.as_slice() {
        [] => Err(origin.invalid(
            "auth.jwks_url",
            "`mode = \"jwt\"` needs keys, expected `jwks_url = \"https://...\"`, `jwks_url_env = \"NAME\"`, or `secret_env = \"NAME\"` for HS256",
            raw.mode.as_ref().map(Spanned::span),
        )),
        [(_, _), (second, span), ..] => Err(origin.invalid(
            &format!("auth.{second}"),
            &format!(
                "`{}` and `{second}` are both set, expected only one of `jwks_url`, `jwks_url_env` and `secret_env`",
                sources[0].0
            ),
            Some(span.clone()),
        )),
        [(key, span)] => {
            let key = *key;
            let value = |value: &Option<Spanned<String>>| {
                value.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default()
            };
            match key {
                "jwks_url" => SecretUrl::parse(&value(&raw.jwks_url), &["http", "https"])
                    .map(JwtKeys::Jwks)
                    .map_err(|message| origin.invalid("auth.jwks_url", &message, Some(span.clone()))),
                "jwks_url_env" => {
                    let name = value(&raw.jwks_url_env);
                    let url = environment(&name, "auth.jwks_url_env", span, origin, "a URL such as \"https://auth.example.com/.well-known/jwks.json\"")?;
                    SecretUrl::parse(&url, &["http", "https"]).map(JwtKeys::Jwks).map_err(|message| {
                        origin.invalid(
                            "auth.jwks_url_env",
                            &format!("environment variable {name:?} does not hold a usable URL: {message}"),
                            Some(span.clone()),
                        )
                    })
                }
                _ => {
                    let name = value(&raw.secret_env);
                    let secret = environment(&name, "auth.secret_env", span, origin, "the HMAC secret")?;
                    if secret.len() < MIN_SECRET_BYTES {
                        return Err(origin.invalid(
                            "auth.secret_env",
                            &format!(
                                "environment variable {name:?} holds a secret of {} bytes, expected at least {MIN_SECRET_BYTES}",
                                secret.len()
                            ),
                            Some(span.clone()),
                        ));
                    }
                    Ok(JwtKeys::Secret(SecretText::new(secret)))
                }
            }
        }
    }
}

/// The value of an environment variable a key names; the error never
/// repeats a value.
fn environment(
    name: &str,
    key: &str,
    span: &Range<usize>,
    origin: &Origin<'_>,
    expected: &str,
) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(origin.invalid(
            key,
            &format!(
                "environment variable {name:?} is not set or empty, expected it to hold {expected}"
            ),
            Some(span.clone()),
        )),
    }
}

fn algorithms(
    list: &Spanned<Vec<String>>,
    keys: &JwtKeys,
    origin: &Origin<'_>,
) -> Result<Vec<String>, ConfigError> {
    let invalid = |message: String| origin.invalid("auth.algorithms", &message, Some(list.span()));
    let names = list.get_ref();
    if names.is_empty() {
        return Err(invalid(
            "empty list, expected at least one algorithm such as \"RS256\"".to_owned(),
        ));
    }
    for name in names {
        if !JWT_ALGORITHMS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "unknown algorithm {name:?}, expected some of {}",
                JWT_ALGORITHMS.join(", ")
            )));
        }
    }
    let hmac = names.iter().filter(|name| name.starts_with("HS")).count();
    match keys {
        JwtKeys::Jwks(_) if hmac > 0 => Err(invalid(
            "HMAC algorithms (HS*) cannot be checked with a public JWKS, expected public-key algorithms such as \"RS256\" or \"ES256\", or `secret_env` in place of the JWKS".to_owned(),
        )),
        JwtKeys::Secret(_) if hmac < names.len() => Err(invalid(
            "`secret_env` checks HMAC algorithms only, expected \"HS256\", \"HS384\" or \"HS512\"".to_owned(),
        )),
        _ => Ok(names.clone()),
    }
}

/// A JWKS needs a check of kind `jwks` to load it, and such a check needs a
/// JWKS.
pub(crate) fn check_jwks_wiring(
    auth: AuthConfig,
    raw: &RawAuth,
    phases: &[PhaseConfig],
    check_spans: &[Vec<Range<usize>>],
    origin: &Origin<'_>,
) -> Result<AuthConfig, ConfigError> {
    let jwks_check = phases.iter().enumerate().find_map(|(phase_index, phase)| {
        phase
            .checks
            .iter()
            .position(|check| check.probe == ProbeConfig::Jwks)
            .map(|check_index| (phase_index, check_index))
    });
    if let Some((phase_index, check_index)) = jwks_check
        && !phases[phase_index].checks[check_index].required
    {
        return Err(origin.invalid(
                &format!("phase[{phase_index}].check[{check_index}].required"),
                "a `jwks` check cannot be optional: without the keys no client can be admitted, expected `required = true` (the default)",
                check_spans
                    .get(phase_index)
                    .and_then(|spans| spans.get(check_index))
                    .cloned(),
            ));
    }
    let uses_jwks = matches!(
        &auth,
        AuthConfig::Jwt(JwtConfig {
            keys: JwtKeys::Jwks(_),
            ..
        })
    );
    match (uses_jwks, jwks_check) {
        (true, None) => Err(origin.invalid(
            if raw.jwks_url.is_some() { "auth.jwks_url" } else { "auth.jwks_url_env" },
            "the keys come from a JWKS, but no check loads it: expected a check with `kind = \"jwks\"` in a phase (the gate is not ready until it passes)",
            raw.jwks_url.as_ref().or(raw.jwks_url_env.as_ref()).map(Spanned::span),
        )),
        (false, Some((phase_index, check_index))) => Err(origin.invalid(
            &format!("phase[{phase_index}].check[{check_index}].kind"),
            "kind \"jwks\" loads the keys of `[auth]`, expected `[auth]` with `mode = \"jwt\"` and `jwks_url` or `jwks_url_env`",
            check_spans
                .get(phase_index)
                .and_then(|spans| spans.get(check_index))
                .cloned(),
        )),
        _ => Ok(auth),
    }
}

/// The admin tokens: the control token (`admin_token` or `admin_token_env`),
/// accepted on every admin route, and the read token (`admin_read_token` or
/// `admin_read_token_env`), accepted on reading routes only. A read token
/// needs a control token beside it, or the control routes would be left
/// open while reads are guarded, and the two must differ.
pub(crate) fn admin_tokens(
    raw: &RawConfig,
    origin: &Origin<'_>,
) -> Result<(Option<SecretText>, Option<SecretText>), ConfigError> {
    let control = admin_token(
        &raw.admin_token,
        &raw.admin_token_env,
        ["admin_token", "admin_token_env"],
        origin,
    )?;
    let read = admin_token(
        &raw.admin_read_token,
        &raw.admin_read_token_env,
        ["admin_read_token", "admin_read_token_env"],
        origin,
    )?;
    let Some(read) = read else {
        return Ok((control.map(|control| control.token), None));
    };
    match control {
        None => Err(origin.invalid(
            read.key,
            "a read token alone would leave signals and drain unguarded, expected `admin_token` or `admin_token_env` beside it (the control token, accepted everywhere)",
            Some(read.span),
        )),
        Some(control) if control.token == read.token => Err(origin.invalid(
            read.key,
            "the read token is the same as the control token, expected a different token so that a reader cannot drain the process",
            Some(read.span),
        )),
        Some(control) => Ok((Some(control.token), Some(read.token))),
    }
}

/// An admin token, with the key it came from and where, for errors.
struct AdminToken {
    token: SecretText,
    key: &'static str,
    span: Range<usize>,
}

/// One admin token from its two keys (the token itself, or the name of a
/// variable holding it), with the key it came from and where.
fn admin_token(
    value: &Option<Spanned<String>>,
    env: &Option<Spanned<String>>,
    [value_key, env_key]: [&'static str; 2],
    origin: &Origin<'_>,
) -> Result<Option<AdminToken>, ConfigError> {
    let token = match (value, env) {
        (None, None) => return Ok(None),
        (Some(_), Some(env)) => {
            return Err(origin.invalid(
                env_key,
                &format!("both `{value_key}` and `{env_key}` are set, expected only one"),
                Some(env.span()),
            ));
        }
        (Some(token), None) => (token.get_ref().clone(), value_key, token.span()),
        (None, Some(name)) => (
            environment(
                name.get_ref(),
                env_key,
                &name.span(),
                origin,
                "the admin token",
            )?,
            env_key,
            name.span(),
        ),
    };
    let (value, key, span) = token;
    if value.len() < MIN_ADMIN_TOKEN_BYTES || value.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(origin.invalid(
            key,
            &format!(
                "the admin token must be at least {MIN_ADMIN_TOKEN_BYTES} visible ASCII characters (no spaces), such as the output of `openssl rand -hex 32`"
            ),
            Some(span),
        ));
    }
    Ok(Some(AdminToken {
        token: SecretText::new(value),
        key,
        span,
    }))
}

impl Config {
    /// Refuses an admin listener that is not on loopback unless an admin
    /// token guards it. The file's own address is checked when it is read;
    /// call this again after changing `admin_listen` (a command-line flag).
    pub fn check_admin_exposure(&self) -> Result<(), ConfigError> {
        if self.admin_listen.ip().is_loopback() || self.admin_token.is_some() {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            file: self.source.clone(),
            key: "admin_listen".to_owned(),
            message: format!(
                "the admin listener {} is not on loopback, and it can drain the process and set signals: expected `admin_token` or `admin_token_env` to guard it, or a loopback address such as \"127.0.0.1:9090\"",
                self.admin_listen
            ),
            location: None,
        })
    }
}
