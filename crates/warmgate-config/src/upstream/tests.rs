//! `[upstream]` and `[[route]]`: defaults, the proxy-mode config in a few
//! lines, and every rule with its message.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::tests::{error, parse};
use crate::{AppKind, UpstreamConfig, WebSocketRoute};

const PROXY: &str =
    "[upstream]\nurl = \"ws://127.0.0.1:9000\"\n\n[[route]]\npath = \"/ws\"\napp = \"upstream\"\n";

#[test]
fn without_route_tables_the_demo_routes_are_served_and_no_upstream() {
    let config = parse("");
    assert_eq!(config.upstream, None);
    assert_eq!(
        config.routes.websocket,
        vec![
            WebSocketRoute {
                path: "/ws".into(),
                app: AppKind::Chat
            },
            WebSocketRoute {
                path: "/echo".into(),
                app: AppKind::Echo
            },
        ]
    );
    assert!(config.routes.chat_page);
}

#[test]
fn proxy_mode_takes_a_url_and_a_route_and_turns_the_chat_page_off() {
    let config = parse(PROXY);
    let upstream = config.upstream.clone().unwrap();
    assert_eq!(upstream.url.as_str(), "ws://127.0.0.1:9000/");
    assert!(!upstream.http);
    assert!(upstream.subprotocols.is_empty());
    assert_eq!(
        upstream.max_concurrent_dials,
        UpstreamConfig::DEFAULT_MAX_CONCURRENT_DIALS
    );
    assert_eq!(upstream.dial_timeout, UpstreamConfig::DEFAULT_DIAL_TIMEOUT);
    assert_eq!(upstream.identity_header, "x-warmgate-sub");
    assert_eq!(upstream.http_base().as_str(), "http://127.0.0.1:9000/");
    assert_eq!(
        config.routes.websocket,
        vec![WebSocketRoute {
            path: "/ws".into(),
            app: AppKind::Upstream
        }]
    );
    assert!(!config.routes.chat_page, "the page needs the chat on /ws");
    let described = config.describe();
    assert!(
        described.contains("  websocket /ws -> upstream\n"),
        "{described}"
    );
    assert!(
        described.contains("  url = ws://127.0.0.1:9000/\n"),
        "{described}"
    );
}

#[test]
fn upstream_without_routes_sends_ws_to_the_backend_in_three_lines() {
    let config = parse("[upstream]\nurl = \"ws://127.0.0.1:9000\"\nhttp = true\n");
    assert_eq!(
        config.routes.websocket,
        vec![WebSocketRoute {
            path: "/ws".into(),
            app: AppKind::Upstream
        }]
    );
    assert!(!config.routes.chat_page);
}

#[test]
fn a_path_ending_in_a_star_is_a_prefix_route() {
    let config = parse(
        "[upstream]\nurl = \"ws://127.0.0.1:9000\"\n\n[[route]]\npath = \"/ws/*\"\napp = \"upstream\"\n\n[[route]]\npath = \"/ws\"\napp = \"upstream\"\n",
    );
    let routes = &config.routes.websocket;
    assert_eq!(routes[0].prefix(), Some("/ws/"));
    assert_eq!(routes[1].prefix(), None);
}

#[test]
fn every_upstream_key_is_read() {
    let config = parse(
        "[upstream]\nurl = \"wss://chat.internal\"\nhttp = true\nsubprotocols = [\"chat.v2\", \"chat.v1\"]\nmax_concurrent_dials = 8\ndial_timeout = \"750ms\"\nidentity_header = \"X-User\"\n\n[[route]]\npath = \"/chat\"\napp = \"upstream\"\n\n[[route]]\npath = \"/ws\"\napp = \"chat\"\n",
    );
    let upstream = config.upstream.unwrap();
    assert_eq!(upstream.http_base().as_str(), "https://chat.internal/");
    assert!(upstream.http);
    assert_eq!(upstream.subprotocols, ["chat.v2", "chat.v1"]);
    assert_eq!(upstream.max_concurrent_dials, 8);
    assert_eq!(upstream.dial_timeout, Duration::from_millis(750));
    assert_eq!(upstream.identity_header, "x-user");
    assert!(config.routes.chat_page, "`/ws` is the chat");
    assert_eq!(config.routes.websocket.len(), 2);
}

#[test]
fn upstream_and_route_errors_name_the_key_value_and_expectation() {
    for (text, expected) in [
        (
            "[upstream]\nhttp = true\n",
            "test.toml: upstream.url: missing key, expected the backend's WebSocket address such as `url = \"ws://127.0.0.1:9000\"`",
        ),
        (
            "[upstream]\nurl = \"http://127.0.0.1:9000\"\n",
            "test.toml: upstream.url: invalid upstream URL \"http://127.0.0.1:9000\" (the scheme \"http\" is not ws or wss), expected a ws:// or wss:// URL such as \"ws://127.0.0.1:9000\"",
        ),
        (
            "[upstream]\nurl = \"ws://127.0.0.1:9000/api\"\n",
            "test.toml: upstream.url: invalid upstream URL \"ws://127.0.0.1:9000/api\" (the path \"/api\" would be lost: the client's request path is kept as it is), expected a ws:// or wss:// URL such as \"ws://127.0.0.1:9000\"",
        ),
        (
            "[upstream]\nurl = \"ws://user:pw@127.0.0.1:9000\"\n",
            "test.toml: upstream.url: invalid upstream URL \"ws://user:pw@127.0.0.1:9000\" (a user or password does not go in the URL; the client's own `Authorization` is passed on), expected a ws:// or wss:// URL such as \"ws://127.0.0.1:9000\"",
        ),
        (
            "[upstream]\nurl = \"ws://127.0.0.1:9000\"\nsubprotocols = [\"warmgate.v1\"]\n",
            "test.toml: upstream.subprotocols[0]: \"warmgate.v1\" is warmgate's own and never goes upstream, expected the backend's application subprotocol such as \"chat.v2\"",
        ),
        (
            "[upstream]\nurl = \"ws://127.0.0.1:9000\"\nsubprotocols = \"chat.v2\"\n",
            "test.toml: upstream.subprotocols: invalid type: string \"chat.v2\", expected a list of subprotocols such as [\"chat.v2\"], or [] for none",
        ),
        (
            "[upstream]\nurl = \"ws://127.0.0.1:9000\"\nmax_concurrent_dials = 0\n",
            "test.toml: upstream.max_concurrent_dials: invalid value 0, expected a whole number from 1 to 100000",
        ),
        (
            "[[route]]\npath = \"/ws\"\napp = \"upstream\"\n",
            "test.toml: route[0].app: `app = \"upstream\"` needs the backend's address: expected an `[upstream]` table with `url = \"ws://...\"`",
        ),
        (
            "[[route]]\npath = \"/ws\"\napp = \"proxy\"\n",
            "test.toml: route[0].app: unknown app \"proxy\", expected \"chat\", \"echo\" or \"upstream\"",
        ),
        (
            "[[route]]\npath = \"ws\"\napp = \"echo\"\n",
            "test.toml: route[0].path: invalid path \"ws\" (a path starts with `/` and has no query, fragment, space, braces, or `*` but as a last `/*`), expected a path such as \"/ws\", or a prefix such as \"/ws/*\"",
        ),
        (
            "[[route]]\npath = \"/ws/*/x\"\napp = \"echo\"\n",
            "test.toml: route[0].path: invalid path \"/ws/*/x\" (a path starts with `/` and has no query, fragment, space, braces, or `*` but as a last `/*`), expected a path such as \"/ws\", or a prefix such as \"/ws/*\"",
        ),
        (
            "[[route]]\npath = \"/*\"\napp = \"echo\"\n",
            "test.toml: route[0].path: \"/*\" takes one of the gate's own routes (/, /livez, /readyz, /startupz, /readiness, /readiness/events), expected another path such as \"/ws\"",
        ),
        (
            "[[route]]\npath = \"/readiness/*\"\napp = \"echo\"\n",
            "test.toml: route[0].path: \"/readiness/*\" takes one of the gate's own routes (/, /livez, /readyz, /startupz, /readiness, /readiness/events), expected another path such as \"/ws\"",
        ),
        (
            "[[route]]\npath = \"/readyz\"\napp = \"echo\"\n",
            "test.toml: route[0].path: \"/readyz\" takes one of the gate's own routes (/, /livez, /readyz, /startupz, /readiness, /readiness/events), expected another path such as \"/ws\"",
        ),
        (
            "[[route]]\npath = \"/e\"\napp = \"echo\"\n\n[[route]]\npath = \"/e\"\napp = \"chat\"\n",
            "test.toml: route[1].path: \"/e\" is listed twice, expected each route's path once",
        ),
        (
            "[[route]]\napp = \"echo\"\n",
            "test.toml: route[0].path: missing key, expected the route's path such as `path = \"/ws\"`",
        ),
        (
            "[upstream]\nurl = \"ws://127.0.0.1:9000\"\n\n[routes]\nchat = true\n",
            "test.toml: routes.chat: with `[upstream]` and no `[[route]]`, `/ws` goes to the backend and the demo routes are off: expected this key removed, and any other route listed as a `[[route]]`",
        ),
        (
            "[routes]\necho = false\n\n[[route]]\npath = \"/e\"\napp = \"echo\"\n",
            "test.toml: routes.echo: `[[route]]` lists the WebSocket routes when it is present: expected this key removed, and the route listed (or left out) as a `[[route]]`",
        ),
    ] {
        let got = error(text);
        // The location is checked by the config's own tests; here the words.
        let got = got.split(" (line ").next().unwrap_or(&got).to_owned();
        assert_eq!(got, expected, "{text}");
    }
}

/// The first TOML block of a document of the repository.
fn first_toml_block(document: &str) -> String {
    let path = format!("{}/../../{document}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap()
        .to_owned()
}

#[test]
fn the_proxy_configs_of_the_readme_and_the_proxy_guide_are_valid() {
    for document in ["docs/proxy.md", "README.md"] {
        let config = parse(&first_toml_block(document));
        let upstream = config.upstream.as_ref().unwrap();
        assert!(upstream.http, "{document}");
        assert_eq!(
            config.routes.websocket_route("/ws").map(|route| route.app),
            Some(AppKind::Upstream),
            "{document}"
        );
        assert_eq!(config.phases[0].checks[0].name, "backend", "{document}");
    }
}
