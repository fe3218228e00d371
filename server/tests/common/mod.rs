//! Test harness: a real server on an ephemeral loopback port, a real WebSocket client and a real
//! signed HTTP client.
#![allow(dead_code)]

pub mod processes;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_protocol::sign;
use chorus_server::{AppConfig, Config, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";
pub const APP_ID: &str = "app-id";
/// How long any expected message may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

pub fn test_config() -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        admin_port: 0,
        apps: vec![AppConfig::development()],
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let admin = server.admin_addr().expect("admin addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin,
            stop: Some(stop),
            handle,
        }
    }

    pub fn ws_url(&self, key: &str, query: &str) -> String {
        format!("ws://{}/app/{key}?{query}", self.addr)
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.ws_url(KEY, "protocol=7&client=js&version=8.4.0")).await
    }

    pub fn api(&self) -> Api {
        Api::new(self.addr, APP_ID, KEY, SECRET)
    }

    /// Triggers shutdown and waits for `run` to return; returns how long that took.
    pub async fn shutdown(mut self) -> Duration {
        let start = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("server stops")
            .expect("join")
            .expect("run ok");
        start.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pub socket_id: String,
    pub activity_timeout: u64,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(Option<u16>),
    Dropped,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Self::established(ws).await
    }

    pub async fn connect_with_origin(url: &str, origin: &str) -> Ws {
        let mut req = url.into_client_request().expect("request");
        req.headers_mut()
            .insert("Origin", origin.parse().expect("origin"));
        tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect")
            .0
    }

    pub async fn established(ws: Ws) -> Self {
        let mut c = Self {
            ws,
            socket_id: String::new(),
            activity_timeout: 0,
        };
        let ev = c.next_event().await;
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        let data: Value =
            serde_json::from_str(ev["data"].as_str().expect("data is a string")).expect("json");
        c.socket_id = data["socket_id"].as_str().expect("socket_id").to_owned();
        c.activity_timeout = data["activity_timeout"].as_u64().expect("activity_timeout");
        c
    }

    /// True if the server accepted the socket (sent `connection_established`), false if it refused it.
    pub async fn established_or_error(ws: &mut Ws) -> bool {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t.as_str().contains("pusher:connection_established"),
            _ => false,
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// Next text frame as JSON, failing after [`WAIT`].
    pub async fn next_event(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(v) => v,
            None => panic!("no event within {WAIT:?}"),
        }
    }

    /// Next text frame within `d`, or `None` (panics if the socket ends).
    pub async fn next_within(&mut self, d: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sent JSON"))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("socket ended while waiting for an event: {other:?}"),
            }
        }
    }

    /// Skips frames until one with `event`, returning it.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        loop {
            let ev = self.next_event().await;
            if ev["event"] == event {
                return ev;
            }
        }
    }

    /// Skips frames until one with `event`, waiting up to `d` in all.
    pub async fn expect_event_within(&mut self, event: &str, d: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(ev) if ev["event"] == event => return ev,
                Some(_) => {}
                None => panic!("no {event} within {d:?}"),
            }
        }
    }

    /// Asserts no event other than pings arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Some(ev) = self
            .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if ev["event"] != "pusher:ping" {
                panic!("expected no event, got {ev}");
            }
        }
    }

    /// Waits for the socket to end; reports the close code, if any.
    pub async fn ended(&mut self) -> Ended {
        ended(&mut self.ws).await
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel}}))
            .await;
        self.expect_event("pusher_internal:subscription_succeeded")
            .await
    }

    pub async fn subscribe_private(&mut self, channel: &str) -> Value {
        let auth = sign::sign_channel(KEY, SECRET, &self.socket_id, channel, None);
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth}}))
            .await;
        self.expect_event("pusher_internal:subscription_succeeded")
            .await
    }

    pub async fn subscribe_presence(&mut self, channel: &str, user_id: &str, info: Value) -> Value {
        let channel_data = json!({"user_id": user_id, "user_info": info}).to_string();
        let auth = sign::sign_channel(KEY, SECRET, &self.socket_id, channel, Some(&channel_data));
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":auth,"channel_data":channel_data}}))
            .await;
        let ev = self
            .expect_event("pusher_internal:subscription_succeeded")
            .await;
        serde_json::from_str(ev["data"].as_str().expect("string data")).expect("json")
    }

    pub async fn signin(&mut self, user_id: &str) -> Value {
        let user_data = json!({"id": user_id, "name": "Test"}).to_string();
        let auth = sign::sign_user(KEY, SECRET, &self.socket_id, &user_data);
        self.send(json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}))
            .await;
        self.expect_event("pusher:signin_success").await
    }
}

pub async fn ended(ws: &mut Ws) -> Ended {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("socket still open after {WAIT:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Ended::Closed(frame.map(|f| u16::from(f.code)))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Ended::Dropped,
        }
    }
}

/// Reads frames until a `pusher:error`, then the close; returns (error data, close code).
pub async fn error_then_close(ws: &mut Ws) -> (Value, Option<u16>) {
    let mut error = Value::Null;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["event"] == "pusher:error" {
                    error = v["data"].clone();
                }
            }
            Some(Ok(Message::Close(frame))) => return (error, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (error, None),
        }
    }
}

pub fn close_code(code: CloseCode) -> u16 {
    u16::from(code)
}

/// A signed HTTP API client, signing exactly as the Pusher server SDKs do.
pub struct Api {
    base: String,
    pub app_id: String,
    pub key: String,
    pub secret: String,
    http: reqwest::Client,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

impl Api {
    pub fn new(addr: SocketAddr, app_id: &str, key: &str, secret: &str) -> Self {
        Self {
            base: format!("http://{addr}"),
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            http: reqwest::Client::new(),
        }
    }

    pub fn signed_query(
        &self,
        method: &str,
        path: &str,
        body: &str,
        extra: &[(&str, &str)],
        timestamp: u64,
    ) -> String {
        let ts = timestamp.to_string();
        let md5 = sign::md5_hex(body.as_bytes());
        let mut params: Vec<(&str, &str)> = vec![
            ("auth_key", &self.key),
            ("auth_timestamp", &ts),
            ("auth_version", "1.0"),
        ];
        if !body.is_empty() {
            params.push(("body_md5", &md5));
        }
        params.extend_from_slice(extra);
        let sig = sign::sign_api_request(&self.secret, method, path, params.iter().copied());
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            q.append_pair(k, v);
        }
        q.append_pair("auth_signature", &sig);
        q.finish()
    }

    pub async fn post(&self, path_tail: &str, body: Value) -> (u16, Value) {
        self.post_raw(path_tail, &body.to_string()).await
    }

    pub async fn post_raw(&self, path_tail: &str, body: &str) -> (u16, Value) {
        let path = format!("/apps/{}{path_tail}", self.app_id);
        let q = self.signed_query("POST", &path, body, &[], now());
        self.send_post(&format!("{path}?{q}"), body.to_owned())
            .await
    }

    pub async fn send_post(&self, path_and_query: &str, body: String) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path_and_query}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("http");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("response is not JSON: {text}")),
        )
    }

    pub async fn get(&self, path_tail: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let path = format!("/apps/{}{path_tail}", self.app_id);
        let q = self.signed_query("GET", &path, "", extra, now());
        let res = self
            .http
            .get(format!("{}{path}?{q}", self.base))
            .send()
            .await
            .expect("http");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("response is not JSON: {text}")),
        )
    }

    pub async fn trigger(&self, channel: &str, event: &str, data: &str) -> (u16, Value) {
        self.post(
            "/events",
            json!({"name": event, "channel": channel, "data": data}),
        )
        .await
    }

    pub async fn raw_get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .expect("http")
    }
}

/// The sorted user ids of a `/channels/{name}/users` answer.
pub fn sorted_ids(users: &Value) -> Vec<String> {
    let mut ids: Vec<String> = users["users"]
        .as_array()
        .expect("users array")
        .iter()
        .map(|u| u["id"].as_str().expect("string id").to_owned())
        .collect();
    ids.sort();
    ids
}
