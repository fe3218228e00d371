//! Several chorus processes sharing one real redis-server behave as one server.

mod common;

use std::time::{Duration, Instant};

use common::processes::{Mode, Node, Redis};
use common::*;
use serde_json::{json, Value};

/// Node timeout for these tests: ghosts must be gone within this plus one heartbeat.
const NODE_TIMEOUT: u64 = 2;

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_cross_nodes_once_in_order_with_exclusion() {
    let redis = Redis::start();
    let a = Node::start(&redis, NODE_TIMEOUT);
    let b = Node::start(&redis, NODE_TIMEOUT);
    let mut on_a = a.connect().await;
    let mut on_b = b.connect().await;
    on_a.subscribe_private("private-chat").await;
    on_b.subscribe_private("private-chat").await;

    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 200 {
            let ev = on_b.next_event().await;
            if ev["event"] == "n" {
                seen.push(ev["data"].as_str().unwrap().parse::<u32>().unwrap());
            }
        }
        (on_b, seen)
    });
    // The first half through node A, the second through node B: an answered trigger is in the
    // cluster, so the later one through another node cannot overtake it.
    for chunk in (0..200u32).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name":"n","channel":"private-chat","data":i.to_string()}))
            .collect();
        let node = if chunk[0] < 100 { &a } else { &b };
        assert_eq!(
            node.api()
                .post("/batch_events", json!({ "batch": batch }))
                .await
                .0,
            200
        );
    }
    let (mut on_b, seen) = reader.await.unwrap();
    assert_eq!(
        seen,
        (0..200).collect::<Vec<_>>(),
        "every event once, in order, on the other node"
    );
    let mut on_a_seen = Vec::new();
    while on_a_seen.len() < 200 {
        let ev = on_a.expect_event("n").await;
        on_a_seen.push(ev["data"].as_str().unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(on_a_seen, (0..200).collect::<Vec<_>>());

    // toOthers across nodes: the excluded socket lives on node B, the trigger goes to node A.
    let (status, _) = a
        .api()
        .post(
            "/events",
            json!({"name":"x","channel":"private-chat","data":"{}","socket_id":on_b.socket_id}),
        )
        .await;
    assert_eq!(status, 200);
    on_a.expect_event("x").await;
    // Client events cross nodes too, and are not echoed.
    on_a.send(json!({"event":"client-typing","channel":"private-chat","data":{"u":1}}))
        .await;
    let ev = on_b.expect_event("client-typing").await;
    assert_eq!(
        ev["data"],
        json!({"u":1}),
        "b got the whisper and not the excluded event before it"
    );
    on_a.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn presence_and_channel_queries_are_cluster_wide() {
    let redis = Redis::start();
    let a = Node::start(&redis, NODE_TIMEOUT);
    let b = Node::start(&redis, NODE_TIMEOUT);
    let mut watcher = a.connect().await;
    watcher
        .subscribe_presence("presence-room", "1", json!({"name":"Ann"}))
        .await;

    // User 2 with one tab on each node: one member, announced once.
    let mut tab_b = b.connect().await;
    let here = tab_b
        .subscribe_presence("presence-room", "2", json!({"name":"Bo"}))
        .await;
    assert_eq!(
        here["presence"]["count"], 2,
        "here() lists members of the other node: {here}"
    );
    assert_eq!(here["presence"]["hash"]["1"]["name"], "Ann");
    let added = watcher.expect_event("pusher_internal:member_added").await;
    assert_eq!(
        added["data"],
        r#"{"user_id":"2","user_info":{"name":"Bo"}}"#
    );
    let mut tab_a = a.connect().await;
    let here = tab_a
        .subscribe_presence("presence-room", "2", json!({"name":"Bo"}))
        .await;
    assert_eq!(here["presence"]["count"], 2);
    watcher.expect_silence(Duration::from_millis(400)).await;

    let mut plain = b.connect().await;
    plain.subscribe("news").await;
    for node in [&a, &b] {
        let (_, users) = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(sorted_ids(&users), ["1", "2"]);
        let (_, info) = node
            .api()
            .get(
                "/channels/presence-room",
                &[("info", "user_count,subscription_count")],
            )
            .await;
        assert_eq!(
            info,
            json!({"occupied":true,"user_count":2,"subscription_count":3})
        );
        let (_, list) = node.api().get("/channels", &[]).await;
        let mut names: Vec<&String> = list["channels"].as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["news", "presence-room"]);
        let (_, list) = node
            .api()
            .get(
                "/channels",
                &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            )
            .await;
        assert_eq!(list, json!({"channels":{"presence-room":{"user_count":2}}}));
    }

    // One tab leaves: still a member. The other leaves: member_removed once.
    drop(tab_a);
    watcher.expect_silence(Duration::from_millis(400)).await;
    tab_b
        .send(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}))
        .await;
    let removed = watcher.expect_event("pusher_internal:member_removed").await;
    assert_eq!(removed["data"], r#"{"user_id":"2"}"#);
    watcher.expect_silence(Duration::from_millis(400)).await;
    let (_, users) = b.api().get("/channels/presence-room/users", &[]).await;
    assert_eq!(users, json!({"users":[{"id":"1"}]}));
}

#[tokio::test]
async fn users_are_reached_and_terminated_on_every_node() {
    let redis = Redis::start();
    let a = Node::start(&redis, NODE_TIMEOUT);
    let b = Node::start(&redis, NODE_TIMEOUT);
    let mut u_on_a = a.connect().await;
    u_on_a.signin("42").await;
    u_on_a.subscribe("#server-to-user-42").await;
    let mut u_on_b = b.connect().await;
    u_on_b.signin("42").await;
    let mut other = b.connect().await;
    other.signin("43").await;

    // sendToUser through the node the user is not on.
    b.api()
        .trigger("#server-to-user-42", "direct", r#"{"hi":1}"#)
        .await;
    assert_eq!(u_on_a.expect_event("direct").await["data"], r#"{"hi":1}"#);

    let (status, _) = b
        .api()
        .post("/users/42/terminate_connections", json!({}))
        .await;
    assert_eq!(status, 200);
    for c in [&mut u_on_a, &mut u_on_b] {
        let (err, code) = error_then_close(&mut c.ws).await;
        assert_eq!((err["code"].as_u64(), code), (Some(4009), Some(4009)));
    }
    other.send(json!({"event":"pusher:ping","data":{}})).await;
    other.expect_event("pusher:pong").await;
}

#[tokio::test]
async fn a_killed_node_leaves_no_ghost() {
    let redis = Redis::start();

    let a = Node::start(&redis, NODE_TIMEOUT);
    let mut doomed = Node::start(&redis, NODE_TIMEOUT);
    let mut watcher = a.connect().await;
    watcher
        .subscribe_presence("presence-lobby", "1", json!({}))
        .await;
    let mut ghost = doomed.connect().await;
    ghost
        .subscribe_presence("presence-lobby", "9", json!({}))
        .await;
    // User 5 is on both nodes: it must survive the dead node.
    let mut five_a = a.connect().await;
    five_a
        .subscribe_presence("presence-lobby", "5", json!({}))
        .await;
    let mut five_d = doomed.connect().await;
    five_d
        .subscribe_presence("presence-lobby", "5", json!({}))
        .await;
    watcher.expect_event("pusher_internal:member_added").await;
    watcher.expect_event("pusher_internal:member_added").await;

    let killed = Instant::now();
    doomed.kill9();
    let removed = watcher
        .expect_event_within(
            "pusher_internal:member_removed",
            Duration::from_secs(NODE_TIMEOUT + 5),
        )
        .await;
    let took = killed.elapsed();
    assert_eq!(removed["data"], r#"{"user_id":"9"}"#);
    assert!(
        took <= Duration::from_secs(NODE_TIMEOUT + 2),
        "ghost removed after {took:?}"
    );
    watcher.expect_silence(Duration::from_millis(500)).await;
    let (_, users) = a.api().get("/channels/presence-lobby/users", &[]).await;
    assert_eq!(sorted_ids(&users), ["1", "5"]);
    let (_, info) = a
        .api()
        .get(
            "/channels/presence-lobby",
            &[("info", "subscription_count")],
        )
        .await;
    assert_eq!(
        info["subscription_count"], 2,
        "the dead node's subscriptions are not counted"
    );
}

#[tokio::test]
async fn nodes_survive_a_redis_restart() {
    let mut redis = Redis::start();
    if redis.mode == Mode::Sentinel {
        // A Sentinel's answer to a dead primary is a failover, not a restart: redis-ha.test.mjs.
        return;
    }
    let a = Node::start(&redis, NODE_TIMEOUT);
    let b = Node::start(&redis, NODE_TIMEOUT);
    let mut a1 = a.connect().await;
    let mut a2 = a.connect().await;
    let mut b1 = b.connect().await;
    for c in [&mut a1, &mut a2, &mut b1] {
        c.subscribe("feed").await;
    }
    a1.subscribe_presence("presence-p", "1", json!({})).await;
    b1.subscribe_presence("presence-p", "2", json!({})).await;

    redis.kill();
    eventually(
        "node a reports degraded",
        Duration::from_secs(10),
        || async { a.up().as_deref() == Some("degraded") },
    )
    .await;
    // Local subscribers are still served.
    assert_eq!(a.api().trigger("feed", "local", "1").await.0, 200);
    a1.expect_event("local").await;
    a2.expect_event("local").await;
    let (status, err) = a.api().get("/channels", &[]).await;
    assert_eq!(status, 503, "{err}");

    redis.restart_empty();
    eventually("nodes recover", Duration::from_secs(15), || async {
        a.up().as_deref() == Some("ok") && b.up().as_deref() == Some("ok")
    })
    .await;
    // Cross-node delivery resumes (the first messages may race the resubscription).
    let mut delivered = false;
    for i in 0..50 {
        a.api().trigger("feed", "again", &i.to_string()).await;
        if b1
            .next_within(Duration::from_millis(200))
            .await
            .is_some_and(|ev| ev["event"] == "again")
        {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "cross-node delivery did not resume");
    // Each node wrote its state back: the cluster-wide view is whole again.
    eventually(
        "presence state rewritten",
        Duration::from_secs(10),
        || async {
            let (_, users) = b.api().get("/channels/presence-p/users", &[]).await;
            users["users"].as_array().is_some_and(|u| u.len() == 2)
        },
    )
    .await;
}

#[tokio::test]
async fn nodes_with_different_prefixes_on_one_redis_are_separate_servers() {
    let redis = Redis::start();
    // `one` and `one_too` are one cluster (same prefix); `two` shares the Redis but not the prefix.
    let one = Node::start_with_prefix(&redis, NODE_TIMEOUT, "app-one");
    let one_too = Node::start_with_prefix(&redis, NODE_TIMEOUT, "app-one");
    let two = Node::start_with_prefix(&redis, NODE_TIMEOUT, "app-two");

    let mut on_one = one.connect().await;
    let mut on_one_too = one_too.connect().await;
    let mut on_two = two.connect().await;
    for c in [&mut on_one, &mut on_one_too, &mut on_two] {
        c.subscribe("feed").await;
    }
    on_one
        .subscribe_presence("presence-room", "1", json!({"name":"Ann"}))
        .await;
    let here = on_two
        .subscribe_presence("presence-room", "2", json!({"name":"Bo"}))
        .await;
    assert_eq!(
        here["presence"]["ids"],
        json!(["2"]),
        "a node of another prefix's member is not listed: {here}"
    );

    // A trigger on `one` crosses Redis to `one_too`, but never reaches `two`.
    assert_eq!(one.api().trigger("feed", "from-one", "1").await.0, 200);
    // (next_event, not expect_event: nothing of `two`'s, like a member_added, may come first.)
    for c in [&mut on_one, &mut on_one_too] {
        let ev = c.next_event().await;
        assert_eq!(ev["event"], "from-one", "{ev}");
    }
    // `two`'s own event is the next thing its subscriber gets: the other prefix's event would
    // have arrived by now (it reached `one_too` through the same Redis).
    assert_eq!(two.api().trigger("feed", "from-two", "2").await.0, 200);
    let ev = on_two.next_event().await;
    assert_eq!(
        ev["event"], "from-two",
        "node two got an event of the other prefix: {ev}"
    );
    on_two.expect_silence(Duration::from_millis(300)).await;
    // Nor the other way round; and no member_added for the other prefix's presence member.
    on_one.expect_silence(Duration::from_millis(300)).await;
    on_one_too.expect_silence(Duration::from_millis(300)).await;

    // Channel queries count only the prefix's own cluster.
    let (_, info) = two
        .api()
        .get("/channels/feed", &[("info", "subscription_count")])
        .await;
    assert_eq!(info, json!({"occupied":true,"subscription_count":1}));
    let (_, info) = one
        .api()
        .get("/channels/feed", &[("info", "subscription_count")])
        .await;
    assert_eq!(
        info,
        json!({"occupied":true,"subscription_count":2}),
        "same prefix: both nodes' subscribers are counted"
    );
    let (_, users) = two.api().get("/channels/presence-room/users", &[]).await;
    assert_eq!(users, json!({"users":[{"id":"2"}]}));
    let (_, users) = one_too
        .api()
        .get("/channels/presence-room/users", &[])
        .await;
    assert_eq!(users, json!({"users":[{"id":"1"}]}));
    let (_, info) = two
        .api()
        .get("/channels/presence-room", &[("info", "user_count")])
        .await;
    assert_eq!(info, json!({"occupied":true,"user_count":1}));

    // A channel only `one` has is unknown to `two`.
    let mut lone = one.connect().await;
    lone.subscribe("only-on-one").await;
    let (_, list) = two.api().get("/channels", &[]).await;
    let mut names: Vec<&String> = list["channels"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["feed", "presence-room"]);
    let (_, info) = two
        .api()
        .get("/channels/only-on-one", &[("info", "subscription_count")])
        .await;
    assert_eq!(info["occupied"], false, "{info}");
    let (_, list) = one_too.api().get("/channels", &[]).await;
    assert!(
        list["channels"]
            .as_object()
            .unwrap()
            .contains_key("only-on-one"),
        "{list}"
    );
}

#[tokio::test]
async fn the_presence_member_limit_holds_across_nodes() {
    let redis = Redis::start();
    let limit = "max_presence_members = 2";
    let a = Node::start_configured(&redis, NODE_TIMEOUT, "test", limit);
    let b = Node::start_configured(&redis, NODE_TIMEOUT, "test", limit);
    let room = "presence-full";
    let mut u1 = a.connect().await;
    let mut u2 = b.connect().await;
    u1.subscribe_presence(room, "1", json!({})).await;
    u2.subscribe_presence(room, "2", json!({})).await;
    u1.expect_event("pusher_internal:member_added").await;
    // u1's join may still reach u2 through the bus after u2's member list had it.
    while u2.next_within(Duration::from_millis(300)).await.is_some() {}
    // Node A alone has one member: the cluster's count refuses the third user, and nobody hears
    // of it.
    let mut u3 = a.connect().await;
    let channel_data = json!({"user_id": "3", "user_info": {}}).to_string();
    let auth =
        chorus_protocol::sign::sign_channel(KEY, SECRET, &u3.socket_id, room, Some(&channel_data));
    u3.send(json!({"event":"pusher:subscribe","data":{"channel":room,"auth":auth,"channel_data":channel_data}}))
        .await;
    let refused = u3.expect_event("pusher:subscription_error").await;
    assert_eq!(refused["data"]["type"], "LimitReached");
    u1.expect_silence(Duration::from_millis(300)).await;
    u2.expect_silence(Duration::from_millis(300)).await;
    let (_, users) = b.api().get(&format!("/channels/{room}/users"), &[]).await;
    assert_eq!(sorted_ids(&users), ["1", "2"]);
    let (_, info) = b
        .api()
        .get(
            &format!("/channels/{room}"),
            &[("info", "subscription_count,user_count")],
        )
        .await;
    assert_eq!(info["subscription_count"], 2);
    // A member's second connection is no new member.
    let mut u1_again = b.connect().await;
    u1_again.subscribe_presence(room, "1", json!({})).await;
}

#[tokio::test]
async fn a_cluster_node_labels_its_metrics_and_reports_its_redis_queue() {
    let redis = Redis::start();
    let server = TestServer::start_with(|c| {
        c.adapter = chorus_server::AdapterKind::Redis;
        redis.configure(c);
    })
    .await;
    let mut c = server.connect().await;
    c.subscribe("m").await;
    let metrics = format!("http://{}/metrics", server.admin);
    let start = Instant::now();
    let text = loop {
        let t = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        // Up, and a heartbeat landed (on a Redis Cluster the first one may follow the bus).
        let one = |name: &str| t.lines().any(|l| l.starts_with(name) && l.ends_with("} 1"));
        if one("chorus_redis_up{node=") && one("chorus_cluster_nodes{") {
            break t;
        }
        assert!(start.elapsed() < WAIT, "no chorus_redis_up in:\n{t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let node = text
        .lines()
        .find_map(|l| l.strip_prefix("chorus_redis_up{node=\""))
        .and_then(|rest| rest.split('"').next())
        .expect("a node label")
        .to_owned();
    assert!(
        text.contains(&format!("chorus_redis_up{{node=\"{node}\"}} 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "chorus_connections{{node=\"{node}\",app_id=\"app-id\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("chorus_redis_write_queue{{node=\"{node}\"}} ")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "chorus_redis_writes_dropped_total{{node=\"{node}\"}} 0"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("chorus_cluster_nodes{{node=\"{node}\"}} 1")),
        "{text}"
    );
    let rtt_key = format!("chorus_redis_round_trip_seconds{{node=\"{node}\"}} ");
    let rtt: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(rtt_key.as_str()))
        .and_then(|v| v.parse().ok())
        .expect("a round trip");
    assert!(rtt > 0.0 && rtt < 1.0, "{rtt}");
    let stats: Value = reqwest::get(format!("http://{}/dashboard/stats", server.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["cluster"]["node"], node.as_str());
    assert_eq!(stats["cluster"]["nodes"], json!([node]));
}
