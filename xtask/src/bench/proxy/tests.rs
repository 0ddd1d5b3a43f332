//! Unit tests of `proxy`.

use super::*;

#[test]
fn proxy_config_routes_both_paths_upstream() {
    let text = proxy_config("127.0.0.1:9000".parse().unwrap(), HOLDING_GATE, HELD);
    assert!(text.starts_with("[gate]"), "{text}");
    assert!(
        text.contains("[upstream]\nurl = \"ws://127.0.0.1:9000\"\n"),
        "{text}"
    );
    for path in ["/ws", "/echo"] {
        let route = format!("[[route]]\npath = \"{path}\"\napp = \"upstream\"\n");
        assert!(text.contains(&route), "no route for {path} in:\n{text}");
    }
    assert!(text.ends_with(HELD), "{text}");
}

#[test]
fn the_descriptor_limit_is_read() {
    assert!(descriptor_limit().is_some_and(|limit| limit > 0));
}
