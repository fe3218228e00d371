//! Health, metrics, graceful shutdown, slow consumers, ordering under load.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn up_and_metrics() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let up = http
        .get(format!("http://{}/up", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 200);
    assert_eq!(up.json::<Value>().await.unwrap()["status"], "ok");

    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("m").await;
    b.subscribe("m").await;
    server.api().trigger("m", "e", "12345").await;
    a.expect_event("e").await;
    b.expect_event("e").await;
    server.api().get("/channels/unsigned", &[]).await;
    Api::new(server.addr, APP_ID, KEY, "bad")
        .trigger("m", "e", "1")
        .await;

    let text = http
        .get(format!("http://{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert_eq!(metric("chorus_connections{app_id=\"app-id\"}"), 2);
    assert_eq!(metric("chorus_channels{app_id=\"app-id\"}"), 1);
    assert_eq!(metric("chorus_messages_sent_total{app_id=\"app-id\"}"), 2);
    assert!(metric("chorus_bytes_sent_total{app_id=\"app-id\"}") > 2 * 20);
    assert_eq!(
        metric("chorus_messages_received_total{app_id=\"app-id\"}"),
        2
    );
    let events = "endpoint=\"/apps/{app_id}/events\"";
    let channel = "endpoint=\"/apps/{app_id}/channels/{channel}\"";
    assert_eq!(
        metric(&format!(
            "chorus_http_requests_total{{{events},status=\"200\"}}"
        )),
        1
    );
    assert_eq!(
        metric(&format!(
            "chorus_http_requests_total{{{events},status=\"401\"}}"
        )),
        1
    );
    assert_eq!(
        metric(&format!(
            "chorus_http_requests_total{{{channel},status=\"200\"}}"
        )),
        1
    );
    assert!(text.contains("# TYPE chorus_messages_sent_total counter"));
    assert_eq!(
        metric("chorus_connections_opened_total{app_id=\"app-id\"}"),
        2
    );
    assert_eq!(metric("chorus_subscriptions{app_id=\"app-id\"}"), 2);
    assert!(metric("chorus_process_open_fds{}") > 4);
    // One broadcast reached its two subscribers: one observation.
    assert_eq!(
        metric("chorus_fanout_duration_seconds_count{app_id=\"app-id\"}"),
        1
    );
    assert_eq!(
        metric("chorus_fanout_duration_seconds_bucket{app_id=\"app-id\",le=\"+Inf\"}"),
        1
    );
    assert_eq!(
        metric(&format!(
            "chorus_http_request_duration_seconds_count{{{events}}}"
        )),
        2
    );
    assert!(text.contains("# TYPE chorus_http_request_duration_seconds histogram"));
    // A refused subscription and a recovery that cannot be served, counted by kind.
    b.send(json!({"event":"pusher:subscribe","data":{"channel":"private-x","auth":"app-key:bad"}}))
        .await;
    b.expect_event("pusher:subscription_error").await;
    b.send(json!({"event":"pusher:subscribe","data":{"channel":"r","recover":{"epoch":"gone","offset":3}}}))
        .await;
    b.expect_event("pusher_internal:subscription_succeeded")
        .await;
    let text = http
        .get(format!("http://{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("chorus_subscriptions_refused_total{app_id=\"app-id\",type=\"AuthError\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("chorus_recoveries_total{app_id=\"app-id\",outcome=\"epoch_changed\"} 1"),
        "{text}"
    );
    assert!(!text.contains("node=\""), "no node label on a single node");
    // No label takes a value a client chose: the unknown channel's name is nowhere.
    assert!(!text.contains("unsigned"), "{text}");

    // Closed by the client, then by the server (4009 after a terminate is not needed: a refusal).
    drop(a);
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("nope", "protocol=7"))
        .await
        .unwrap();
    let (_, code) = error_then_close(&mut ws).await;
    assert_eq!(code, Some(4001));
    let closed = |text: &str, code: &str| -> u64 {
        let key = format!("chorus_connections_closed_total{{code=\"{code}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut text = String::new();
    for _ in 0..50 {
        text = http
            .get(format!("http://{}/metrics", server.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if closed(&text, "client") == 1 && closed(&text, "4001") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (closed(&text, "client"), closed(&text, "4001")),
        (1, 1),
        "{text}"
    );

    // Not on the client port: it lists every app id.
    let client_port = http
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(client_port.status().as_u16(), 404);
}

#[tokio::test]
async fn the_admin_listener_requires_its_token_when_it_has_one() {
    let server = TestServer::start_with(|c| c.admin_token = Some("s3cret-token".into())).await;
    let http = reqwest::Client::new();
    let metrics = format!("http://{}/metrics", server.admin);
    let status =
        |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    let refused = http.get(&metrics).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    assert_eq!(status(http.get(&metrics).bearer_auth("wrong")).await, 401);
    assert_eq!(
        status(http.get(&metrics).bearer_auth("s3cret-token-")).await,
        401
    );
    assert_eq!(
        status(http.get(&metrics).bearer_auth("s3cret-token")).await,
        200
    );
    // Everything on it, unknown paths too, is behind the token.
    assert_eq!(
        status(http.get(format!("http://{}/nope", server.admin))).await,
        401
    );
    let known = http
        .get(format!("http://{}/nope", server.admin))
        .bearer_auth("s3cret-token");
    assert_eq!(status(known).await, 404);
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_reconnect() {
    let server = TestServer::start_with(|c| c.shutdown_timeout = 5).await;
    let addr = server.addr;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = server.connect().await;
        c.subscribe("s").await;
        clients.push(c);
    }
    let stopping = tokio::spawn(server.shutdown());
    for c in &mut clients {
        let (err, code) = error_then_close(&mut c.ws).await;
        assert_eq!(
            (err["code"].as_u64(), code),
            (Some(4200), Some(4200)),
            "{err}"
        );
    }
    let took = stopping.await.unwrap();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_others_keep_receiving() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(|c| c.outbound_queue = 64).await;
    let api = server.api();
    let mut slow = server.connect().await;
    slow.subscribe("firehose").await;
    let mut fast = server.connect().await;
    fast.subscribe("firehose").await;

    // ~9 KB per event, 10 per batch, up to 120 batches (~11 MB): far more than socket buffers hold.
    let data = "x".repeat(9 * 1024);
    let reader = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            let ev = fast.next_event().await;
            match ev["event"].as_str() {
                Some("e") => n += 1,
                Some("done") => return n,
                _ => {}
            }
        }
    });
    let subscribers = || async {
        let (status, info) = api
            .get("/channels/firehose", &[("info", "subscription_count")])
            .await;
        assert_eq!(status, 200, "{info}");
        info["subscription_count"].as_u64()
    };
    let mut sent = 0u32;
    let mut dropped = false;
    for _ in 0..120 {
        let batch: Vec<Value> = (0..10)
            .map(|_| json!({"name":"e","channel":"firehose","data":data}))
            .collect();
        let (status, _) = api.post("/batch_events", json!({ "batch": batch })).await;
        assert_eq!(status, 200);
        sent += 10;
        // The killed connection leaves its channels at once; its goodbye waits for it to read.
        if subscribers().await == Some(1) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slow consumer was never disconnected");

    // The slow client reads again (within the server's 2 s close grace): after what the kernel
    // had buffered, its stream ends with pusher:error 4100 and a 4100 close, not a bare drop.
    let mut last_error = None;
    let mut texts_after_error = 0;
    let close = loop {
        let msg = tokio::time::timeout(WAIT, slow.ws.next())
            .await
            .expect("slow socket ends");
        match msg {
            Some(Ok(Message::Text(t))) => {
                // Only small frames are parsed: the buffered 9 KB events must be read quickly.
                if t.len() < 1024 && t.as_str().contains("pusher:error") {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    last_error = Some(v["data"].clone());
                } else if last_error.is_some() {
                    texts_after_error += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("slow socket dropped without a close frame: {other:?}"),
        }
    };
    let err = last_error.expect("a pusher:error before the close");
    assert_eq!(err["code"], 4100, "{err}");
    assert_eq!(close, Some(4100));
    assert_eq!(
        texts_after_error, 0,
        "the error is the last frame before the close"
    );

    api.trigger("firehose", "done", "{}").await;
    assert_eq!(
        reader.await.unwrap(),
        sent,
        "the fast consumer got every event"
    );
}

#[tokio::test]
async fn five_hundred_events_in_order_to_three_subscribers() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = server.connect().await;
        c.subscribe("ordered").await;
        clients.push(c);
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while seen.len() < 500 {
                    let ev = c.next_event().await;
                    if ev["event"] == "n" {
                        seen.push(ev["data"].as_str().unwrap().parse::<u32>().unwrap());
                    }
                }
                seen
            })
        })
        .collect();
    for chunk in (0..500u32).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name":"n","channel":"ordered","data":i.to_string()}))
            .collect();
        assert_eq!(
            api.post("/batch_events", json!({ "batch": batch })).await.0,
            200
        );
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), (0..500).collect::<Vec<_>>());
    }
}
