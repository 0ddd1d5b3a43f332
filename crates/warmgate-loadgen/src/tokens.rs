//! The clients' credentials: a good token per user, signed with the stand-in
//! auth service's key, and the deliberately bad ones (none, signed by
//! another key under the same key id, signed by a key the service does not
//! publish, expired) that must each be answered 401 before the upgrade.

use std::path::PathBuf;

use anyhow::Context as _;
use warmgate_devservers::{SigningKey, TokenClaims};
pub(crate) use warmgate_loadgen::report::Credential;

/// How long a good token lives: longer than any run.
const TOKEN_LIFETIME_SECONDS: u64 = 6 * 3600;

/// How long ago a deliberately expired token expired: far beyond any leeway.
const EXPIRED_SINCE_SECONDS: u64 = 3600;

/// The unauthorised credentials, in the order churn attempts take turns.
pub(crate) const UNAUTHORISED: [Credential; 4] = [
    Credential::NoToken,
    Credential::WrongKey,
    Credential::UnknownKey,
    Credential::Expired,
];

/// The `--auth-*` arguments: where the key is and what the tokens claim.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AuthArguments {
    /// The auth service's signing key (PKCS#8 DER). Without it, clients
    /// send no token and no unauthorised attempt is made.
    #[arg(long)]
    auth_key_file: Option<PathBuf>,
    #[arg(long, default_value = "chaos")]
    auth_kid: String,
    #[arg(long, default_value = "https://auth.chaos.test/")]
    auth_issuer: String,
    #[arg(long, default_value = "chat")]
    auth_audience: String,
}

/// Signs tokens; `None` inside when authentication is off.
#[derive(Debug)]
pub(crate) struct Tokens {
    signing: Option<Signing>,
}

#[derive(Debug)]
struct Signing {
    key: SigningKey,
    impostor: SigningKey,
    stranger: SigningKey,
    issuer: String,
    audience: String,
}

impl Tokens {
    pub(crate) fn new(arguments: &AuthArguments) -> anyhow::Result<Tokens> {
        let Some(key_file) = &arguments.auth_key_file else {
            return Ok(Tokens { signing: None });
        };
        let key = SigningKey::read(&arguments.auth_kid, key_file)
            .with_context(|| format!("cannot read the signing key {}", key_file.display()))?;
        Ok(Tokens {
            signing: Some(Signing {
                key,
                impostor: SigningKey::generate(&arguments.auth_kid)?,
                stranger: SigningKey::generate(&format!("{}-unknown", arguments.auth_kid))?,
                issuer: arguments.auth_issuer.clone(),
                audience: arguments.auth_audience.clone(),
            }),
        })
    }

    /// True when clients authenticate (and unauthorised attempts are made).
    pub(crate) fn enabled(&self) -> bool {
        self.signing.is_some()
    }

    /// The bearer token for `credential` as user `sub`; `None` when the
    /// attempt carries no token.
    pub(crate) fn token(
        &self,
        credential: Credential,
        sub: &str,
    ) -> anyhow::Result<Option<String>> {
        let Some(signing) = &self.signing else {
            return Ok(None);
        };
        let claims = || {
            TokenClaims::expiring_in(sub, TOKEN_LIFETIME_SECONDS)
                .issuer(&signing.issuer)
                .audience(&signing.audience)
        };
        let token = match credential {
            Credential::Good => signing.key.sign(&claims())?,
            Credential::NoToken => return Ok(None),
            Credential::WrongKey => signing.impostor.sign(&claims())?,
            Credential::UnknownKey => signing.stranger.sign(&claims())?,
            Credential::Expired => {
                let mut claims = claims();
                claims.exp = claims.iat.saturating_sub(EXPIRED_SINCE_SECONDS);
                claims.iat = claims.exp.saturating_sub(TOKEN_LIFETIME_SECONDS);
                signing.key.sign(&claims)?
            }
        };
        Ok(Some(token))
    }
}
