//! The edge the operator controls: routes turned off, per-address limits
//! with the address from a trusted proxy's `X-Forwarded-For`, and the
//! read-only admin token.

use warmgate_tests::{EventStream, Gateway, Plan, http_client};

const CONTROL_TOKEN: &str = "0d5c1f3e9a7b4c2d8e6f0a1b3c5d7e9f";
const READ_TOKEN: &str = "9f7e5d3c1b0a8f6e4d2c7b9a5e3f1c0d";

#[tokio::test]
async fn turned_off_routes_answer_404_and_the_probes_stay() {
    let gateway = Gateway::builder()
        .config(Plan::app_signal().table("routes", |routes| {
            routes
                .set("chat_page", false)
                .set("chat", false)
                .set("echo", false)
                .set("readiness_detail", false)
        }))
        .spawn()
        .await;
    for path in ["/", "/app.js", "/readiness", "/readiness/events"] {
        assert_eq!(gateway.get(path).await.status, 404, "GET {path}");
    }
    for path in ["/ws", "/echo"] {
        let refused = gateway.try_ws(path, &[], &[]).await.unwrap_err();
        assert_eq!(refused.0, 404, "upgrade to {path}");
    }
    assert_eq!(gateway.get("/livez").await.status, 200);
    assert_eq!(gateway.get("/readyz").await.status, 503);
    assert_eq!(gateway.get("/startupz").await.status, 503);
    // The admin listener keeps its detail.
    gateway.set_signal("app", true).await;
    let verbose = gateway.admin_get("/readiness").await;
    assert_eq!(verbose.status, 200);
    assert_eq!(verbose.json["checks"][0]["name"], "app");
    assert_eq!(gateway.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn handshakes_past_the_per_address_rate_get_429_keyed_by_the_forwarded_address() {
    let gateway = Gateway::builder()
        .config(Plan::app_signal().table("clients", |clients| {
            clients
                .set("trusted_proxies", ["127.0.0.1"])
                .set("handshakes_per_second_per_address", 1)
        }))
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    // The test connects from loopback, a trusted proxy here, so the
    // right-most untrusted X-Forwarded-For entry is the client.
    let from = |client: &'static str| [("x-forwarded-for", client)];
    let _first = gateway
        .try_ws("/echo", &[], &from("198.51.100.1, 203.0.113.9"))
        .await
        .unwrap();
    let (status, body) = gateway
        .try_ws("/echo", &[], &from("203.0.113.9"))
        .await
        .unwrap_err();
    assert_eq!(status, 429);
    assert_eq!(body["error"], "handshake_rate");
    // Another client behind the same proxy has its own bucket.
    let _other = gateway
        .try_ws("/ws", &["warmgate.v1"], &from("203.0.113.10"))
        .await
        .unwrap();

    let response = http_client()
        .get(gateway.public_url("/ws"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");

    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains("warmgate_client_refusals_total{reason=\"handshake_rate\"} 2"),
        "{metrics}"
    );
    let log = gateway.log();
    assert!(
        log.contains("request refused with 429: too many WebSocket handshakes from this address"),
        "{log}"
    );
    assert!(log.contains("203.0.113.9"), "{log}");
}

#[tokio::test]
async fn event_streams_past_the_per_address_maximum_get_429_and_are_gauged() {
    let gateway = Gateway::builder()
        .config(Plan::app_signal().table("clients", |clients| {
            clients.set("max_event_streams_per_address", 1)
        }))
        .spawn()
        .await;
    let mut first = EventStream::connect(&gateway.public_url("/readiness/events")).await;
    // The first event proves the stream is open and counted.
    first.next().await.unwrap();
    let refused = gateway.get("/readiness/events").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json["error"], "event_streams");
    let metrics = gateway.admin_get("/metrics").await.text;
    assert!(
        metrics.contains("\nwarmgate_event_streams 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmgate_client_refusals_total{reason=\"event_streams\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_read_token_scrapes_and_reads_but_cannot_drain() {
    let gateway = Gateway::with_admin_tokens(CONTROL_TOKEN, READ_TOKEN).await;
    let client = http_client();
    for path in ["/metrics", "/readiness"] {
        let response = client
            .get(gateway.admin_url(path))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
    }
    for path in ["/drain", "/signals/app"] {
        let response = client
            .post(gateway.admin_url(path))
            .bearer_auth(READ_TOKEN)
            .body("{\"ready\": true}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "POST {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
    }
    assert_eq!(gateway.get("/readyz").await.json["state"], "starting");
    let set = client
        .post(gateway.admin_url("/signals/app"))
        .bearer_auth(CONTROL_TOKEN)
        .body("{\"ready\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 204);
    let log = gateway.log();
    assert!(
        log.contains("admin request refused with 403: the read token may only read"),
        "{log}"
    );
    assert!(!log.contains(READ_TOKEN) && !log.contains(CONTROL_TOKEN));
}
