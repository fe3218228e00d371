//! Limits per client address (through trusted proxies) and per app on the HTTP API.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Opens a WebSocket as if through a proxy that says the client is `forwarded_for`.
async fn connect_forwarded(server: &TestServer, forwarded_for: Option<&str>) -> Ws {
    let mut req = server
        .ws_url(KEY, "protocol=7")
        .into_client_request()
        .unwrap();
    if let Some(xff) = forwarded_for {
        req.headers_mut()
            .insert("X-Forwarded-For", xff.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Whether the server admits the socket (`None`) or refuses it (the error's code, message and
/// the close code).
async fn refusal(mut ws: Ws) -> Option<(i64, String, Option<u16>)> {
    let first = first_text(&mut ws).await;
    if first["event"] == "pusher:connection_established" {
        return None;
    }
    assert_eq!(first["event"], "pusher:error", "{first}");
    let code = first["data"]["code"].as_i64().unwrap();
    let message = first["data"]["message"].as_str().unwrap().to_owned();
    let close = match ended(&mut ws).await {
        Ended::Closed(code) => code,
        Ended::Dropped => None,
    };
    Some((code, message, close))
}

/// The first text frame, as JSON.
async fn first_text(ws: &mut Ws) -> serde_json::Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no text frame: {other:?}"),
        }
    }
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", server.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_address_holds_a_bounded_number_of_connections() {
    // Nothing trusted: 127.0.0.1 is an address like any other.
    let server = TestServer::start_with(|c| {
        c.trusted_proxies.clear();
        c.max_connections_per_ip = 3;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(server.connect().await);
    }
    let (code, message, close) = refusal(connect_forwarded(&server, None).await)
        .await
        .expect("the fourth is refused");
    assert_eq!((code, close), (4100, Some(4100)));
    assert!(message.contains("3 connections"), "{message}");
    // A client cannot escape by claiming another address: the peer is not a trusted proxy.
    let spoofed = connect_forwarded(&server, Some("203.0.113.77")).await;
    assert!(refusal(spoofed).await.is_some());

    // One closes: its slot is free again (the server sees the close soon after).
    open.pop();
    let mut admitted = false;
    for _ in 0..50 {
        if refusal(connect_forwarded(&server, None).await)
            .await
            .is_none()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a freed slot is reused");
    let m = metrics(&server).await;
    assert!(
        m.contains("chorus_connections_refused_total{reason=\"address_connections\"} "),
        "{m}"
    );
    assert!(!m.contains("reason=\"address_connections\"} 0\n"), "{m}");

    // Trusted by default: a local client (or proxy) is not limited.
    let local = TestServer::start_with(|c| c.max_connections_per_ip = 3).await;
    let mut many = Vec::new();
    for _ in 0..8 {
        many.push(local.connect().await);
    }
}

#[tokio::test]
async fn an_address_makes_a_bounded_number_of_connects_a_minute() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies.clear();
        c.max_connects_per_ip_per_minute = 4;
    })
    .await;
    for i in 0..4 {
        let ws = connect_forwarded(&server, None).await;
        assert!(refusal(ws).await.is_none(), "connect {i} admitted");
    }
    let (code, message, close) = refusal(connect_forwarded(&server, None).await)
        .await
        .expect("the fifth connect in a minute is refused");
    assert_eq!((code, close), (4100, Some(4100)));
    assert!(message.contains("4 times in a minute"), "{message}");
    let m = metrics(&server).await;
    assert!(
        m.contains("chorus_connections_refused_total{reason=\"address_connects\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_counted_on_its_own() {
    // 127.0.0.1 is trusted by default: it plays the proxy.
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 2).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let ws = connect_forwarded(&server, Some("203.0.113.5")).await;
        open.push(ws);
    }
    for ws in &mut open {
        let ev = first_text(ws).await;
        assert_eq!(ev["event"], "pusher:connection_established");
    }
    // The client's own hop is the rightmost untrusted one: what it put in front is ignored.
    let third = connect_forwarded(&server, Some("198.51.100.1, 203.0.113.5")).await;
    assert_eq!(refusal(third).await.map(|r| r.0), Some(4100));
    let other = connect_forwarded(&server, Some("203.0.113.6")).await;
    assert!(refusal(other).await.is_none(), "another client is admitted");
    // The proxy itself (no header) is not limited.
    for _ in 0..3 {
        open.push(connect_forwarded(&server, None).await);
    }
    for ws in open.iter_mut().skip(2) {
        let ev = first_text(ws).await;
        assert_eq!(ev["event"], "pusher:connection_established");
    }
}

#[tokio::test]
async fn api_requests_over_the_apps_rate_get_429_with_retry_after() {
    let server = TestServer::start_with(|c| c.apps[0].max_api_requests_per_second = 3).await;
    let api = server.api();
    let http = reqwest::Client::new();
    let events = format!("/apps/{APP_ID}/events");
    let body = r#"{"name":"e","channel":"c","data":"{}"}"#;
    // Unsigned requests do not spend the app's budget.
    for _ in 0..5 {
        let res = http
            .post(format!("http://{}{events}?auth_key={KEY}", server.addr))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
    }
    let send = || {
        let q = api.signed_query("POST", &events, body, &[], now());
        http.post(format!("http://{}{events}?{q}", server.addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for i in 0..3 {
        assert_eq!(send().await.unwrap().status().as_u16(), 200, "request {i}");
    }
    let refused = send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let err: serde_json::Value = refused.json().await.unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("3 per second"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(send().await.unwrap().status().as_u16(), 200, "refilled");
    let m = metrics(&server).await;
    assert!(
        m.contains("chorus_api_requests_limited_total{app_id=\"app-id\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(
            "chorus_http_requests_total{endpoint=\"/apps/{app_id}/events\",status=\"429\"} 1"
        ),
        "{m}"
    );
}
