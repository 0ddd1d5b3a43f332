//! Unit tests of `SecretUrl` and `SecretText`: nothing they print shows a secret.

use super::*;

const HTTP_SCHEMES: [&str; 2] = ["http", "https"];

#[test]
fn a_url_shows_neither_its_password_nor_its_query() {
    let url = SecretUrl::parse(
        "https://user:pa55-word@auth.example.com:8443/jwks.json?token=t0ken-value#frag",
        &HTTP_SCHEMES,
    )
    .unwrap();
    let shown = "https://user:***@auth.example.com:8443/jwks.json?…";
    assert_eq!(url.redacted(), shown);
    assert_eq!(url.to_string(), shown);
    assert_eq!(format!("{url:?}"), format!("SecretUrl({shown:?})"));
    assert_eq!(
        format!("{url:#?}"),
        format!("SecretUrl(\n    {shown:?},\n)")
    );
    assert_eq!(
        url.expose(),
        "https://user:pa55-word@auth.example.com:8443/jwks.json?token=t0ken-value#frag"
    );
}

#[test]
fn a_url_without_secrets_is_shown_as_it_is() {
    let url = SecretUrl::parse("redis://127.0.0.1:6379/0", &["redis"]).unwrap();
    assert_eq!(url.redacted(), "redis://127.0.0.1:6379/0");
}

#[test]
fn errors_never_repeat_the_text() {
    for text in [
        "ftp://user:pa55-word@host/x?token=t0ken-value",
        "http://user:pa55-word@/x?token=t0ken-value",
        "not a url pa55-word t0ken-value",
        "http://user:pa55-word@[::1/x?token=t0ken-value",
    ] {
        let error = SecretUrl::parse(text, &HTTP_SCHEMES).unwrap_err();
        assert!(
            !error.contains("pa55-word") && !error.contains("t0ken-value"),
            "{error}"
        );
    }
}

#[test]
fn joining_a_path_keeps_the_query_and_the_redaction() {
    let base = SecretUrl::parse(
        "http://otlp:pa55-word@collector:4318/?token=t0ken-value",
        &HTTP_SCHEMES,
    )
    .unwrap();
    let joined = base.join_path("/v1/traces");
    assert_eq!(
        joined.expose(),
        "http://otlp:pa55-word@collector:4318/v1/traces?token=t0ken-value"
    );
    assert_eq!(
        joined.redacted(),
        "http://otlp:***@collector:4318/v1/traces?…"
    );
    let plain = SecretUrl::parse("http://collector:4318", &HTTP_SCHEMES).unwrap();
    assert_eq!(
        plain.join_path("/v1/traces").expose(),
        "http://collector:4318/v1/traces"
    );
}

#[test]
fn secret_text_shows_only_its_length() {
    let secret = SecretText::new("an HMAC secret of 32 bytes......");
    assert_eq!(format!("{secret:?}"), "SecretText(<32 bytes>)");
    assert_eq!(format!("{secret:#?}"), "SecretText(<32 bytes>)");
    assert_eq!(secret.expose(), "an HMAC secret of 32 bytes......");
    assert_eq!(secret.len(), 32);
}

#[test]
fn credentials_split_off_decoded_and_the_rest_stays_secret() {
    let url = SecretUrl::parse(
        "http://otlp%40corp:pa55%3Aword@collector:4318/v1/traces?token=t0ken-value",
        &HTTP_SCHEMES,
    )
    .unwrap();
    let (bare, credentials) = url.split_credentials();
    assert_eq!(
        bare.expose(),
        "http://collector:4318/v1/traces?token=t0ken-value"
    );
    assert_eq!(bare.redacted(), "http://collector:4318/v1/traces?…");
    let (user, password) = credentials.unwrap();
    assert_eq!(user, "otlp@corp");
    assert_eq!(password.expose(), "pa55:word");

    let plain = SecretUrl::parse("http://collector:4318", &HTTP_SCHEMES).unwrap();
    let (bare, credentials) = plain.split_credentials();
    assert_eq!(bare, plain);
    assert!(credentials.is_none());
}

#[test]
fn without_query_drops_the_query_and_keeps_the_rest() {
    let url = SecretUrl::parse(
        "http://otlp:pa55-word@collector:4318/v1/traces?token=t0ken-value#frag",
        &HTTP_SCHEMES,
    )
    .unwrap();
    assert!(url.has_query());
    let bare = url.without_query();
    assert!(!bare.has_query());
    assert_eq!(
        bare.expose(),
        "http://otlp:pa55-word@collector:4318/v1/traces"
    );
    assert_eq!(bare.redacted(), "http://otlp:***@collector:4318/v1/traces");
    let plain = SecretUrl::parse("http://collector:4318/v1/traces", &HTTP_SCHEMES).unwrap();
    assert_eq!(plain.without_query(), plain);
}

#[test]
fn hidden_values_are_the_password_and_the_query_values_as_written_and_decoded() {
    let url = SecretUrl::parse(
        "postgres://app:pa55%2Fword@db:5432/app?sslmode=require&token=t0k+en&bare-token&empty=",
        &["postgres"],
    )
    .unwrap();
    assert_eq!(
        url.hidden_values(),
        [
            "pa55%2Fword",
            "pa55/word",
            "require",
            "t0k+en",
            "t0k en",
            "bare-token",
        ]
    );
    let plain = SecretUrl::parse("redis://127.0.0.1:6379/0", &["redis"]).unwrap();
    assert!(plain.hidden_values().is_empty());
}
