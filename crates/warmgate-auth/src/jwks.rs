//! Fetching the JWKS, the one owner of the loaded key set, and the `jwks`
//! readiness check that keeps the keys loaded.
//!
//! The check is how the keys get loaded: its first success stores them, so
//! the gate cannot be ready before tokens can be checked, and each later
//! success (every check `interval`) refreshes them. A failed fetch keeps
//! the keys already loaded, so a hung auth service makes the check fail
//! without refusing clients whose keys are known.
//!
//! Invariant: one writer. Only the key owner task ([`KeyOwner`]) stores a
//! key set, and it runs one fetch at a time; the check's attempts and the
//! refreshes for an unknown `kid` are requests sent to it. So a fetch that
//! started before a key rotation can never land after one that started
//! after it, and put the old keys back. A fetch whose every requester gave
//! up (an attempt past its timeout, a handshake past its 2 s) is dropped,
//! never stored later.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use warmgate_probes::{Probe, ProbeError, ProbeFuture};
use warmgate_secret::SecretUrl;

use crate::AuthError;
use crate::authenticator::{Inner, UNKNOWN_KEY_REFRESH_INTERVAL};
use crate::keys::{KeySet, MAX_JWKS_BYTES};
use jsonwebtoken::Algorithm;

/// The most refresh requests queued for the key owner; a handshake meeting
/// a full queue waits for room within its own bound.
const MAX_QUEUED_REFRESHES: usize = 256;

/// A fetch of the key set: the JWKS over HTTP, or a scripted source in
/// tests.
pub(crate) trait KeyFetcher: Send + Sync + 'static {
    /// The source as logs may show it.
    fn target(&self) -> &str;
    /// One fetch, keeping the keys usable with `accepted`. Has no timeout
    /// of its own: the key owner drops it when nobody waits for it.
    fn fetch<'a>(
        &'a self,
        accepted: &'a [Algorithm],
    ) -> Pin<Box<dyn Future<Output = Result<KeySet, AuthError>> + Send + 'a>>;
}

/// An HTTP client for one JWKS URL. The URL is read only when the request
/// is built, so that nothing else (reqwest's `Url` prints its password and
/// query in `Debug`) ever holds it.
pub(crate) struct JwksClient {
    client: reqwest::Client,
    url: SecretUrl,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("url", &self.url)
            .finish()
    }
}

impl JwksClient {
    pub(crate) fn new(url: &SecretUrl) -> Result<JwksClient, AuthError> {
        // A parse error never repeats the text.
        reqwest::Url::parse(url.expose())
            .map_err(|error| AuthError::Jwks(format!("invalid JWKS URL {url}: {error}")))?;
        let client = warmgate_outbound::fetch_client()
            .map_err(|error| AuthError::Jwks(format!("cannot build the JWKS client: {error}")))?;
        Ok(JwksClient {
            client,
            url: url.clone(),
        })
    }

    /// The URL as logs may show it: no password, no query.
    pub(crate) fn target(&self) -> &str {
        self.url.redacted()
    }

    /// Fetches and reads the document. Has no timeout of its own: callers
    /// bound it.
    pub(crate) async fn fetch(&self, accepted: &[Algorithm]) -> Result<KeySet, AuthError> {
        let failed = |what: String| AuthError::Jwks(format!("GET {} {what}", self.url));
        let mut response = self
            .client
            .get(self.url.expose())
            .send()
            .await
            .map_err(|error| failed(format!("failed: {}", innermost(error))))?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "answered HTTP {}, expected 200 with a JWKS",
                response.status().as_u16()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            failed(format!(
                "failed while reading the body: {}",
                innermost(error)
            ))
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(failed(format!(
                    "returned more than {} KiB, which is no JWKS",
                    MAX_JWKS_BYTES / 1024
                )));
            }
        }
        KeySet::from_jwks(&body, accepted)
            .map_err(|error| AuthError::Jwks(format!("{} from {}", error, self.url)))
    }
}

impl KeyFetcher for JwksClient {
    fn target(&self) -> &str {
        JwksClient::target(self)
    }

    fn fetch<'a>(
        &'a self,
        accepted: &'a [Algorithm],
    ) -> Pin<Box<dyn Future<Output = Result<KeySet, AuthError>> + Send + 'a>> {
        Box::pin(JwksClient::fetch(self, accepted))
    }
}

/// The innermost cause of `error`, with its URL dropped first: reqwest's
/// own message repeats the whole URL, query included.
fn innermost(error: reqwest::Error) -> String {
    warmgate_outbound::deepest_cause(&error.without_url())
}

// === impl KeyOwner ===

/// Why the keys are fetched.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    /// An attempt of the `jwks` check.
    Interval,
    /// A token named `kid`, which the loaded keys do not have, at `met_at`.
    UnknownKid { kid: String, met_at: Instant },
}

#[derive(Debug)]
struct Request {
    trigger: Trigger,
    reply_tx: oneshot::Sender<Result<(), AuthError>>,
}

/// The sending side of the key owner: what the check's attempts and the
/// handshakes hold. The owner task starts with the first request (so
/// building an authenticator needs no runtime) and ends when the
/// authenticator is dropped.
pub(crate) struct KeyRefresher {
    target: String,
    requests_tx: mpsc::Sender<Request>,
    /// The owner and its inbox until the first request spawns it.
    unstarted: Mutex<Option<(KeyOwner, mpsc::Receiver<Request>)>>,
}

impl std::fmt::Debug for KeyRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRefresher")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl KeyRefresher {
    /// A refresher whose owner stores what `fetcher` returns into `keys`.
    pub(crate) fn new(
        fetcher: Box<dyn KeyFetcher>,
        keys: Arc<ArcSwapOption<KeySet>>,
        accepted: Vec<Algorithm>,
    ) -> KeyRefresher {
        let (requests_tx, requests_rx) = mpsc::channel(MAX_QUEUED_REFRESHES);
        let target = fetcher.target().to_owned();
        let owner = KeyOwner {
            fetcher,
            keys,
            accepted,
            last_fetch_started: None,
            last_unknown_kid_fetch: None,
        };
        KeyRefresher {
            target,
            requests_tx,
            unstarted: Mutex::new(Some((owner, requests_rx))),
        }
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Asks the owner to bring the keys up to date for `trigger`, and waits
    /// for the answer. Dropping the future withdraws the request; a fetch
    /// that only it waited for is then dropped too.
    pub(crate) async fn refresh(&self, trigger: Trigger) -> Result<(), AuthError> {
        let unstarted = self
            .unstarted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((owner, requests_rx)) = unstarted {
            tokio::spawn(owner.run(requests_rx));
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let gone = || AuthError::Jwks("the JWKS key owner has stopped".to_owned());
        self.requests_tx
            .send(Request { trigger, reply_tx })
            .await
            .map_err(|_| gone())?;
        reply_rx.await.map_err(|_| gone())?
    }
}

/// The one writer of the key set: answers refresh requests one at a time.
/// - An attempt of the check always fetches.
/// - An unknown `kid` is answered without a fetch when a fetch that started
///   after the `kid` was met has completed (its keys are what there is),
///   or when the last fetch for an unknown `kid` started less than
///   [`UNKNOWN_KEY_REFRESH_INTERVAL`] ago; otherwise it fetches.
struct KeyOwner {
    fetcher: Box<dyn KeyFetcher>,
    keys: Arc<ArcSwapOption<KeySet>>,
    accepted: Vec<Algorithm>,
    /// When the last completed fetch started.
    last_fetch_started: Option<Instant>,
    /// When the last fetch for an unknown `kid` started.
    last_unknown_kid_fetch: Option<Instant>,
}

impl KeyOwner {
    async fn run(mut self, mut requests_rx: mpsc::Receiver<Request>) {
        while let Some(Request {
            trigger,
            mut reply_tx,
        }) = requests_rx.recv().await
        {
            if reply_tx.is_closed() {
                continue;
            }
            let cause = match &trigger {
                Trigger::Interval => "interval",
                Trigger::UnknownKid { kid, met_at } => {
                    let fresh = self
                        .last_fetch_started
                        .is_some_and(|started| started >= *met_at);
                    let limited = self.last_unknown_kid_fetch.is_some_and(|started| {
                        met_at.saturating_duration_since(started) < UNKNOWN_KEY_REFRESH_INTERVAL
                    });
                    if fresh || limited {
                        let _ = reply_tx.send(Ok(()));
                        continue;
                    }
                    self.last_unknown_kid_fetch = Some(Instant::now());
                    tracing::info!(
                        kid = kid.as_str(),
                        url = self.fetcher.target(),
                        "a token names an unknown key id; refreshing the JWKS"
                    );
                    "unknown_kid"
                }
            };
            let started = Instant::now();
            let outcome = tokio::select! {
                outcome = self.fetch_and_store(cause) => outcome,
                () = reply_tx.closed() => {
                    tracing::debug!(
                        url = self.fetcher.target(),
                        cause,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "JWKS fetch abandoned: nobody waits for it any more"
                    );
                    continue;
                }
            };
            self.last_fetch_started = Some(started);
            let _ = reply_tx.send(outcome);
        }
    }

    /// Fetches the key set and stores it; logs when the key ids change.
    async fn fetch_and_store(&self, cause: &'static str) -> Result<(), AuthError> {
        let keys = self.fetcher.fetch(&self.accepted).await?;
        let new_kids: Vec<String> = keys.kids().into_iter().map(str::to_owned).collect();
        let previous = self.keys.swap(Some(Arc::new(keys)));
        let old_kids: Option<Vec<String>> = previous
            .as_ref()
            .map(|old| old.kids().into_iter().map(str::to_owned).collect());
        if old_kids.as_ref() != Some(&new_kids) {
            tracing::info!(
                url = self.fetcher.target(),
                trigger = cause,
                keys = new_kids.len(),
                kids = ?new_kids,
                first_load = old_kids.is_none(),
                "JWKS keys loaded"
            );
        }
        Ok(())
    }
}

// === impl JwksProbe ===

/// The `jwks` readiness check: one attempt asks the key owner for a fetch.
#[derive(Debug)]
pub struct JwksProbe {
    pub(crate) inner: Arc<Inner>,
}

impl Probe for JwksProbe {
    fn kind(&self) -> &'static str {
        "jwks"
    }

    fn target(&self) -> String {
        self.inner
            .jwks
            .as_ref()
            .map_or_else(String::new, |jwks| jwks.target().to_owned())
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let Some(jwks) = &self.inner.jwks else {
                return Ok(());
            };
            jwks.refresh(Trigger::Interval)
                .await
                .map_err(|error| ProbeError::Failed {
                    message: error.to_string(),
                })
        })
    }
}
