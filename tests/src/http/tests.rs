//! The tests' HTTP client against a server that closes a keep-alive
//! connection as it is reused: the race that a request sent just as the
//! gateway's idle timer fires loses.

use warmgate_devservers::idle_close::IdleCloseServer;

use super::http_client;

#[tokio::test]
async fn requests_never_reuse_a_connection_the_server_may_be_closing() {
    let server = IdleCloseServer::start("text/plain", "ok".to_owned()).unwrap();
    let client = http_client();
    for _ in 0..3 {
        let response = client.get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    assert_eq!((server.connections(), server.cut_off()), (3, 0));
}
