//! kube-apiserver's probe conventions (`?verbose`, `?exclude=`,
//! `/readyz/{check}`) on the real program: reasons withheld on the public
//! listener, given on the admin one.

use warmgate_tests::{Check, Gateway, Plan};

#[tokio::test]
async fn verbose_probes_exclude_and_per_check_probes_on_both_listeners() {
    // `app` (required signal) and `cache` (optional, a closed port).
    let closed = warmgate_tests::free_port();
    let gateway = Gateway::builder()
        .config(
            Plan::app_signal().check(Check::tcp("cache", format!("127.0.0.1:{closed}")).optional()),
        )
        .spawn()
        .await;
    gateway.set_signal("app", true).await;
    gateway
        .events()
        .await
        .until(|snapshot| snapshot["state"] == "degraded")
        .await;

    let public = gateway.get("/readyz?verbose").await;
    assert_eq!(public.status, 200);
    assert_eq!(
        public.text,
        "[+]app ok\n[-]cache failed: reason withheld (optional)\nreadyz check passed\n"
    );
    let admin = gateway.admin_get("/readyz?verbose").await;
    assert_eq!(admin.status, 200);
    assert!(
        admin.text.contains(&format!(
            "[-]cache failed: connection refused to 127.0.0.1:{closed} (optional)\n"
        )),
        "{}",
        admin.text
    );

    let cache = gateway.get("/readyz/cache").await;
    assert_eq!(
        (cache.status, cache.text.as_str()),
        (503, "failed: reason withheld\n")
    );
    let app = gateway.get("/readyz/app").await;
    assert_eq!((app.status, app.text.as_str()), (200, "ok\n"));
    assert_eq!(gateway.get("/readyz/nope").await.status, 404);

    gateway.set_signal("app", false).await;
    let failed = gateway.get("/readyz?verbose").await;
    assert_eq!(failed.status, 503);
    assert!(
        failed.text.ends_with("readyz check failed\n"),
        "{}",
        failed.text
    );
    let excluded = gateway
        .get("/readyz?verbose&exclude=app&exclude=nope")
        .await;
    assert_eq!(excluded.status, 200);
    assert_eq!(
        excluded.text,
        "[+]app excluded: ok\n\
         [-]cache failed: reason withheld (optional)\n\
         warn: some health checks cannot be excluded: no matches for \"nope\"\n\
         readyz check passed\n"
    );
    // Without `verbose` or `exclude`, the JSON answer as ever.
    let plain = gateway.get("/readyz").await;
    assert_eq!(plain.status, 503);
    assert_eq!(plain.json["pending"], serde_json::json!(["app"]));

    let livez = gateway.get("/livez?verbose").await;
    assert_eq!(
        (livez.status, livez.text.as_str()),
        (200, "[+]engine ok\nlivez check passed\n")
    );
    assert_eq!(gateway.admin_get("/livez/engine").await.text, "ok\n");
}
