//! Connection-level behaviour: handshake, admission errors, heartbeat, bad input.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn handshake_sends_socket_id_and_activity_timeout() {
    let server = TestServer::start().await;
    let c = server.connect().await;
    assert!(
        chorus_protocol::is_valid_socket_id(&c.socket_id),
        "{}",
        c.socket_id
    );
    assert_eq!(c.activity_timeout, 30);
    let d = server.connect().await;
    assert_ne!(c.socket_id, d.socket_id);
}

async fn refused(url: &str) -> (Value, Option<u16>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    error_then_close(&mut ws).await
}

#[tokio::test]
async fn admission_errors_carry_protocol_codes() {
    let server = TestServer::start().await;
    let (err, code) = refused(&server.ws_url("nope", "protocol=7")).await;
    assert_eq!(
        (err["code"].as_u64(), code),
        (Some(4001), Some(4001)),
        "{err}"
    );
    let (err, code) = refused(&server.ws_url(KEY, "client=js")).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4008), Some(4008)));
    let (err, code) = refused(&server.ws_url(KEY, "protocol=seven")).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4006), Some(4006)));
    let (err, code) = refused(&server.ws_url(KEY, "protocol=4")).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4007), Some(4007)));
    // Older protocol versions that pusher-js used still work.
    Client::connect(&server.ws_url(KEY, "protocol=5")).await;
}

#[tokio::test]
async fn a_websocket_on_another_path_is_told_4005() {
    let server = TestServer::start().await;
    for path in ["/ws/app/KEY", "/app/", "/app/KEY/extra", "/"] {
        let path = path.replace("KEY", KEY);
        let (err, code) = refused(&format!("ws://{}{path}?protocol=7", server.addr)).await;
        assert_eq!(
            (err["code"].as_u64(), code),
            (Some(4005), Some(4005)),
            "{path}: {err}"
        );
        assert!(
            err["message"]
                .as_str()
                .is_some_and(|m| m.contains(&path) && m.contains("/app/{key}")),
            "{err}"
        );
    }
    // The right path still connects; a plain request on an unknown path is still a JSON 404.
    server.connect().await;
    let res = reqwest::get(format!("http://{}/ws/app/{KEY}", server.addr))
        .await
        .expect("get");
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.expect("json");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn origin_not_allowed_is_4009() {
    let server =
        TestServer::start_with(|c| c.apps[0].allowed_origins = vec!["https://app.example".into()])
            .await;
    let url = server.ws_url(KEY, "protocol=7");
    let mut ws = Client::connect_with_origin(&url, "https://evil.example").await;
    let (err, code) = error_then_close(&mut ws).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4009), Some(4009)));
    let ok = Client::connect_with_origin(&url, "https://app.example").await;
    Client::established(ok).await;
}

#[tokio::test]
async fn app_connection_quota_is_4004_and_server_capacity_4100() {
    let server = TestServer::start_with(|c| c.apps[0].max_connections = 2).await;
    let _a = server.connect().await;
    let mut b = server.connect().await;
    let (err, code) = refused(&server.ws_url(KEY, "protocol=7")).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4004), Some(4004)));
    // A slot frees up when a connection leaves.
    b.ws.close(None).await.expect("close");
    let _ = b.ended().await;
    let mut third = None;
    for _ in 0..50 {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(KEY, "protocol=7"))
            .await
            .expect("connect");
        let first = common::Client::established_or_error(&mut ws).await;
        if first {
            third = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "slot was not released");

    let server = TestServer::start_with(|c| c.max_connections = 1).await;
    let _a = server.connect().await;
    let (err, code) = refused(&server.ws_url(KEY, "protocol=7")).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4100), Some(4100)));
}

#[tokio::test]
async fn ping_pong_both_ways() {
    let server = TestServer::start_with(|c| {
        c.activity_timeout = 1;
        c.pong_timeout = 1;
    })
    .await;
    let mut c = server.connect().await;
    assert_eq!(c.activity_timeout, 1);
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.next_event().await["event"], "pusher:pong");
    // Idle: the server pings; answering keeps the connection open past several timeouts.
    for _ in 0..3 {
        let ev = c.next_event().await;
        assert_eq!(ev["event"], "pusher:ping");
        c.send(json!({"event":"pusher:pong","data":{}})).await;
    }
    // Not answering: closed with 4201.
    let ev = c.next_event().await;
    assert_eq!(ev["event"], "pusher:ping");
    let (err, code) = error_then_close(&mut c.ws).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4201), Some(4201)));
}

#[tokio::test]
async fn malformed_input_gets_an_error_and_the_connection_keeps_working() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let mut other = server.connect().await;
    other.subscribe("news").await;

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "Invalid JSON"),
        ("[1,2]".into(), "Invalid JSON"),
        (
            json!({"event":"pusher:teleport","data":{}}).to_string(),
            "Unknown event",
        ),
        (
            json!({"event":"pusher:subscribe","data":{}}).to_string(),
            "Missing or invalid data",
        ),
        (
            json!({"event":"pusher:subscribe","data":{"channel":"a b"}}).to_string(),
            "Invalid channel name",
        ),
        (
            json!({"event":"pusher:subscribe","data":{"channel":"x".repeat(201)}}).to_string(),
            "Invalid channel name",
        ),
        (
            json!({"event":"pusher:subscribe","data":{"channel":""}}).to_string(),
            "Invalid channel name",
        ),
    ];
    for (text, msg) in cases {
        c.send_raw(&text).await;
        let ev = c.next_event().await;
        assert_eq!(ev["event"], "pusher:error", "{text}: {ev}");
        assert_eq!(ev["data"]["code"], 4300, "{text}: {ev}");
        assert!(
            ev["data"]["message"].as_str().unwrap_or("").contains(msg),
            "{text}: {ev}"
        );
    }
    c.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1, 2, 3,
    ]))
    .await
    .expect("send");
    assert_eq!(c.next_event().await["data"]["code"], 4300);

    // Still served: subscribing works, and so does the other client.
    c.subscribe(&"x".repeat(200)).await;
    c.send(json!({"event":"pusher:subscribe","data":"{\"channel\":\"stringly\"}"}))
        .await;
    c.expect_event("pusher_internal:subscription_succeeded")
        .await;
    server.api().trigger("news", "hello", "{}").await;
    assert_eq!(other.expect_event("hello").await["channel"], "news");
}

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Sends `pusher:ping` and `pusher:pong` every 250 ms until the server closes the socket;
/// returns the last `pusher:error` code and the close code.
async fn ping_until_closed(c: &mut Client) -> (Option<u64>, Option<u16>) {
    let ping = json!({"event":"pusher:ping","data":{}}).to_string();
    let pong = json!({"event":"pusher:pong","data":{}}).to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut error = None;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "still open");
        let _ = c.ws.send(Message::text(ping.clone())).await;
        let _ = c.ws.send(Message::text(pong.clone())).await;
        let tick = tokio::time::Instant::now() + Duration::from_millis(250);
        loop {
            match tokio::time::timeout_at(tick, c.ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    if v["event"] == "pusher:error" {
                        error = v["data"]["code"].as_u64();
                    }
                }
                Ok(Some(Ok(Message::Close(f)))) => return (error, f.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return (error, None),
            }
        }
    }
}

#[tokio::test]
async fn inactive_connections_without_subscriptions_are_closed_with_4202() {
    let server = TestServer::start_with(|c| c.inactivity_timeout = 1).await;
    let start = tokio::time::Instant::now();
    let mut idle = server.connect().await;
    let mut pinging = server.connect().await;
    // Heartbeats are not activity: pinging all along (and reading the pongs) does not keep it open.
    let pinger = tokio::spawn(async move { ping_until_closed(&mut pinging).await });
    let mut subscribed = server.connect().await;
    subscribed.subscribe("kept").await;
    let mut leaving = server.connect().await;
    leaving.subscribe("brief").await;

    let (err, code) = error_then_close(&mut idle.ws).await;
    assert_eq!(
        (err["code"].as_u64(), code),
        (Some(4202), Some(4202)),
        "{err}"
    );
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(pinger.await.unwrap(), (Some(4202), Some(4202)));

    // A subscribed connection stays, past the timeout, though it sent nothing since.
    subscribed.expect_silence(Duration::from_millis(500)).await;
    subscribed
        .send(json!({"event":"pusher:ping","data":{}}))
        .await;
    subscribed.expect_event("pusher:pong").await;

    // Once it leaves its last channel the clock starts, from that (non-heartbeat) message.
    leaving
        .send(json!({"event":"pusher:unsubscribe","data":{"channel":"brief"}}))
        .await;
    let left = tokio::time::Instant::now();
    let (err, code) = error_then_close(&mut leaving.ws).await;
    assert_eq!(
        (err["code"].as_u64(), code),
        (Some(4202), Some(4202)),
        "{err}"
    );
    assert!(left.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn oversized_messages() {
    let server = TestServer::start_with(|c| c.max_message_kb = 32).await;
    let mut bystander = server.connect().await;
    bystander.subscribe_private("private-room").await;
    let mut c = server.connect().await;
    c.subscribe_private("private-room").await;

    // The app's 10 KiB limit is on the event's data, not the frame around it: data of exactly
    // 10 KiB passes although the frame is larger.
    let fits = json!({"x": "y".repeat(10 * 1024 - 8)});
    assert_eq!(fits.to_string().len(), 10 * 1024);
    c.send(json!({"event":"client-fits","channel":"private-room","data":fits}))
        .await;
    assert_eq!(bystander.expect_event("client-fits").await["data"], fits);
    // One byte more: rejected, connection kept.
    let big = json!({"x": "y".repeat(10 * 1024 - 7)});
    c.send(json!({"event":"client-big","channel":"private-room","data":big}))
        .await;
    let ev = c.expect_event("pusher:error").await;
    assert_eq!(ev["data"]["code"], 4300, "{ev}");
    bystander.expect_silence(Duration::from_millis(200)).await;
    c.send(json!({"event":"client-small","channel":"private-room","data":{}}))
        .await;
    bystander.expect_event("client-small").await;

    // Over the socket limit: error, then closed with 1009; others unaffected.
    let huge = "z".repeat(40 * 1024);
    c.send(json!({"event":"client-huge","channel":"private-room","data":{"x":huge}}))
        .await;
    let (err, code) = error_then_close(&mut c.ws).await;
    assert_eq!(err["code"], 4300, "{err}");
    assert_eq!(code, Some(1009));
    server.api().trigger("private-room", "after", "{}").await;
    bystander.expect_event("after").await;
}
