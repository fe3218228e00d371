//! History and recovery: a client that reconnects gets exactly what it missed, in order, once.

mod common;

use std::time::Duration;

use common::processes::{Node, Redis};
use common::*;
use serde_json::{json, Value};

/// Subscribes, asking to recover from `from` when given; returns `subscription_succeeded`.
async fn subscribe_recovering(c: &mut Client, channel: &str, from: Option<&Value>) -> Value {
    let mut data = json!({ "channel": channel });
    if let Some(p) = from {
        data["recover"] = p.clone();
    }
    c.send(json!({"event":"pusher:subscribe","data":data}))
        .await;
    c.expect_event("pusher_internal:subscription_succeeded")
        .await
}

/// Whether `position` is an origin: what a channel whose history has not started yet answers
/// (`{genesis}.{ms}` at offset 0); its first event starts the stream's own epoch.
fn is_origin(position: &Value) -> bool {
    position["epoch"].as_str().is_some_and(|e| e.contains('.')) && position["offset"] == 0
}

/// Reads `n` events named `name`, checking each carries the next offset after `after`.
async fn read_in_order(c: &mut Client, name: &str, n: usize, after: &Value) -> Vec<String> {
    read_positioned(c, name, n, after).await.0
}

/// [`read_in_order`], also returning the last event's position.
async fn read_positioned(
    c: &mut Client,
    name: &str,
    n: usize,
    after: &Value,
) -> (Vec<String>, Value) {
    let mut offset = after["offset"].as_u64().unwrap();
    let mut epoch = after["epoch"].clone();
    let mut data = Vec::new();
    let mut last = after.clone();
    while data.len() < n {
        let ev = c.next_event().await;
        if ev["event"] != name {
            continue;
        }
        if data.is_empty() && is_origin(after) {
            epoch = ev["position"]["epoch"].clone();
        }
        assert_eq!(ev["position"]["epoch"], epoch, "{ev}");
        assert_eq!(
            ev["position"]["offset"],
            offset + 1,
            "no gap, no duplicate: {ev}"
        );
        offset += 1;
        data.push(ev["data"].as_str().unwrap().to_owned());
        last = ev["position"].clone();
    }
    (data, last)
}

async fn publish_numbered(api: &Api, channel: &str, range: std::ops::Range<u32>) {
    let all: Vec<u32> = range.collect();
    for chunk in all.chunks(10) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name":"n","channel":channel,"data":i.to_string()}))
            .collect();
        assert_eq!(
            api.post("/batch_events", json!({ "batch": batch })).await.0,
            200
        );
    }
}

fn numbers(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test]
async fn a_reconnecting_client_gets_exactly_the_missed_events() {
    let server = TestServer::start_with(|c| c.apps[0].history_size = 500).await;
    let api = server.api();
    let mut c = server.connect().await;
    let ok = subscribe_recovering(&mut c, "news", None).await;
    let start = ok["position"].clone();
    assert!(is_origin(&start), "no event yet, so no stream yet: {ok}");
    assert!(ok.get("recovery").is_none());
    publish_numbered(&api, "news", 0..5).await;
    let (seen, last) = read_positioned(&mut c, "n", 5, &start).await;
    assert_eq!(seen, numbers(0..5));
    assert_eq!(last["offset"], 5);
    drop(c);

    // Offline while 200 events are published.
    publish_numbered(&api, "news", 5..205).await;
    let mut c = server.connect().await;
    let ok = subscribe_recovering(&mut c, "news", Some(&last)).await;
    assert_eq!(
        ok["recovery"],
        json!({"recovered": true, "replayed": 200}),
        "{ok}"
    );
    assert_eq!(ok["position"]["offset"], 205);
    let replayed = read_in_order(&mut c, "n", 200, &last).await;
    assert_eq!(replayed, numbers(5..205));
    // Then live events continue the sequence.
    publish_numbered(&api, "news", 205..206).await;
    let live = read_in_order(
        &mut c,
        "n",
        1,
        &json!({"epoch": last["epoch"], "offset": 205}),
    )
    .await;
    assert_eq!(live, ["205"]);
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn recovery_while_events_keep_coming_has_no_gap_and_no_duplicate() {
    let server = TestServer::start_with(|c| c.apps[0].history_size = 1000).await;
    let api = server.api();
    let mut c = server.connect().await;
    let start = subscribe_recovering(&mut c, "busy", None).await["position"].clone();
    drop(c);
    let publisher = tokio::spawn(async move {
        publish_numbered(&api, "busy", 0..400).await;
    });
    // Reconnect while the publisher is mid-way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = server.connect().await;
    let ok = subscribe_recovering(&mut c, "busy", Some(&start)).await;
    assert_eq!(ok["recovery"]["recovered"], true, "{ok}");
    let all = read_in_order(&mut c, "n", 400, &start).await;
    assert_eq!(all, numbers(0..400));
    publisher.await.unwrap();
}

#[tokio::test]
async fn recovery_fails_clearly_when_history_cannot_cover_the_gap() {
    let server = TestServer::start_with(|c| {
        c.apps[0].history_size = 5;
        c.apps[0].history_channels = vec!["feed".into()];
    })
    .await;
    let api = server.api();
    let mut c = server.connect().await;
    let start = subscribe_recovering(&mut c, "feed", None).await["position"].clone();
    drop(c);
    publish_numbered(&api, "feed", 0..10).await;

    let mut c = server.connect().await;
    let ok = subscribe_recovering(&mut c, "feed", Some(&start)).await;
    assert_eq!(
        ok["recovery"],
        json!({"recovered": false, "replayed": 0, "reason": "expired"})
    );
    // Subscribed all the same, at the current position: live events flow.
    assert_eq!(ok["position"]["offset"], 10);
    publish_numbered(&api, "feed", 10..11).await;
    assert_eq!(c.expect_event("n").await["position"]["offset"], 11);

    let stranger = json!({"epoch": "not-this-one", "offset": 3});
    let mut d = server.connect().await;
    let ok = subscribe_recovering(&mut d, "feed", Some(&stranger)).await;
    assert_eq!(ok["recovery"]["reason"], "epoch_changed");

    // A channel without history: no position, and recovery is unavailable.
    let ok = subscribe_recovering(&mut d, "other", Some(&stranger)).await;
    assert!(ok.get("position").is_none(), "{ok}");
    assert_eq!(ok["recovery"]["reason"], "unavailable");
    api.trigger("other", "plain", "1").await;
    assert!(d.expect_event("plain").await.get("position").is_none());
}

#[tokio::test]
async fn a_restarted_server_reports_a_new_epoch() {
    let first = TestServer::start().await;
    let mut c = first.connect().await;
    let origin = subscribe_recovering(&mut c, "quiet", None).await["position"].clone();
    subscribe_recovering(&mut c, "room", None).await;
    first.api().trigger("room", "e", "1").await;
    let seen = c.expect_event("e").await["position"].clone();
    drop(c);
    drop(first);
    let second = TestServer::start().await;
    let mut c = second.connect().await;
    let ok = subscribe_recovering(&mut c, "room", Some(&seen)).await;
    assert_eq!(ok["recovery"]["reason"], "epoch_changed");
    // So does an origin the first server gave.
    let mut c = second.connect().await;
    let ok = subscribe_recovering(&mut c, "room", Some(&origin)).await;
    assert_eq!(ok["recovery"]["reason"], "epoch_changed", "{ok}");
}

#[tokio::test]
async fn history_over_the_http_api() {
    let server =
        TestServer::start_with(|c| c.apps[0].history_channels = vec!["private-chat.".into()]).await;
    let api = server.api();
    publish_numbered(&api, "private-chat.1", 0..30).await;
    let (status, body) = api
        .get("/channels/private-chat.1/history", &[("limit", "5")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"], "private-chat.1");
    assert_eq!(body["position"]["offset"], 30);
    let events = body["events"].as_array().unwrap();
    let data: Vec<&str> = events.iter().map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["25", "26", "27", "28", "29"]);
    assert_eq!(events[4]["position"]["offset"], 30);
    assert_eq!(events[0]["event"], "n");

    let (_, body) = api.get("/channels/private-chat.1/history", &[]).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 30);
    assert_eq!(
        api.get("/channels/private-chat.1/history", &[("limit", "0")])
            .await
            .0,
        400
    );
    assert_eq!(
        api.get("/channels/private-chat.1/history", &[("limit", "x")])
            .await
            .0,
        400
    );
    let (status, body) = api.get("/channels/public/history", &[]).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("no history"));
    let unsigned = api
        .raw_get("/apps/app-id/channels/private-chat.1/history")
        .await;
    assert_eq!(unsigned.status().as_u16(), 401);
}

#[tokio::test]
async fn recovery_on_another_node_with_history_in_redis() {
    let redis = Redis::start();
    let a = Node::start(&redis, 5);
    let b = Node::start(&redis, 5);
    let mut watcher = a.connect().await;
    let start = subscribe_recovering(&mut watcher, "news", None).await["position"].clone();
    let mut leaver = b.connect().await;
    let leaver_start = subscribe_recovering(&mut leaver, "news", None).await["position"].clone();
    let genesis = |p: &Value| {
        p["epoch"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_owned()
    };
    assert!(is_origin(&start) && is_origin(&leaver_start));
    assert_eq!(
        genesis(&start),
        genesis(&leaver_start),
        "both nodes give origins of the one cluster-wide history"
    );
    drop(leaver);

    // Published through both nodes while the leaver is away.
    publish_numbered(&a.api(), "news", 0..100).await;
    publish_numbered(&b.api(), "news", 100..200).await;

    // It comes back on the other node.
    let mut back = a.connect().await;
    let ok = subscribe_recovering(&mut back, "news", Some(&leaver_start)).await;
    assert_eq!(
        ok["recovery"],
        json!({"recovered": true, "replayed": 200}),
        "{ok}"
    );
    assert_eq!(
        read_in_order(&mut back, "n", 200, &start).await,
        numbers(0..200)
    );
    // The one that stayed got the same sequence live.
    let (live, mid) = read_positioned(&mut watcher, "n", 200, &start).await;
    assert_eq!(live, numbers(0..200));

    // Concurrent publishing during a cross-node recovery: still gapless and once.
    assert_eq!(mid["offset"], 200);
    drop(back);
    let api = a.api();
    let publisher = tokio::spawn(async move { publish_numbered(&api, "news", 200..400).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut back = b.connect().await;
    let ok = subscribe_recovering(&mut back, "news", Some(&mid)).await;
    assert_eq!(ok["recovery"]["recovered"], true, "{ok}");
    assert_eq!(
        read_in_order(&mut back, "n", 200, &mid).await,
        numbers(200..400)
    );
    publisher.await.unwrap();

    let (status, body) = b
        .api()
        .get("/channels/news/history", &[("limit", "3")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["position"]["offset"], 400);
    let data: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["397", "398", "399"]);
}

#[tokio::test]
async fn history_in_redis_expires_after_its_ttl() {
    let redis = Redis::start();
    let a = Node::start_configured(&redis, 5, "test", "history_ttl = 2");
    let b = Node::start_configured(&redis, 5, "test", "history_ttl = 2");
    let mut c = a.connect().await;
    let start = subscribe_recovering(&mut c, "news", None).await["position"].clone();
    drop(c);
    publish_numbered(&a.api(), "news", 0..5).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Keeps the channel (and its epoch) alive while the first five age out.
    publish_numbered(&a.api(), "news", 5..6).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let mut back = b.connect().await;
    let ok = subscribe_recovering(&mut back, "news", Some(&start)).await;
    assert_eq!(
        ok["recovery"],
        json!({"recovered": false, "replayed": 0, "reason": "expired"}),
        "{ok}"
    );
    // What is younger than the ttl is still there.
    assert_eq!(ok["position"]["offset"], 6, "{ok}");
    let after_five = json!({"epoch": ok["position"]["epoch"], "offset": 5});
    let mut d = b.connect().await;
    let ok = subscribe_recovering(&mut d, "news", Some(&after_five)).await;
    assert_eq!(
        ok["recovery"],
        json!({"recovered": true, "replayed": 1}),
        "{ok}"
    );
    assert_eq!(
        read_in_order(&mut d, "n", 1, &after_five).await,
        numbers(5..6)
    );
}

/// Events a client's own request excluded it from (`toOthers()`) stay excluded when it recovers.
async fn to_others_survives_recovery(
    connect: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Client>>>,
    api: Api,
) {
    let mut c = connect().await;
    let start = subscribe_recovering(&mut c, "news", None).await["position"].clone();
    let old_socket = c.socket_id.clone();
    drop(c);
    for i in 0..6 {
        let mut body = json!({"name":"n","channel":"news","data":i.to_string()});
        if i % 2 == 1 {
            body["socket_id"] = json!(old_socket);
        }
        assert_eq!(api.post("/events", body).await.0, 200);
    }
    let mut c = connect().await;
    let mut from = start.clone();
    from["socket_id"] = json!(old_socket);
    let ok = subscribe_recovering(&mut c, "news", Some(&from)).await;
    assert_eq!(
        ok["recovery"],
        json!({"recovered": true, "replayed": 3}),
        "{ok}"
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            c.expect_event("n").await["data"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(got, ["0", "2", "4"]);
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn to_others_events_are_not_replayed_to_their_sender() {
    let server = TestServer::start().await;
    let url = server.ws_url(KEY, "protocol=7");
    to_others_survives_recovery(
        move || {
            let url = url.clone();
            Box::pin(async move { Client::connect(&url).await })
        },
        server.api(),
    )
    .await;

    let redis = Redis::start();
    let a = Node::start(&redis, 5);
    let url = format!("ws://{}/app/{KEY}?protocol=7", a.addr);
    to_others_survives_recovery(
        move || {
            let url = url.clone();
            Box::pin(async move { Client::connect(&url).await })
        },
        a.api(),
    )
    .await;
}

/// Subscribes to `n` channels one after the other, leaving each at once.
async fn subscribe_and_leave(c: &mut Client, n: usize) {
    for i in 0..n {
        let channel = format!("news-{i}");
        subscribe_recovering(c, &channel, None).await;
        c.send(json!({"event":"pusher:unsubscribe","data":{"channel":channel}}))
            .await;
    }
}

/// A client whose small frames are not held back by Nagle's algorithm (a subscribe right after
/// an unsubscribe would wait for the server's delayed ACK).
async fn quick_client(url: &str) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("ws connect");
    Client::established(ws).await
}

#[tokio::test]
async fn subscribing_starts_no_history_stream_publishing_does() {
    let server = TestServer::start().await;
    let mut c = quick_client(&server.ws_url(KEY, "protocol=7")).await;
    subscribe_and_leave(&mut c, 2000).await;
    let streams = || async {
        let m = reqwest::get(format!("http://{}/metrics", server.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("chorus_history_streams{app_id=\"app-id\"} "))
            .map(|v| v.parse::<u64>().unwrap())
            .expect("the gauge")
    };
    assert_eq!(streams().await, 0);
    server.api().trigger("news-7", "e", "1").await;
    assert_eq!(streams().await, 1);

    // With Redis: no keys for channels that only had subscribers, only the genesis of the
    // slots their origins came from (at most one per slot, whatever the number of channels).
    let redis = Redis::start();
    let node = Node::start(&redis, 5);
    let mut c = quick_client(&format!("ws://{}/app/{KEY}?protocol=7", node.addr)).await;
    subscribe_and_leave(&mut c, 300).await;
    let scan = |pattern: &str| redis.scan(pattern);
    assert_eq!(scan("*:h:*").trim(), "", "no history keys");
    let genesis = scan("*:genesis");
    let count = genesis.lines().count();
    assert!(
        (1..=300).contains(&count) && genesis.lines().all(|k| k.starts_with("test:{g")),
        "{genesis}"
    );
    node.api().trigger("news-7", "e", "1").await;
    assert!(scan("*:h:*").contains("test:{app-id:news-7}:h:stream"));
}
