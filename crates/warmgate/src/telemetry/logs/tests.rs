//! Unit tests of `logs`.

use super::*;

fn filter_with(value: Option<&str>) -> Result<String, String> {
    let value = value.map(str::to_owned);
    let env = move |name: &str| (name == LOG_FILTER_ENV).then(|| value.clone()).flatten();
    log_filter(&env).map(|filter| filter.to_string())
}

#[test]
fn without_rust_log_the_filter_is_info() {
    assert_eq!(filter_with(None).unwrap(), "info");
    assert_eq!(filter_with(Some("  ")).unwrap(), "info");
}

#[test]
fn rust_log_directives_are_taken() {
    let filter = filter_with(Some("warmgate_gate=debug,warn")).unwrap();
    assert!(filter.contains("warmgate_gate=debug"), "{filter}");
    assert!(filter.contains("warn"), "{filter}");
}

#[test]
fn an_invalid_rust_log_is_an_error_naming_the_variable() {
    let error = filter_with(Some("warmgate=loud")).unwrap_err();
    assert!(
        error.starts_with("RUST_LOG: cannot parse \"warmgate=loud\""),
        "{error}"
    );
    assert!(error.contains("such as `info`"), "{error}");
    assert!(!error.contains('\n'), "{error}");
}
