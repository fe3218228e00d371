//! Per-channel routing with the Redis adapter: a node receives the events of a channel only while
//! it has a local subscriber of it (its Redis message count shows it), and its first subscriber
//! gets every event published after its `subscription_succeeded`.

mod common;

use std::time::{Duration, Instant};

use common::processes::Redis;
use common::*;

/// This node's `chorus_redis_messages_received_total`.
async fn received(server: &TestServer) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", server.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("chorus_redis_messages_received_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no chorus_redis_messages_received_total in:\n{text}"))
}

async fn node(redis: &Redis) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.adapter = chorus_server::AdapterKind::Redis;
        redis.configure(c);
        c.redis_prefix = "routing".into();
    })
    .await;
    let start = Instant::now();
    loop {
        let up: serde_json::Value = reqwest::get(format!("http://{}/up", server.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if up["status"] == "ok" {
            return server;
        }
        assert!(start.elapsed() < WAIT, "node never reached Redis: {up}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_node_receives_only_the_channels_it_serves() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut on_a = a.connect().await;
    on_a.subscribe("only-on-a").await;
    let before = received(&b).await;
    for i in 0..50 {
        assert_eq!(
            a.api().trigger("only-on-a", "n", &i.to_string()).await.0,
            200
        );
    }
    for _ in 0..50 {
        on_a.expect_event("n").await;
    }
    // The same events through B's API: A gets them from Redis, B still receives nothing back.
    for i in 0..20 {
        assert_eq!(
            b.api().trigger("only-on-a", "n", &i.to_string()).await.0,
            200
        );
    }
    for _ in 0..20 {
        on_a.expect_event("n").await;
    }
    assert_eq!(
        received(&b).await,
        before,
        "B has no subscriber of the channel"
    );

    // B's first subscriber: routed before subscription_succeeded, so every later event arrives.
    let mut on_b = b.connect().await;
    on_b.subscribe("only-on-a").await;
    for i in 0..10 {
        assert_eq!(
            a.api().trigger("only-on-a", "m", &i.to_string()).await.0,
            200
        );
    }
    for i in 0..10 {
        let ev = on_b.expect_event("m").await;
        assert_eq!(ev["data"], i.to_string());
    }
    assert!(received(&b).await >= before + 10);

    // The last one leaving unroutes the channel again.
    on_b.send(serde_json::json!({"event":"pusher:unsubscribe","data":{"channel":"only-on-a"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = received(&b).await;
    for i in 0..20 {
        assert_eq!(
            a.api().trigger("only-on-a", "n", &i.to_string()).await.0,
            200
        );
    }
    for _ in 0..20 {
        on_a.expect_event("n").await;
    }
    assert_eq!(
        received(&b).await,
        after,
        "unsubscribed: nothing more for B"
    );
}
