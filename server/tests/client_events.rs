//! Client events (`client-*`, Echo's whisper).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn whisper_reaches_others_but_not_the_sender() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let mut outsider = server.connect().await;
    a.subscribe_private("private-chat.1").await;
    b.subscribe_private("private-chat.1").await;
    a.send(json!({"event":"client-typing","channel":"private-chat.1","data":{"userId":1}}))
        .await;
    let ev = b.expect_event("client-typing").await;
    assert_eq!(ev["data"], json!({"userId":1}));
    assert_eq!(ev["channel"], "private-chat.1");
    assert!(ev.get("user_id").is_none());
    a.expect_silence(Duration::from_millis(300)).await;
    outsider.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn presence_client_events_carry_user_id() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_presence("presence-chat", "10", json!({})).await;
    b.subscribe_presence("presence-chat", "20", json!({})).await;
    a.send(json!({"event":"client-typing","channel":"presence-chat","data":{"typing":true}}))
        .await;
    let ev = b.expect_event("client-typing").await;
    assert_eq!(ev["user_id"], "10");
}

#[tokio::test]
async fn client_events_are_rejected_where_not_allowed() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("public").await;
    b.subscribe("public").await;
    a.subscribe_private("private-encrypted-e").await;
    a.send(json!({"event":"client-x","channel":"public","data":{}}))
        .await;
    assert_eq!(a.expect_event("pusher:error").await["data"]["code"], 4301);
    a.send(json!({"event":"client-x","channel":"private-encrypted-e","data":{}}))
        .await;
    assert_eq!(a.expect_event("pusher:error").await["data"]["code"], 4301);
    a.send(json!({"event":"client-x","channel":"private-not-mine","data":{}}))
        .await;
    assert_eq!(a.expect_event("pusher:error").await["data"]["code"], 4301);
    a.send(json!({"event":"client-x","data":{}})).await;
    assert_eq!(a.expect_event("pusher:error").await["data"]["code"], 4300);
    b.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn client_events_can_be_disabled_per_app() {
    let server = TestServer::start_with(|c| c.apps[0].enable_client_events = false).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_private("private-c").await;
    b.subscribe_private("private-c").await;
    a.send(json!({"event":"client-x","channel":"private-c","data":{}}))
        .await;
    let ev = a.expect_event("pusher:error").await;
    assert_eq!(ev["data"]["code"], 4301);
    assert!(ev["data"]["message"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
    b.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn client_events_are_rate_limited_per_connection() {
    let server = TestServer::start_with(|c| c.apps[0].max_client_events_per_second = 5).await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_private("private-r").await;
    b.subscribe_private("private-r").await;
    for i in 0..8 {
        a.send(json!({"event":"client-n","channel":"private-r","data":{"i":i}}))
            .await;
    }
    let mut rejected = 0;
    for _ in 0..3 {
        let ev = a.expect_event("pusher:error").await;
        assert_eq!(ev["data"]["code"], 4301);
        rejected += 1;
    }
    let mut got = Vec::new();
    while let Some(ev) = b.next_within(Duration::from_millis(300)).await {
        got.push(ev["data"]["i"].as_u64().unwrap());
    }
    assert_eq!(rejected, 3);
    assert_eq!(got, [0, 1, 2, 3, 4], "the first 5 pass in order");
    // The bucket refills: after a second, events pass again; the connection was never closed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send(json!({"event":"client-n","channel":"private-r","data":{"i":99}}))
        .await;
    assert_eq!(b.expect_event("client-n").await["data"]["i"], 99);
}
