//! Signal leases, through the real program: a signal set with a ttl that
//! nobody renews turns the gate not ready on its own, with a reason and a
//! log line an operator can act on.

use warmgate_tests::{Gateway, Plan};

#[tokio::test]
async fn a_signal_lease_not_renewed_turns_the_gate_not_ready_with_the_reason() {
    let gateway = Gateway::builder().config(Plan::app_signal()).spawn().await;
    let mut events = gateway.events().await;
    let reply = gateway
        .admin_post("/signals/app", r#"{"ready":true,"ttl":"300ms"}"#)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    events.until(|s| s["state"] == "ready").await;
    let verbose = gateway.admin_get("/readiness").await.json;
    assert_eq!(verbose["checks"][0]["lease"]["ttl_ms"], 300);

    // Nobody renews it.
    let not_ready = events.until(|s| s["state"] == "not_ready").await;
    let snapshot = &not_ready.last().unwrap().data;
    assert_eq!(snapshot["pending"], serde_json::json!(["app"]));
    let verbose = gateway.admin_get("/readiness").await.json;
    let app = &verbose["checks"][0];
    assert_eq!(app["status"], "failing");
    assert_eq!(app["last_error"], "lease expired: not renewed within 300ms");
    assert!(app.get("lease").is_none(), "{app}");
    let log = gateway.log();
    assert!(
        log.contains("signal lease expired") && log.contains("app"),
        "{log}"
    );
    assert!(
        log.contains("check `app` lease expired: not renewed within 300ms"),
        "the transition's reason: {log}"
    );

    // Setting it again (without a ttl) makes it ready for good; a bad ttl is
    // refused with the field named.
    let reply = gateway
        .admin_post("/signals/app", r#"{"ready":true,"ttl":"5 parsecs"}"#)
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json["message"].as_str().unwrap().starts_with("ttl: "),
        "{}",
        reply.text
    );
    gateway.set_signal("app", true).await;
    events.until(|s| s["state"] == "ready").await;
}
