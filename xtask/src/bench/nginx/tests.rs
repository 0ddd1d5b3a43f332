//! Unit tests of `nginx`.

use super::*;

#[test]
fn the_config_is_a_websocket_reverse_proxy() {
    let text = config(
        Path::new("/bench/nginx"),
        "127.0.0.1:8080".parse().unwrap(),
        "127.0.0.1:9000".parse().unwrap(),
        2,
    );
    for line in [
        "worker_processes 2;",
        "worker_connections 20000;",
        "error_log /bench/nginx/error.log warn;",
        "access_log off;",
        "tcp_nodelay on;",
        "listen 127.0.0.1:8080 backlog=4096;",
        "proxy_pass http://127.0.0.1:9000;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection \"upgrade\";",
        "proxy_read_timeout 3600s;",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

#[test]
fn the_parent_comes_after_the_command() {
    assert_eq!(parent_of("42 (nginx) S 7 42 42 0 -1"), Some(7));
    assert_eq!(parent_of("43 (a (b) c) S 9 43 43 0 -1"), Some(9));
    assert_eq!(parent_of("garbage"), None);
}

#[test]
fn finds_its_own_children() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let found = children(std::process::id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.contains(&child.id()), "{found:?}");
}
