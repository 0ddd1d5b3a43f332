//! Unit tests of the authenticator: token extraction, key sets, claims,
//! and the JWKS fetch and its key owner against a real HTTP server on
//! loopback.
//!
//! Long because one set of token and key helpers serves every test of the
//! crate; split by module, each part would need its own copy.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use warmgate_devservers::{SigningKey, TokenClaims, jwks_document};
use warmgate_secret::{SecretText, SecretUrl};

use crate::claims::{ClaimType, REGISTERED_CLAIMS};
use crate::keys::{KeySet, Lookup};
use crate::{
    Algorithm, AuthError, AuthSettings, Authenticator, KeySource, TokenSource, decode_token_header,
    token_from_request,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn secret_authenticator(
    issuer: Option<&str>,
    audience: Option<&str>,
    leeway: u64,
) -> Authenticator {
    Authenticator::new(AuthSettings {
        algorithms: vec![Algorithm::HS256],
        keys: KeySource::Secret(SecretText::new(String::from_utf8(SECRET.to_vec()).unwrap())),
        issuer: issuer.map(str::to_owned),
        audience: audience.map(str::to_owned),
        leeway: Duration::from_secs(leeway),
        allow_query_token: false,
    })
    .unwrap()
}

async fn verify(authenticator: &Authenticator, token: &str) -> Result<String, AuthError> {
    let request = headers(&[("authorization", &format!("Bearer {token}"))]);
    authenticator
        .authenticate(&request, None)
        .await
        .map(|identity| identity.unwrap().subject)
}

// === extraction ===

#[test]
fn the_token_is_found_in_the_header_then_the_subprotocol_then_the_query() {
    let (token, source) =
        token_from_request(&headers(&[("authorization", "Bearer a.b.c")]), None, false)
            .unwrap()
            .unwrap();
    assert_eq!(
        (token.expose(), source),
        ("a.b.c", TokenSource::AuthorizationHeader)
    );

    let offered = headers(&[("sec-websocket-protocol", "warmgate.v1, bearer.x.y.z")]);
    let (token, source) = token_from_request(&offered, None, false).unwrap().unwrap();
    assert_eq!(
        (token.expose(), source),
        ("x.y.z", TokenSource::Subprotocol)
    );

    let (token, source) = token_from_request(&HeaderMap::new(), Some("room=a&token=q.r.s"), true)
        .unwrap()
        .unwrap();
    assert_eq!(
        (token.expose(), source),
        ("q.r.s", TokenSource::QueryParameter)
    );

    assert_eq!(
        token_from_request(&HeaderMap::new(), Some("room=a"), false).unwrap(),
        None
    );
}

#[test]
fn bad_token_placements_are_refused_with_a_reason() {
    let refused =
        |map: HeaderMap, query: Option<&str>| token_from_request(&map, query, false).unwrap_err();
    assert_eq!(
        refused(HeaderMap::new(), Some("token=a.b.c")),
        AuthError::QueryTokenRefused
    );
    assert_eq!(
        refused(headers(&[("authorization", "Basic abc")]), None).code(),
        "malformed_token"
    );
    assert_eq!(
        refused(headers(&[("authorization", "Bearer ")]), None).code(),
        "malformed_token"
    );
    let two = headers(&[
        ("sec-websocket-protocol", "bearer.a, warmgate.v1"),
        ("sec-websocket-protocol", "bearer.b"),
    ]);
    assert!(refused(two, None).to_string().contains("more than one"));
    let long = format!("Bearer {}", "a".repeat(crate::MAX_TOKEN_BYTES + 1));
    assert!(
        refused(headers(&[("authorization", &long)]), None)
            .to_string()
            .contains("longer than")
    );
}

#[test]
fn a_token_never_shows_in_debug_output_or_errors() {
    let secret = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl";
    let (token, _) = token_from_request(
        &headers(&[("authorization", &format!("Bearer {secret}"))]),
        None,
        false,
    )
    .unwrap()
    .unwrap();
    assert!(!format!("{token:?}").contains("eyJ"));
    let error = decode_token_header("not.a.jwt-at-all").unwrap_err();
    assert!(!error.to_string().contains("jwt-at-all"), "{error}");
}

// === keys ===

#[test]
fn a_jwks_keeps_usable_public_keys_and_skips_the_rest() {
    let key = SigningKey::generate("k1").unwrap();
    let mut document: serde_json::Value = serde_json::from_str(&jwks_document(&[&key])).unwrap();
    let keys = document["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}));
    keys.push(json!({"kty": "RSA", "kid": "broken"}));
    keys.push(json!("not a key"));
    let set = KeySet::from_jwks(document.to_string().as_bytes(), &[Algorithm::ES256]).unwrap();
    assert_eq!(set.kids(), ["k1"]);
    assert!(
        matches!(set.lookup(Some("k1"), Algorithm::ES256), Lookup::Keys(keys) if keys.len() == 1)
    );
    assert!(matches!(
        set.lookup(Some("k2"), Algorithm::ES256),
        Lookup::UnknownKid
    ));
    // The key is EC: an RS256 token naming it finds no usable key.
    assert!(
        matches!(set.lookup(Some("k1"), Algorithm::RS256), Lookup::Keys(keys) if keys.is_empty())
    );

    for bad in [&b"{}"[..], b"[]", b"{\"keys\": []}", b"\xff"] {
        assert!(KeySet::from_jwks(bad, &[Algorithm::ES256]).is_err());
    }
    // A JWKS of only symmetric keys is refused even for HS256.
    let oct = json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}).to_string();
    assert!(KeySet::from_jwks(oct.as_bytes(), &[Algorithm::HS256]).is_err());
}

// === validation ===

#[tokio::test]
async fn a_valid_token_gives_its_subject_and_expiry() {
    let authenticator = secret_authenticator(Some("iss-a"), Some("chat"), 0);
    let exp = now() + 60;
    let token = hs256(json!({"sub": "ada", "exp": exp, "iss": "iss-a", "aud": "chat"}));
    let request = headers(&[("authorization", &format!("Bearer {token}"))]);
    let identity = authenticator
        .authenticate(&request, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.subject, "ada");
    assert_eq!(identity.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
    assert_eq!(identity.source, TokenSource::AuthorizationHeader);
}

#[tokio::test]
async fn each_kind_of_bad_token_gets_its_own_error() {
    let authenticator = secret_authenticator(Some("iss-a"), Some("chat"), 5);
    let t = now();
    let cases = [
        (
            json!({"sub": "a", "exp": t - 60, "iss": "iss-a", "aud": "chat"}),
            "token_expired",
        ),
        (
            json!({"sub": "a", "exp": t + 60, "nbf": t + 60, "iss": "iss-a", "aud": "chat"}),
            "token_not_yet_valid",
        ),
        (
            json!({"sub": "a", "exp": t + 60, "iss": "iss-b", "aud": "chat"}),
            "wrong_issuer",
        ),
        (
            json!({"sub": "a", "exp": t + 60, "aud": "chat"}),
            "wrong_issuer",
        ),
        (
            json!({"sub": "a", "exp": t + 60, "iss": "iss-a", "aud": "billing"}),
            "wrong_audience",
        ),
        (
            json!({"exp": t + 60, "iss": "iss-a", "aud": "chat"}),
            "malformed_token",
        ),
        (
            json!({"sub": "", "exp": t + 60, "iss": "iss-a", "aud": "chat"}),
            "malformed_token",
        ),
        (
            json!({"sub": "a\nb", "exp": t + 60, "iss": "iss-a", "aud": "chat"}),
            "malformed_token",
        ),
        (
            json!({"sub": "a", "iss": "iss-a", "aud": "chat"}),
            "malformed_token",
        ),
    ];
    for (claims, expected) in cases {
        let error = verify(&authenticator, &hs256(claims.clone()))
            .await
            .unwrap_err();
        assert_eq!(error.code(), expected, "{claims}: {error}");
    }
    // Within the leeway, an expired token still passes.
    let token = hs256(json!({"sub": "a", "exp": t - 2, "iss": "iss-a", "aud": "chat"}));
    assert_eq!(verify(&authenticator, &token).await.unwrap(), "a");

    // Another secret: a bad signature. Another alg: not accepted.
    let forged = jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": "a", "exp": t + 60, "iss": "iss-a", "aud": "chat"}),
        &EncodingKey::from_secret(b"another secret, another secret!!"),
    )
    .unwrap();
    assert_eq!(
        verify(&authenticator, &forged).await.unwrap_err(),
        AuthError::InvalidSignature
    );
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({"sub": "a", "exp": t + 60}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        verify(&authenticator, &hs512).await.unwrap_err().code(),
        "algorithm_not_accepted"
    );
    // `alg: none` is never accepted.
    let none = format!("{}.{}.", "eyJhbGciOiJub25lIn0", "eyJzdWIiOiJhIn0");
    assert!(verify(&authenticator, &none).await.is_err());
}

#[test]
fn no_secret_shows_in_the_debug_of_the_settings_or_the_authenticator() {
    let jwks = SecretUrl::parse(
        "https://jwks:pa55-word@auth.example.com/jwks.json?token=t0ken-value",
        &["https"],
    )
    .unwrap();
    let hmac = SecretText::new("hmac-secret-value-0123456789abcdef");
    for keys in [
        KeySource::Jwks { url: jwks.clone() },
        KeySource::Secret(hmac.clone()),
    ] {
        let settings = AuthSettings {
            algorithms: vec![Algorithm::ES256, Algorithm::HS256],
            keys,
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            allow_query_token: false,
        };
        let authenticator = Authenticator::new(settings.clone()).unwrap();
        let probe = authenticator.jwks_probe();
        let shown =
            format!("{settings:?} {settings:#?} {authenticator:?} {authenticator:#?} {probe:?}");
        for secret in ["pa55-word", "t0ken-value", "hmac-secret-value"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }
    let probe = Authenticator::new(AuthSettings {
        algorithms: vec![Algorithm::ES256],
        keys: KeySource::Jwks { url: jwks },
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
        allow_query_token: false,
    })
    .unwrap()
    .jwks_probe()
    .unwrap();
    assert_eq!(
        warmgate_probes::Probe::target(&probe),
        "https://jwks:***@auth.example.com/jwks.json?…"
    );
}

#[tokio::test]
async fn a_failed_jwks_fetch_names_the_url_without_its_secrets() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = SecretUrl::parse(
        &format!("http://jwks:pa55-word@{addr}/jwks.json?token=t0ken-value"),
        &["http"],
    )
    .unwrap();
    let mut probe = Authenticator::new(AuthSettings {
        algorithms: vec![Algorithm::ES256],
        keys: KeySource::Jwks { url },
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
        allow_query_token: false,
    })
    .unwrap()
    .jwks_probe()
    .unwrap();
    let error = warmgate_probes::Probe::probe(&mut probe).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains(&format!("GET http://jwks:***@{addr}/jwks.json?… failed")),
        "{shown}"
    );
    for secret in ["pa55-word", "t0ken-value"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

#[tokio::test]
async fn without_loaded_keys_a_jwks_authenticator_answers_unavailable() {
    let key = SigningKey::generate("k1").unwrap();
    let authenticator = Authenticator::new(AuthSettings {
        algorithms: vec![Algorithm::ES256],
        keys: KeySource::Jwks {
            url: SecretUrl::parse("http://127.0.0.1:9/jwks.json", &["http"]).unwrap(),
        },
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
        allow_query_token: false,
    })
    .unwrap();
    let token = key.sign(&TokenClaims::expiring_in("ada", 60)).unwrap();
    let error = verify(&authenticator, &token).await.unwrap_err();
    assert_eq!(error, AuthError::KeysUnavailable);
    assert!(error.is_unavailable());
    assert!(authenticator.jwks_probe().is_some());
    assert!(Authenticator::disabled().jwks_probe().is_none());
}

/// A JWKS endpoint on loopback, in plain HTTP/1.1, that counts its
/// requests and answers only while it is open.
struct GatedJwks {
    url: String,
    document: std::sync::Arc<std::sync::Mutex<String>>,
    requests: tokio::sync::watch::Receiver<usize>,
    open: tokio::sync::watch::Sender<bool>,
}

impl GatedJwks {
    async fn start(keys: &[&SigningKey]) -> GatedJwks {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let document = std::sync::Arc::new(std::sync::Mutex::new(jwks_document(keys)));
        let (requests_tx, requests) = tokio::sync::watch::channel(0);
        let (open, open_rx) = tokio::sync::watch::channel(true);
        let served = std::sync::Arc::clone(&document);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let served = std::sync::Arc::clone(&served);
                let requests_tx = requests_tx.clone();
                let mut open_rx = open_rx.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        let read = stream.read(&mut buffer).await.unwrap();
                        if read == 0 {
                            return;
                        }
                        head.extend_from_slice(&buffer[..read]);
                    }
                    requests_tx.send_modify(|count| *count += 1);
                    open_rx.wait_for(|open| *open).await.unwrap();
                    let body = served.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(response.as_bytes()).await.unwrap();
                });
            }
        });
        GatedJwks {
            url,
            document,
            requests,
            open,
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.document.lock().unwrap() = jwks_document(keys);
    }

    async fn until_requests(&mut self, count: usize) {
        self.requests.wait_for(|seen| *seen >= count).await.unwrap();
    }

    fn requests(&self) -> usize {
        *self.requests.borrow()
    }
}

#[tokio::test]
async fn requests_meeting_an_unknown_key_id_during_a_refresh_wait_for_it_instead_of_being_refused()
{
    let old_key = SigningKey::generate("2026-10").unwrap();
    let new_key = SigningKey::generate("2026-11").unwrap();
    let unpublished = SigningKey::generate("never-published").unwrap();
    let mut jwks = GatedJwks::start(&[&old_key]).await;
    let authenticator = Authenticator::new(AuthSettings {
        algorithms: vec![Algorithm::ES256],
        keys: KeySource::Jwks {
            url: SecretUrl::parse(&jwks.url, &["http"]).unwrap(),
        },
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
        allow_query_token: false,
    })
    .unwrap();
    let mut probe = authenticator.jwks_probe().unwrap();
    warmgate_probes::Probe::probe(&mut probe).await.unwrap();
    assert_eq!(jwks.requests(), 1);

    // The auth service rotates its key and is slow to answer. The first
    // token under the new key starts a refresh.
    jwks.publish(&[&old_key, &new_key]);
    jwks.open.send_replace(false);
    let first = {
        let authenticator = authenticator.clone();
        let token = new_key.sign(&TokenClaims::expiring_in("ada", 60)).unwrap();
        tokio::spawn(async move { verify(&authenticator, &token).await })
    };
    jwks.until_requests(2).await;
    // A second one arrives while that refresh is under way. This test
    // runs on one thread: yielding lets it run until it waits for the
    // refresh (it does no IO before that).
    let second = {
        let authenticator = authenticator.clone();
        let token = new_key.sign(&TokenClaims::expiring_in("bob", 60)).unwrap();
        tokio::spawn(async move { verify(&authenticator, &token).await })
    };
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert!(!second.is_finished(), "it waits for the refresh");
    jwks.open.send_replace(true);
    assert_eq!(first.await.unwrap().unwrap(), "ada");
    assert_eq!(second.await.unwrap().unwrap(), "bob");
    assert_eq!(jwks.requests(), 2, "one fetch served both");

    // Within the minute, a kid nobody publishes is refused without a fetch.
    let forged = unpublished
        .sign(&TokenClaims::expiring_in("mallory", 60))
        .unwrap();
    assert!(matches!(
        verify(&authenticator, &forged).await,
        Err(AuthError::UnknownKey { .. })
    ));
    assert_eq!(jwks.requests(), 2);
}

// === claim types ===

/// Every JSON type but the right ones, for a claim of type `expected`.
fn wrong_values(expected: ClaimType) -> Vec<serde_json::Value> {
    let mut values = vec![
        json!(null),
        json!(true),
        json!({"value": 1}),
        json!(["a"]),
        json!("1700000000"),
        json!(1_700_000_000_u64),
    ];
    values.retain(|value| match expected {
        ClaimType::NumericDate => !value.is_u64(),
        ClaimType::String => !value.is_string(),
        ClaimType::StringOrStrings => !value.is_string() && !value.is_array(),
    });
    match expected {
        ClaimType::NumericDate => values.extend([json!(-1), json!(1.5), json!(1e30)]),
        ClaimType::String => {}
        ClaimType::StringOrStrings => values.extend([json!(["chat", 1]), json!([null])]),
    }
    values
}

#[tokio::test]
async fn a_future_nbf_written_as_a_string_is_malformed_not_skipped() {
    let authenticator = secret_authenticator(None, None, 0);
    let t = now();
    let as_string =
        hs256(json!({"sub": "u1", "exp": t + 300, "nbf": (t + 100_000_000).to_string()}));
    let error = verify(&authenticator, &as_string).await.unwrap_err();
    assert_eq!(error.code(), "malformed_token", "{error}");
    assert!(
        error.to_string().contains("`nbf` claim is a string"),
        "{error}"
    );
    let as_number = hs256(json!({"sub": "u1", "exp": t + 300, "nbf": t + 100_000_000}));
    assert_eq!(
        verify(&authenticator, &as_number).await.unwrap_err(),
        AuthError::TokenNotYetValid
    );
}

#[tokio::test]
async fn every_registered_claim_of_a_wrong_json_type_is_malformed() {
    let authenticator = secret_authenticator(Some("iss-a"), Some("chat"), 0);
    let t = now();
    let valid = json!({
        "sub": "ada", "exp": t + 60, "nbf": t - 10, "iat": t - 10,
        "iss": "iss-a", "aud": "chat", "jti": "j-1",
    });
    assert_eq!(
        verify(&authenticator, &hs256(valid.clone())).await.unwrap(),
        "ada"
    );
    let mut n_cases = 0;
    for (name, expected) in REGISTERED_CLAIMS {
        for wrong in wrong_values(expected) {
            let mut claims = valid.clone();
            claims[name] = wrong.clone();
            let error = verify(&authenticator, &hs256(claims)).await.unwrap_err();
            assert_eq!(error.code(), "malformed_token", "{name} = {wrong}: {error}");
            assert!(
                error.to_string().contains(&format!("`{name}` claim")),
                "{error}"
            );
            n_cases += 1;
        }
    }
    assert!(n_cases >= 7 * 5, "{n_cases}");
    // The type is checked first: an expired token with a wrong-typed
    // claim is malformed too, and so is one with no issuer configured.
    let mut expired = valid.clone();
    expired["exp"] = json!(t - 600);
    expired["iss"] = json!(7);
    let error = verify(&authenticator, &hs256(expired)).await.unwrap_err();
    assert_eq!(error.code(), "malformed_token", "{error}");
    let lenient = secret_authenticator(None, None, 0);
    for (name, value) in [
        ("iss", json!(7)),
        ("aud", json!(false)),
        ("jti", json!(null)),
    ] {
        let mut claims = valid.clone();
        claims[name] = value;
        let error = verify(&lenient, &hs256(claims)).await.unwrap_err();
        assert_eq!(error.code(), "malformed_token", "{name}: {error}");
    }
}

#[tokio::test]
async fn a_wrong_type_is_named_in_words_a_user_can_act_on() {
    let authenticator = secret_authenticator(None, None, 0);
    let t = now();
    for (name, value, found) in [
        (
            "aud",
            json!(["chat", 1]),
            "an array with an item that is not a string",
        ),
        ("iss", json!(["iss-a"]), "an array,"),
        (
            "exp",
            json!(2_000_000_000.0),
            "a number written with a decimal point or an exponent",
        ),
        ("exp", json!(1.5e9 + 0.5), "a number with a fraction"),
        ("exp", json!(1e30), "a number out of range"),
        ("nbf", json!(-5), "a negative integer"),
    ] {
        let mut claims = json!({"sub": "ada", "exp": t + 60});
        claims[name] = value;
        let error = verify(&authenticator, &hs256(claims)).await.unwrap_err();
        assert!(error.to_string().contains(found), "{name}: {error}");
    }
}

#[tokio::test]
async fn an_audience_array_is_accepted_when_it_includes_ours() {
    let authenticator = secret_authenticator(None, Some("chat"), 0);
    let t = now();
    let token = hs256(json!({"sub": "ada", "exp": t + 60, "aud": ["billing", "chat"]}));
    assert_eq!(verify(&authenticator, &token).await.unwrap(), "ada");
    let token = hs256(json!({"sub": "ada", "exp": t + 60, "aud": ["billing"]}));
    assert_eq!(
        verify(&authenticator, &token).await.unwrap_err(),
        AuthError::WrongAudience
    );
    // `iss` is one string (RFC 7519 §4.1.1), never a list to pick from.
    let issuer = secret_authenticator(Some("iss-a"), None, 0);
    let token = hs256(json!({"sub": "ada", "exp": t + 60, "iss": ["iss-a"]}));
    assert_eq!(
        verify(&issuer, &token).await.unwrap_err().code(),
        "malformed_token"
    );
}

/// One registered claim in a generated claim set.
#[derive(Debug, Clone)]
enum ClaimCase {
    Absent,
    /// The right type, and a value the rules accept.
    Good,
    /// The right type, and a value the rules refuse (for claims that have
    /// such values).
    BadValue,
    /// A value of a wrong JSON type.
    WrongType(serde_json::Value),
}

fn claim_case(expected: ClaimType) -> impl proptest::strategy::Strategy<Value = ClaimCase> {
    use proptest::prelude::*;
    let wrong = wrong_values(expected);
    prop_oneof![
        Just(ClaimCase::Absent),
        Just(ClaimCase::Good),
        Just(ClaimCase::BadValue),
        proptest::sample::select(wrong).prop_map(ClaimCase::WrongType),
    ]
}

/// The value a case gives claim `name` at time `t`: `None` when absent.
fn claim_value(name: &str, case: &ClaimCase, t: u64) -> Option<serde_json::Value> {
    let good = match name {
        "exp" => json!(t + 600),
        "nbf" | "iat" => json!(t - 600),
        "iss" => json!("iss-a"),
        "aud" => json!(["other", "chat"]),
        "sub" => json!("ada"),
        _ => json!("j-1"),
    };
    let bad = match name {
        "exp" => json!(t - 600),
        "nbf" => json!(t + 600),
        "iss" => json!("iss-b"),
        "aud" => json!("billing"),
        "sub" => json!(""),
        // `iat` and `jti` have no value the rules refuse.
        _ => good.clone(),
    };
    match case {
        ClaimCase::Absent => None,
        ClaimCase::Good => Some(good),
        ClaimCase::BadValue => Some(bad),
        ClaimCase::WrongType(value) => Some(value.clone()),
    }
}

proptest::proptest! {
    /// A token is admitted exactly when every registered claim present has
    /// the right type and an accepted value, and `sub`, `exp`, `iss` and
    /// `aud` (the last two configured) are present; a wrong type is always
    /// `malformed_token`, whatever the other claims say.
    #[test]
    fn a_token_is_admitted_only_when_every_registered_claim_is_right(
        cases in proptest::collection::vec(
            proptest::strategy::Strategy::prop_flat_map(
                proptest::sample::select(REGISTERED_CLAIMS.to_vec()),
                |(name, expected)| (proptest::strategy::Just(name), claim_case(expected)),
            ),
            0..12,
        )
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let authenticator = secret_authenticator(Some("iss-a"), Some("chat"), 5);
        let t = now();
        // Later cases of a name replace earlier ones, as in the claim set.
        let mut chosen: std::collections::BTreeMap<&str, ClaimCase> =
            REGISTERED_CLAIMS.iter().map(|(name, _)| (*name, ClaimCase::Absent)).collect();
        for (name, case) in cases {
            chosen.insert(name, case);
        }
        let mut claims = serde_json::Map::new();
        claims.insert("room".to_owned(), json!("lobby"));
        for (name, case) in &chosen {
            if let Some(value) = claim_value(name, case, t) {
                claims.insert((*name).to_owned(), value);
            }
        }
        let outcome = runtime.block_on(verify(&authenticator, &hs256(claims.clone().into())));

        let wrong_type = chosen.values().any(|case| matches!(case, ClaimCase::WrongType(_)));
        let refusable = |name: &str| !matches!(name, "iat" | "jti");
        let bad_value = chosen
            .iter()
            .any(|(name, case)| matches!(case, ClaimCase::BadValue) && refusable(name));
        let missing = ["sub", "exp", "iss", "aud"]
            .iter()
            .any(|name| matches!(chosen[name], ClaimCase::Absent));
        let admissible = !wrong_type && !bad_value && !missing;
        proptest::prop_assert_eq!(
            outcome.is_ok(),
            admissible,
            "claims {} gave {:?}",
            serde_json::Value::from(claims.clone()),
            outcome
        );
        if wrong_type {
            proptest::prop_assert_eq!(outcome.unwrap_err().code(), "malformed_token");
        }
    }
}

/// An HS256 token over `claims`, written as they are (duplicates kept).
fn hs256_raw(claims: &str) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let message = format!(
        "{}.{}",
        encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        encode(claims.as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn a_registered_claim_given_twice_is_malformed_whichever_value_comes_last() {
    let authenticator = secret_authenticator(None, None, 0);
    let t = now();
    let plain = hs256_raw(&format!(r#"{{"sub":"ada","exp":{}}}"#, t + 60));
    assert_eq!(verify(&authenticator, &plain).await.unwrap(), "ada");
    for claims in [
        format!(
            r#"{{"sub":"ada","exp":{},"nbf":{},"nbf":{}}}"#,
            t + 60,
            t + 100_000,
            t
        ),
        format!(
            r#"{{"sub":"ada","exp":{},"nbf":{},"nbf":"{}"}}"#,
            t + 60,
            t,
            t + 100_000
        ),
        format!(r#"{{"sub":"ada","exp":{},"exp":{}}}"#, t - 600, t + 60),
        format!(r#"{{"sub":"mallory","sub":"ada","exp":{}}}"#, t + 60),
    ] {
        let error = verify(&authenticator, &hs256_raw(&claims))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "malformed_token", "{claims}: {error}");
    }
}

#[tokio::test]
async fn a_repeated_iat_or_jti_is_malformed_too_and_a_repeated_private_claim_is_not() {
    let authenticator = secret_authenticator(None, None, 0);
    let t = now();
    for (claims, expected) in [
        (
            format!(r#"{{"sub":"ada","exp":{},"iat":{t},"iat":"x"}}"#, t + 60),
            Err("`iat` claim is given more than once"),
        ),
        (
            format!(r#"{{"sub":"ada","exp":{},"jti":"a","jti":"b"}}"#, t + 60),
            Err("`jti` claim is given more than once"),
        ),
        (
            format!(r#"{{"sub":"ada","exp":{},"room":"a","room":"b"}}"#, t + 60),
            Ok("ada"),
        ),
    ] {
        match (verify(&authenticator, &hs256_raw(&claims)).await, expected) {
            (Ok(subject), Ok(expected)) => assert_eq!(subject, expected),
            (Err(error), Err(expected)) => {
                assert_eq!(error.code(), "malformed_token");
                assert!(error.to_string().contains(expected), "{claims}: {error}");
            }
            (outcome, _) => panic!("{claims}: {outcome:?}"),
        }
    }
}

// === one writer for the key set ===

/// A key source whose every fetch is answered by the test: each fetch
/// hands the test a sender for its result, in the order they start.
struct ScriptedKeys {
    fetches_tx: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<KeySet>>,
}

impl crate::jwks::KeyFetcher for ScriptedKeys {
    fn target(&self) -> &str {
        "scripted"
    }

    fn fetch<'a>(
        &'a self,
        _accepted: &'a [Algorithm],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<KeySet, AuthError>> + Send + 'a>>
    {
        Box::pin(async move {
            let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
            self.fetches_tx.send(answer_tx).unwrap();
            answer_rx
                .await
                .map_err(|_| AuthError::Jwks("the script dropped this fetch".to_owned()))
        })
    }
}

fn scripted_authenticator() -> (Authenticator, Fetches) {
    let (fetches_tx, fetches_rx) = tokio::sync::mpsc::unbounded_channel();
    let settings = AuthSettings {
        algorithms: vec![Algorithm::ES256],
        keys: KeySource::Jwks {
            url: SecretUrl::parse("http://auth.test/jwks.json", &["http"]).unwrap(),
        },
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
        allow_query_token: false,
    };
    let authenticator =
        Authenticator::with_fetcher(settings, Some(Box::new(ScriptedKeys { fetches_tx })));
    (authenticator, fetches_rx)
}

fn key_set(keys: &[&SigningKey]) -> KeySet {
    KeySet::from_jwks(jwks_document(keys).as_bytes(), &[Algorithm::ES256]).unwrap()
}

type Fetches = tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<KeySet>>;

/// The check's first attempt, answered with `keys`; the probe, for more.
async fn first_load(
    authenticator: &Authenticator,
    fetches: &mut Fetches,
    keys: &[&SigningKey],
) -> crate::JwksProbe {
    let mut probe = authenticator.jwks_probe().unwrap();
    let attempt = tokio::spawn(async move {
        let outcome = warmgate_probes::Probe::probe(&mut probe).await;
        (probe, outcome)
    });
    fetches.recv().await.unwrap().send(key_set(keys)).unwrap();
    let (probe, outcome) = attempt.await.unwrap();
    outcome.unwrap();
    probe
}

/// Lets every task that can run, run: the scripted source does no IO, so
/// on this one-threaded runtime a few rounds reach every await.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_check_fetch_that_started_before_a_key_rotation_never_puts_the_old_keys_back() {
    let old_key = SigningKey::generate("2026-10").unwrap();
    let new_key = SigningKey::generate("2026-11").unwrap();
    let (authenticator, mut fetches) = scripted_authenticator();
    // The first attempt of the check loads the old key.
    let mut probe = first_load(&authenticator, &mut fetches, &[&old_key]).await;

    // The next attempt starts a fetch; the auth service answers it with
    // the document it had before it rotated.
    let attempt = tokio::spawn(async move { warmgate_probes::Probe::probe(&mut probe).await });
    let stale = fetches.recv().await.unwrap();

    // A token under the new key meets an unknown kid meanwhile. Its
    // refresh waits for the fetch under way: no second fetch runs beside it.
    let first = {
        let authenticator = authenticator.clone();
        let token = new_key.sign(&TokenClaims::expiring_in("ada", 60)).unwrap();
        tokio::spawn(async move { verify(&authenticator, &token).await })
    };
    settle().await;
    assert!(fetches.try_recv().is_err(), "one fetch at a time");
    assert!(!first.is_finished(), "the handshake waits for the keys");

    // The stale answer lands first; then the unknown kid gets its own
    // fetch, which sees the rotation.
    stale.send(key_set(&[&old_key])).unwrap();
    attempt.await.unwrap().unwrap();
    fetches
        .recv()
        .await
        .unwrap()
        .send(key_set(&[&old_key, &new_key]))
        .unwrap();
    assert_eq!(first.await.unwrap().unwrap(), "ada");

    // The new key stays: a second token under it needs no fetch, and an
    // unknown-kid refresh within the minute could not have brought it back.
    let second = new_key.sign(&TokenClaims::expiring_in("bob", 60)).unwrap();
    assert_eq!(verify(&authenticator, &second).await.unwrap(), "bob");
    assert!(fetches.try_recv().is_err());
}

#[tokio::test]
async fn a_fetch_nobody_waits_for_any_more_is_dropped_and_never_stored() {
    let old_key = SigningKey::generate("2026-10").unwrap();
    let new_key = SigningKey::generate("2026-11").unwrap();
    let (authenticator, mut fetches) = scripted_authenticator();
    let mut probe = first_load(&authenticator, &mut fetches, &[&new_key]).await;

    // An attempt past its timeout is cancelled: its fetch is dropped with
    // it, so an answer that comes later cannot be stored.
    let attempt = tokio::spawn(async move { warmgate_probes::Probe::probe(&mut probe).await });
    let late = fetches.recv().await.unwrap();
    attempt.abort();
    let _ = attempt.await;
    settle().await;
    assert!(late.is_closed(), "the owner dropped the abandoned fetch");
    assert!(late.send(key_set(&[&old_key])).is_err());
    let token = new_key.sign(&TokenClaims::expiring_in("ada", 60)).unwrap();
    assert_eq!(verify(&authenticator, &token).await.unwrap(), "ada");
    assert!(fetches.try_recv().is_err());
}

#[tokio::test]
async fn unknown_key_ids_fetch_at_most_once_a_minute_and_requests_queued_behind_a_fetch_share_it() {
    let old_key = SigningKey::generate("2026-10").unwrap();
    let key = SigningKey::generate("2026-11").unwrap();
    let unpublished = SigningKey::generate("never-published").unwrap();
    let (authenticator, mut fetches) = scripted_authenticator();
    first_load(&authenticator, &mut fetches, &[&old_key]).await;

    // A token under a key not loaded yet starts a fetch.
    let first = {
        let authenticator = authenticator.clone();
        let token = key.sign(&TokenClaims::expiring_in("ada", 60)).unwrap();
        tokio::spawn(async move { verify(&authenticator, &token).await })
    };
    let answer = fetches.recv().await.unwrap();
    // Two more meet unknown kids while it runs: they queue behind it.
    let queued: Vec<_> = [&key, &unpublished]
        .into_iter()
        .map(|signer| {
            let authenticator = authenticator.clone();
            let token = signer.sign(&TokenClaims::expiring_in("bob", 60)).unwrap();
            tokio::spawn(async move { verify(&authenticator, &token).await })
        })
        .collect();
    settle().await;
    answer.send(key_set(&[&old_key, &key])).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), "ada");
    let mut outcomes = Vec::new();
    for task in queued {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(outcomes[0].as_deref(), Ok("bob"));
    assert!(matches!(outcomes[1], Err(AuthError::UnknownKey { .. })));
    // Within the minute, no fetch for them: one fetch served all three.
    assert!(fetches.try_recv().is_err());
}

#[test]
fn every_code_a_client_can_get_is_a_refusal_code_and_the_list_has_no_other() {
    let refusals = [
        AuthError::MissingToken,
        AuthError::malformed("no dots"),
        AuthError::TokenExpired,
        AuthError::TokenNotYetValid,
        AuthError::InvalidSignature,
        AuthError::UnknownKey { kid: "k".into() },
        AuthError::AlgorithmNotAccepted {
            algorithm: "HS256".into(),
            accepted: "RS256".into(),
        },
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::QueryTokenRefused,
        AuthError::KeysUnavailable,
    ];
    let codes: Vec<&str> = refusals.iter().map(AuthError::code).collect();
    assert_eq!(codes, AuthError::REFUSAL_CODES);
    // The one code no client gets: a readiness check's failure.
    assert!(!AuthError::REFUSAL_CODES.contains(&AuthError::Jwks("down".into()).code()));
}
