//! Talking to Chorus: signing channel authorizations and calling its HTTP API (the Pusher REST API),
//! which is what Laravel's `pusher` broadcaster does for a Laravel app.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::Serialize;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Chorus {
    http: reqwest::Client,
    /// e.g. `http://127.0.0.1:6001`
    url: String,
    app_id: String,
    pub key: String,
    secret: String,
}

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Socket ids look like `1234.5678`; anything else would make Chorus answer 400.
pub fn valid_socket_id(s: &str) -> bool {
    let mut parts = s.split('.');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

impl Chorus {
    pub fn new(url: String, app_id: String, key: String, secret: String) -> Chorus {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        Chorus {
            http,
            url: url.trim_end_matches('/').to_string(),
            app_id,
            key,
            secret,
        }
    }

    /// The `auth` a client sends to subscribe to a private or presence channel.
    pub fn authorize_channel(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        let message = match channel_data {
            Some(data) => format!("{socket_id}:{channel}:{data}"),
            None => format!("{socket_id}:{channel}"),
        };
        format!("{}:{}", self.key, hmac_hex(&self.secret, &message))
    }

    /// The `auth` a client sends with `pusher:signin`.
    pub fn authenticate_user(&self, socket_id: &str, user_data: &str) -> String {
        let message = format!("{socket_id}::user::{user_data}");
        format!("{}:{}", self.key, hmac_hex(&self.secret, &message))
    }

    /// The URL of a signed API request: `auth_*` parameters plus the HMAC of
    /// `METHOD\nPATH\nsorted query`.
    fn signed_url(&self, method: &str, path: &str, body: Option<&[u8]>) -> String {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut params = vec![
            ("auth_key", self.key.clone()),
            ("auth_timestamp", timestamp.to_string()),
            ("auth_version", "1.0".to_string()),
        ];
        if let Some(body) = body {
            params.push(("body_md5", hex::encode(Md5::digest(body))));
        }
        params.sort();
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let signature = hmac_hex(&self.secret, &format!("{method}\n{path}\n{query}"));
        format!("{}{path}?{query}&auth_signature={signature}", self.url)
    }

    /// Publishes `event` with `data` on `channel`. `except_socket` is the sender's socket id
    /// (the `X-Socket-ID` header): that connection does not receive the event (Laravel's `toOthers()`).
    pub async fn trigger(
        &self,
        channel: &str,
        event: &str,
        data: &impl Serialize,
        except_socket: Option<&str>,
    ) -> Result<(), String> {
        #[derive(Serialize)]
        struct Event<'a> {
            name: &'a str,
            channel: &'a str,
            data: String, // the Pusher API carries event data as a JSON string
            #[serde(skip_serializing_if = "Option::is_none")]
            socket_id: Option<&'a str>,
        }
        let body = serde_json::to_vec(&Event {
            name: event,
            channel,
            data: serde_json::to_string(data).map_err(|e| e.to_string())?,
            socket_id: except_socket.filter(|s| valid_socket_id(s)),
        })
        .map_err(|e| e.to_string())?;
        let path = format!("/apps/{}/events", self.app_id);
        let response = self
            .http
            .post(self.signed_url("POST", &path, Some(&body)))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("Chorus unreachable: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(format!("Chorus answered {status}: {text}"));
        }
        Ok(())
    }

    /// Whether a webhook request comes from Chorus: `X-Pusher-Key` is this app's key and
    /// `X-Pusher-Signature` the HMAC-SHA256 of the raw body with its secret (compared in
    /// constant time), as Laravel's and every `pusher` SDK's webhook validation checks it.
    pub fn webhook_is_valid(
        &self,
        key: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> bool {
        let (Some(key), Some(signature)) = (key, signature) else {
            return false;
        };
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("any key length");
        mac.update(body);
        key == self.key && mac.verify_slice(&signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_signature_matches_the_pusher_docs_example() {
        let chorus = Chorus::new(
            "http://127.0.0.1:6001".into(),
            "1".into(),
            "278d425bdf160c739803".into(),
            "7ad3773142a6692b25b8".into(),
        );
        assert_eq!(
            chorus.authorize_channel("1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn webhooks_are_checked_against_key_and_secret() {
        let chorus = Chorus::new("http://x".into(), "1".into(), "k".into(), "s".into());
        let body = br#"{"time_ms":1,"events":[]}"#;
        let good = hmac_hex("s", std::str::from_utf8(body).unwrap());
        assert!(chorus.webhook_is_valid(Some("k"), Some(&good), body));
        assert!(!chorus.webhook_is_valid(Some("other"), Some(&good), body));
        assert!(!chorus.webhook_is_valid(Some("k"), Some(&hmac_hex("x", "y")), body));
        assert!(!chorus.webhook_is_valid(Some("k"), None, body));
        assert!(!chorus.webhook_is_valid(Some("k"), Some("zz"), body));
    }

    #[test]
    fn socket_ids() {
        assert!(valid_socket_id("123.456"));
        assert!(!valid_socket_id("123"));
        assert!(!valid_socket_id("123.4.5"));
        assert!(!valid_socket_id("a.1"));
        assert!(!valid_socket_id(".1"));
    }
}
