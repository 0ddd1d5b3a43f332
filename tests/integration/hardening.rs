//! The hardened edges: the admin token, an admin listener off loopback,
//! and half-open handshakes by the thousand.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warmgate_tests::{Gateway, Plan, http_client, within};

const ADMIN_TOKEN: &str = "0d5c1f3e9a7b4c2d8e6f0a1b3c5d7e9f";

#[tokio::test]
async fn with_an_admin_token_every_admin_request_needs_it() {
    let gateway = Gateway::builder()
        .config(Plan::app_signal().set("admin_token_env", "WARMGATE_TEST_ADMIN_TOKEN"))
        .env("WARMGATE_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .spawn()
        .await;
    let client = http_client();
    for (method, path) in [
        ("GET", "/readiness"),
        ("GET", "/metrics"),
        ("POST", "/signals/app"),
        ("POST", "/drain"),
    ] {
        let url = gateway.admin_url(path);
        let request = match method {
            "GET" => client.get(&url),
            _ => client.post(&url).body("{\"ready\": true}"),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{method} {path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"warmgate-admin\""
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let wrong = client
        .get(gateway.admin_url("/readiness"))
        .bearer_auth("0d5c1f3e9a7b4c2d8e6f0a1b3c5d7e9e")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let set = client
        .post(gateway.admin_url("/signals/app"))
        .bearer_auth(ADMIN_TOKEN)
        .body("{\"ready\": true}")
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.status());
    gateway.until_ready().await;
    // The public listener needs no token: probes and clients use it.
    assert_eq!(gateway.get("/readyz").await.status, 200);
    assert!(!gateway.log().contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn an_admin_listener_off_loopback_without_a_token_refuses_to_start() {
    let stderr = warmgate_tests::refused_start(
        &["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"],
        &[],
    )
    .await;
    assert!(
        stderr.contains("admin_listen: the admin listener 0.0.0.0:0 is not on loopback"),
        "{stderr}"
    );
    assert!(stderr.contains("admin_token"), "{stderr}");
}

/// A process's resident memory (or its peak, `VmHWM`) in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn five_thousand_half_open_handshakes_are_freed_by_handshake_timeout_in_bounded_memory() {
    const HALF_OPEN: usize = 5000;
    let gateway = Gateway::builder()
        .config(Plan::app_signal().gate(|gate| {
            gate.set("handshake_timeout", "1s")
                .set("max_connections", 100)
        }))
        .spawn()
        .await;
    let pid = gateway.pid();
    let rss_before = memory_kib(pid, "VmRSS:");
    let fds_before = open_fds(pid);

    let mut streams = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut stream = tokio::net::TcpStream::connect(gateway.public)
            .await
            .unwrap();
        // The start of an upgrade request that never ends.
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            .await
            .unwrap();
        streams.push(stream);
    }
    // Each is dropped by the server: reading sees its end (or a reset).
    within("the server to drop every half-open handshake", async {
        for mut stream in streams {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            assert!(
                rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
                "{rest:?}"
            );
        }
    })
    .await;

    let peak = memory_kib(pid, "VmHWM:");
    let grown = peak.saturating_sub(rss_before);
    // A half-open connection costs its socket, its task and hyper's 8 KiB
    // read buffer: about 15 KiB each in a debug build. The bound is twice
    // that; a buffer grown to the header limit (400 KiB) would break it.
    assert!(
        grown < (HALF_OPEN as u64) * 32,
        "peak memory grew by {grown} KiB for {HALF_OPEN} half-open handshakes"
    );
    // Every socket is closed again, and the gateway still serves.
    assert!(
        open_fds(pid) <= fds_before + 8,
        "{} fds open, {fds_before} before",
        open_fds(pid)
    );
    assert_eq!(gateway.get("/livez").await.status, 200);
    eprintln!("peak memory grew by {grown} KiB for {HALF_OPEN} half-open handshakes");
}
