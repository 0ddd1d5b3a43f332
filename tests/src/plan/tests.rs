//! A plan writes the TOML a person would have written: top-level keys
//! first, then its tables, routes and phases in order, strings quoted and
//! escaped.

use super::{Check, Plan};

#[test]
fn the_app_signal_plan_listens_on_free_ports_and_waits_for_app() {
    assert_eq!(
        Plan::app_signal().to_toml(),
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[phase]]
name = "services"

[[phase.check]]
name = "app"
kind = "signal"
"#
    );
}

#[test]
fn every_part_lands_in_its_place_whatever_the_order_it_was_given_in() {
    let plan = Plan::new()
        .phase("dependencies", [Check::tcp("db", "127.0.0.1:5432")])
        .check(
            Check::redis("cache", "redis://127.0.0.1:6379/")
                .optional()
                .set("interval", "50ms"),
        )
        .gate(|gate| gate.set("hold_timeout", "30s").set("max_held", 2))
        .set("admin_token_env", "TOKEN")
        .upstream("ws://127.0.0.1:9000")
        .gate(|gate| gate.set("hold_timeout", "5s"))
        .table("auth", |auth| auth.set("algorithms", ["ES256", "RS256"]));
    assert_eq!(
        plan.to_toml(),
        r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token_env = "TOKEN"

[gate]
hold_timeout = "5s"
max_held = 2

[upstream]
url = "ws://127.0.0.1:9000"

[auth]
algorithms = ["ES256", "RS256"]

[[route]]
path = "/ws"
app = "upstream"

[[phase]]
name = "dependencies"

[[phase.check]]
name = "db"
kind = "tcp"
addr = "127.0.0.1:5432"

[[phase.check]]
name = "cache"
kind = "redis"
url = "redis://127.0.0.1:6379/"
required = false
interval = "50ms"
"#
    );
}

#[test]
fn strings_are_escaped_as_toml_basic_strings() {
    let plan = Plan::new().set("listen", "a \"quoted\" \\ path\nand a tab\t\u{7f}");
    assert!(
        plan.to_toml()
            .starts_with(r#"listen = "a \"quoted\" \\ path\nand a tab\t\u007F""#),
        "{plan}"
    );
}
