//! A stand-in auth service for `cargo xtask chaos` and `cargo xtask soak`:
//! it publishes one ES256 public key as a JWKS document. Usage:
//! `warmgate-jwks-server --key-file FILE --kid KID [--listen 127.0.0.1:0]`.
//!
//! The key file is PKCS#8 DER, as `warmgate_devservers::SigningKey::write`
//! leaves it; the caller signs the clients' tokens with the same key. The
//! program serves `GET /.well-known/jwks.json` and prints
//! `warmgate-jwks-server: serving http://ADDR` once it listens, so the
//! caller learns the port. It is a process of its own so that the chaos run
//! can hang it (SIGSTOP) and wake it (SIGCONT) like a real auth service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use clap::Parser;
use warmgate_devservers::{SigningKey, jwks_document};

#[derive(Debug, Parser)]
#[command(
    name = "warmgate-jwks-server",
    about = "Serves one signing key's public half as a JWKS document"
)]
struct Arguments {
    /// The signing key, PKCS#8 DER.
    #[arg(long)]
    key_file: PathBuf,
    /// The key id the document gives the key (tokens name it in `kid`).
    #[arg(long)]
    kid: String,
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let key = SigningKey::read(&arguments.kid, &arguments.key_file)
        .with_context(|| format!("cannot read the key {}", arguments.key_file.display()))?;
    let document = jwks_document(&[&key]);
    let router = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let document = document.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], document) }
        }),
    );
    warmgate_bench_servers::serve("warmgate-jwks-server", arguments.listen, router).await
}
