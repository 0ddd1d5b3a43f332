//! The stand-in auth service that `dev`, `chaos`, `soak` and `bench` run:
//! `warmgate-jwks-server` publishing an ES256 key made here, and the
//! tokens signed with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use warmgate_devservers::{SigningKey, TokenClaims};

use crate::server::Server;

/// A running `warmgate-jwks-server` and the key it publishes.
#[derive(Debug)]
pub(crate) struct AuthService {
    pub(crate) server: Server,
    key: SigningKey,
    key_file: PathBuf,
}

impl AuthService {
    /// Makes a key with id `kid`, writes it to `dir/auth-key.der`, and
    /// starts `command` (a `warmgate-jwks-server` without arguments) to
    /// publish it on a free loopback port, logging to
    /// `dir/jwks-server.log`.
    pub(crate) fn start(
        mut command: Command,
        dir: &Path,
        kid: &str,
    ) -> anyhow::Result<AuthService> {
        let key_file = dir.join("auth-key.der");
        let key = SigningKey::generate(kid)?;
        key.write(&key_file)?;
        command
            .arg("--key-file")
            .arg(&key_file)
            .args(["--kid", kid, "--listen", "127.0.0.1:0"]);
        let server = Server::spawn(
            command,
            "warmgate-jwks-server",
            &dir.join("jwks-server.log"),
        )?;
        Ok(AuthService {
            server,
            key,
            key_file,
        })
    }

    /// Where the JWKS is served.
    pub(crate) fn jwks_url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.server.public)
    }

    /// A token for `sub` from `issuer` to `audience`, valid for
    /// `lifetime_seconds`.
    pub(crate) fn token(
        &self,
        sub: &str,
        issuer: &str,
        audience: &str,
        lifetime_seconds: u64,
    ) -> anyhow::Result<String> {
        let claims = TokenClaims::expiring_in(sub, lifetime_seconds)
            .issuer(issuer)
            .audience(audience);
        Ok(self.key.sign(&claims)?)
    }

    /// The load generator's `--auth-*` arguments, for tokens it signs
    /// itself with this key.
    pub(crate) fn loadgen_arguments(&self, issuer: &str, audience: &str) -> Vec<String> {
        vec![
            "--auth-key-file".into(),
            self.key_file.display().to_string(),
            "--auth-kid".into(),
            self.key.kid().into(),
            "--auth-issuer".into(),
            issuer.into(),
            "--auth-audience".into(),
            audience.into(),
        ]
    }
}
