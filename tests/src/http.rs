//! Plain HTTP to a running [`Gateway`]: its URLs, requests to the public and
//! admin listeners with the answer as a [`Reply`], and setting a signal.
//!
//! The event stream (a long-lived HTTP response) is `events.rs`'s, and
//! WebSocket upgrades are `websocket.rs`'s.

use serde_json::Value;

use crate::{Gateway, within};

/// An HTTP client. The workspace builds reqwest with rustls but without a
/// built-in crypto provider, so the process installs ring's once.
///
/// It keeps no idle connection, so every request dials anew. The gateway
/// closes an idle keep-alive connection after `handshake_timeout`, and a
/// test that waits about that long between two requests would otherwise
/// now and then send the second on a connection the gateway is closing,
/// and read "connection closed before message completed" (RFC 9112
/// §9.3.1) instead of the answer.
pub fn http_client() -> reqwest::Client {
    warmgate_outbound::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a reqwest client with the crypto provider installed")
}

/// A response's status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl Gateway {
    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = within("an HTTP response", request.send()).await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, json, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.public_url(path))).await
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.admin_url(path))).await
    }

    pub async fn admin_post(&self, path: &str, body: &str) -> Reply {
        self.send(self.http.post(self.admin_url(path)).body(body.to_owned()))
            .await
    }

    /// Sets a signal check through the admin endpoint.
    pub async fn set_signal(&self, name: &str, ready: bool) {
        let body = serde_json::json!({"ready": ready, "reason": "set by a test"}).to_string();
        let reply = self.admin_post(&format!("/signals/{name}"), &body).await;
        assert_eq!(reply.status, 204, "{}", reply.text);
    }
}

#[cfg(test)]
mod tests;
