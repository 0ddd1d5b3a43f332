//! A real JWKS endpoint for the tests: an HTTP server on loopback that
//! publishes signing keys, counts its requests, and can change its keys or
//! stop answering while a test runs, and the tests' tokens and the plan
//! that checks them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use warmgate_devservers::{SigningKey, TokenClaims, jwks_document};

use crate::{Check, Plan};

/// The issuer and audience the tests' tokens carry.
pub const ISSUER: &str = "https://auth.test/";
pub const AUDIENCE: &str = "chat";

#[derive(Debug, Default)]
struct Published {
    document: Mutex<String>,
    requests: AtomicUsize,
    hang: AtomicBool,
}

/// A JWKS server on a free loopback port.
#[derive(Debug)]
pub struct JwksServer {
    url: String,
    published: Arc<Published>,
    _server: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves `keys` at `/.well-known/jwks.json`.
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let published = Arc::new(Published::default());
        *published.document.lock().unwrap() = jwks_document(keys);
        let state = Arc::clone(&published);
        let router = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let state = Arc::clone(&state);
                async move {
                    state.requests.fetch_add(1, Ordering::SeqCst);
                    if state.hang.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    let document = state.document.lock().unwrap().clone();
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        JwksServer {
            url,
            published,
            _server: server,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many times the JWKS was fetched.
    pub fn requests(&self) -> usize {
        self.published.requests.load(Ordering::SeqCst)
    }

    /// Publishes these keys from now on.
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.published.document.lock().unwrap() = jwks_document(keys);
    }

    /// Makes every later request hang (or answer again).
    pub fn hang(&self, hang: bool) {
        self.published.hang.store(hang, Ordering::SeqCst);
    }
}

/// A token for `sub` from `key`, with the tests' issuer and audience,
/// valid for `lifetime_seconds`.
pub fn token(key: &SigningKey, sub: &str, lifetime_seconds: u64) -> String {
    key.sign(
        &TokenClaims::expiring_in(sub, lifetime_seconds)
            .issuer(ISSUER)
            .audience(AUDIENCE),
    )
    .unwrap()
}

/// `plan` with the tests' JWT `[auth]` table (ES256 tokens from
/// [`token`], no leeway) on the keys at `url`, and a phase `auth` whose
/// `jwks` check `auth` loads them every `interval`.
pub fn with_jwt_auth(plan: Plan, url: &str, interval: &str) -> Plan {
    plan.table("auth", |auth| {
        auth.set("mode", "jwt")
            .set("algorithms", ["ES256"])
            .set("jwks_url", url)
            .set("issuer", ISSUER)
            .set("audience", AUDIENCE)
            .set("leeway", "0s")
    })
    .phase(
        "auth",
        [Check::jwks("auth")
            .set("timeout", "500ms")
            .set("interval", interval)],
    )
}
