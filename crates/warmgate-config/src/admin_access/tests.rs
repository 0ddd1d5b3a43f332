//! The lenient read of the admin keys.

use super::*;

#[test]
fn only_the_admin_keys_are_read_and_the_rest_is_left_to_the_server() {
    // A check whose URL variable is not set here, and a key the server
    // would refuse: neither matters to a client of the admin listener.
    let access = AdminAccess::from_toml_str(
        r#"
admin_listen = "0.0.0.0:9191"
admin_token = "0123456789abcdef"
not_a_key = 1

[[phase]]
name = "deps"

[[phase.check]]
name = "database"
kind = "postgres"
url_env = "WARMGATE_TEST_SURELY_UNSET_DATABASE_URL"
"#,
        "warmgate.toml",
    )
    .unwrap();
    assert_eq!(access.admin_listen, "0.0.0.0:9191".parse().unwrap());
    let control = access.control.unwrap();
    assert_eq!(control.token.unwrap().expose(), "0123456789abcdef");
    assert_eq!(control.from, "admin_token in warmgate.toml");
    assert!(access.read.is_none());
}

#[test]
fn a_token_variable_not_set_here_is_absent_but_named() {
    let access = AdminAccess::from_toml_str(
        "admin_token_env = \"WARMGATE_TEST_SURELY_UNSET_TOKEN\"\nadmin_read_token_env = \"WARMGATE_TEST_SURELY_UNSET_READ_TOKEN\"\n",
        "warmgate.toml",
    )
    .unwrap();
    assert_eq!(access.admin_listen, Config::DEFAULT_ADMIN_LISTEN);
    let control = access.control.unwrap();
    assert!(control.token.is_none());
    assert_eq!(
        control.from,
        "the variable `WARMGATE_TEST_SURELY_UNSET_TOKEN` (admin_token_env in warmgate.toml)"
    );
    assert!(access.read.unwrap().token.is_none());
}

#[test]
fn a_file_that_is_not_toml_or_an_address_that_is_not_one_is_refused() {
    let error = AdminAccess::from_toml_str("admin_listen = [", "warmgate.toml").unwrap_err();
    assert!(
        error.to_string().starts_with("warmgate.toml: invalid TOML"),
        "{error}"
    );
    let error =
        AdminAccess::from_toml_str("admin_listen = \"localhost\"\n", "warmgate.toml").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("warmgate.toml: admin_listen: invalid socket address"),
        "{error}"
    );
}
