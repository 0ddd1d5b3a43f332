//! Unit tests of `redact`.

use super::*;

fn masked(redactor: &Redactor, line: &str) -> String {
    redactor.mask(line.as_bytes()).map_or_else(
        || line.to_owned(),
        |bytes| String::from_utf8(bytes).unwrap(),
    )
}

#[test]
fn every_secret_is_masked_wherever_it_appears_and_other_text_is_kept() {
    let redactor = Redactor::new([
        "s3cr3t-QUERY".to_owned(),
        "pa55\"word\\x".to_owned(),
        "s3cr3t-QUERY-longer".to_owned(),
    ])
    .unwrap();
    assert_eq!(
        masked(
            &redactor,
            "url=http://h/v1/traces?token=s3cr3t-QUERY&b=s3cr3t-QUERY-longer end"
        ),
        "url=http://h/v1/traces?token=***&b=*** end"
    );
    // As JSON and `Debug` escape it.
    assert_eq!(
        masked(&redactor, r#"{"error":"bad pa55\"word\\x"}"#),
        r#"{"error":"bad ***"}"#
    );
    assert_eq!(masked(&redactor, "nothing here"), "nothing here");
    assert!(redactor.mask(b"nothing here").is_none());
}

#[test]
fn short_values_are_not_masked() {
    assert!(Redactor::new(["require".to_owned(), String::new()]).is_none());
    let redactor = Redactor::new(["require".to_owned(), "t0ken-value".to_owned()]).unwrap();
    assert_eq!(
        masked(&redactor, "sslmode=require token=t0ken-value"),
        "sslmode=require token=***"
    );
}

#[test]
fn the_config_secrets_are_every_url_secret_token_and_header() {
    let config = Config::from_toml_str(
        r#"
admin_token = "admin-token-0123456789"

[auth]
mode = "jwt"
jwks_url = "https://keys:jwks-pa55word@auth.example/jwks.json?key=jwks-query-value"

[telemetry]
otlp_endpoint = "http://otlp:otlp-pa55word@collector:4318/?token=otlp-query-value"

[[phase]]
name = "deps"

[[phase.check]]
name = "db"
kind = "postgres"
url = "postgres://app:pg-pa55word@db:5432/app?sslmode=require"

[[phase.check]]
name = "keys"
kind = "jwks"
"#,
        "test.toml",
    )
    .unwrap();
    let endpoint = SecretUrl::parse(
        "http://otlp:env-pa55word@collector:4318/v1/traces?token=env-query%2Fvalue",
        &["http"],
    )
    .unwrap();
    let env = |name: &str| {
        (name == "OTEL_EXPORTER_OTLP_HEADERS")
            .then(|| "x-api-key=header-value%21,x-tenant=".to_owned())
    };
    let secrets = config_secrets(&config, Some(&endpoint), &env);
    for expected in [
        "pg-pa55word",
        "require",
        "jwks-pa55word",
        "jwks-query-value",
        "otlp-pa55word",
        "otlp-query-value",
        "env-pa55word",
        "env-query%2Fvalue",
        "env-query/value",
        "admin-token-0123456789",
        "header-value%21",
        "header-value!",
    ] {
        assert!(
            secrets.iter().any(|secret| secret == expected),
            "{expected} missing from {secrets:?}"
        );
    }
    let authorization = crate::telemetry::traces::basic_authorization(
        "otlp",
        &warmgate_config::SecretText::new("env-pa55word"),
    );
    let credentials = authorization.trim_start_matches("Basic ");
    assert!(
        secrets.iter().any(|secret| secret == credentials),
        "{credentials} missing from {secrets:?}"
    );
}
