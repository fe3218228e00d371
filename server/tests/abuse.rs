//! What a client without credentials can make the server hold is bounded in bytes and in time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; returns how long that took (`None`: it did not
/// within `limit`).
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn silent_half_sent_and_idle_connections_are_closed_after_the_handshake_timeout() {
    let server = TestServer::start_with(|c| c.handshake_timeout = 1).await;
    let limit = Duration::from_secs(4);
    let opened = Instant::now();

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One byte every 200 ms: each read makes progress, the head never completes.
    let mut dribble = TcpStream::connect(server.addr).await.unwrap();
    let dribbler = tokio::spawn(async move {
        let start = Instant::now();
        for b in b"GET /app/app-key?protocol=7 HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa".iter() {
            if dribble.write_all(&[*b]).await.is_err() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        closed_within(&mut dribble, Duration::from_secs(1)).await
    });
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = [0u8; 512];
    let n = idle.read(&mut reply).await.unwrap();
    assert!(String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 200"));

    for (what, tcp) in [
        ("silent", &mut silent),
        ("half-sent", &mut half),
        ("idle keep-alive", &mut idle),
    ] {
        closed_within(tcp, limit)
            .await
            .unwrap_or_else(|| panic!("{what} connection still open after {limit:?}"));
        let took = opened.elapsed();
        assert!(
            took >= Duration::from_millis(800),
            "{what} closed too early: {took:?}"
        );
    }
    let took = dribbler.await.unwrap().expect("dribbled handshake closed");
    assert!(took < limit, "dribbled handshake took {took:?}");

    // Meanwhile and after, real clients are served.
    let mut client = server.connect().await;
    client.subscribe("c").await;
}

#[tokio::test]
async fn connections_not_yet_upgraded_are_bounded_and_cannot_lock_clients_out() {
    let server = TestServer::start_with(|c| {
        c.handshake_timeout = 1;
        c.max_pending_connections = 4;
    })
    .await;
    // Clients connected before the attack keep talking at once.
    let mut a = server.connect().await;
    let mut bystander = server.connect().await;
    a.subscribe_private("private-room").await;
    bystander.subscribe_private("private-room").await;

    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let sent = Instant::now();
    a.send(serde_json::json!({"event": "client-typing", "channel": "private-room", "data": {}}))
        .await;
    bystander.expect_event("client-typing").await;
    assert!(sent.elapsed() < Duration::from_millis(500));

    // New clients get in once the silent ones time out (in waves of 4, a second each): late,
    // but they do, and the held sockets are bounded by the permits, not by the attacker.
    let start = Instant::now();
    let mut late = tokio::time::timeout(Duration::from_secs(15), server.connect())
        .await
        .expect("a new client is served after the silent connections time out");
    late.subscribe("news").await;
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "the pending bound did not hold: served after {:?}",
        start.elapsed()
    );
    for tcp in &mut silent {
        assert!(closed_within(tcp, Duration::from_secs(10)).await.is_some());
    }
}

/// Sends a request head (and `body`) on a raw socket and returns the status line of the answer.
async fn raw_request(server: &TestServer, head: &str, body: &[u8]) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let status = text.lines().next().unwrap_or("").to_owned();
    (tcp, status)
}

fn post_head(path_and_query: &str, content_length: usize) -> String {
    format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

#[tokio::test]
async fn the_api_refuses_before_reading_a_body_it_would_not_accept() {
    let server = TestServer::start_with(|c| c.request_timeout = 1).await;
    let api = server.api();
    let chunk = vec![b'x'; 64 * 1024];
    let fast = Duration::from_millis(900);

    // Unknown app, and a bad signature: answered at once although most of the body never comes.
    let start = Instant::now();
    let (_, status) = raw_request(&server, &post_head("/apps/nope/events", 900_000), &chunk).await;
    assert!(status.contains(" 404 "), "{status}");
    let q = api.signed_query("POST", "/apps/app-id/events", "{}", &[], now());
    let forged = q.replace("auth_signature=", "auth_signature=0");
    let head = post_head(&format!("/apps/app-id/events?{forged}"), 900_000);
    let (_, status) = raw_request(&server, &head, &chunk).await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(start.elapsed() < fast, "took {:?}", start.elapsed());

    // Signed, but the announced body is over max_request_kb (1024 KiB): 413 before reading it.
    let start = Instant::now();
    let head = post_head(&format!("/apps/app-id/events?{q}"), 2 * 1024 * 1024);
    let (_, status) = raw_request(&server, &head, &chunk).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(start.elapsed() < fast, "took {:?}", start.elapsed());

    // Signed and within the limit, but the body stalls: 408 after request_timeout.
    let body = r#"{"name":"e","channel":"c","data":"x"}"#;
    let q = api.signed_query("POST", "/apps/app-id/events", body, &[], now());
    let head = post_head(&format!("/apps/app-id/events?{q}"), body.len());
    let start = Instant::now();
    let (_, status) = raw_request(&server, &head, &body.as_bytes()[..10]).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(start.elapsed() >= Duration::from_millis(900));

    // The whole body in time is still accepted.
    let (status, _) = api.post_raw("/events", body).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_connection_signed_in_cannot_sign_in_as_someone_else() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.signin("1").await;
    // Signing in again as the same user is answered as before.
    c.signin("1").await;
    let user_data = serde_json::json!({"id": "2"}).to_string();
    let auth = chorus_protocol::sign::sign_user(KEY, SECRET, &c.socket_id, &user_data);
    c.send(serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    let err = c.expect_event("pusher:error").await;
    assert_eq!(err["data"]["code"], 4009);
    assert!(err["data"]["message"]
        .as_str()
        .unwrap()
        .contains("another user"));
    c.send(
        serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-2"}}),
    )
    .await;
    let refused = c.expect_event("pusher:subscription_error").await;
    assert_eq!(refused["data"]["status"], 403);
    // Still user 1: terminating user 1 closes it.
    let (status, _) = server
        .api()
        .post("/users/1/terminate_connections", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, code) = error_then_close(&mut c.ws).await;
    assert_eq!(code, Some(4009));
}

/// Publishes `mb` megabytes on `channel` in batches of ten 9 KB events.
async fn flood(server: &TestServer, channel: &str, mb: usize) {
    let data = "x".repeat(9000);
    for _ in 0..(mb * 1_000_000 / 90_000) {
        let batch: Vec<_> = (0..10)
            .map(|_| serde_json::json!({"name": "bulk", "channel": channel, "data": data}))
            .collect();
        let (status, _) = server
            .api()
            .post("/batch_events", serde_json::json!({ "batch": batch }))
            .await;
        assert_eq!(status, 200);
    }
}

/// Waits until `channel` has `n` subscribers on the server.
async fn subscribers_become(server: &TestServer, channel: &str, n: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let (_, info) = server
            .api()
            .get(
                &format!("/channels/{channel}"),
                &[("info", "subscription_count")],
            )
            .await;
        if info["subscription_count"] == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_once_its_queue_is_over_its_bytes() {
    let server = TestServer::start_with(|c| c.outbound_queue_kb = 64).await;
    let mut stuck = server.connect().await;
    stuck.subscribe("flood").await;
    let mut bystander = server.connect().await;
    bystander.subscribe("news").await;
    flood(&server, "flood", 8).await;
    assert!(
        subscribers_become(&server, "flood", 0, Duration::from_secs(10)).await,
        "the client that never reads is still subscribed"
    );
    // Nobody else was held up.
    let sent = Instant::now();
    server.api().trigger("news", "e", "1").await;
    bystander.expect_event("e").await;
    assert!(sent.elapsed() < Duration::from_secs(1));
    drop(stuck);
}

#[tokio::test]
async fn a_socket_that_takes_nothing_is_closed_after_write_timeout_even_while_it_pings() {
    let server = TestServer::start_with(|c| {
        c.outbound_queue = 1_000_000;
        c.outbound_queue_kb = 1_000_000;
        c.write_timeout = 1;
    })
    .await;
    let mut stuck = server.connect().await;
    stuck.subscribe("flood").await;
    let pinger = tokio::spawn(async move {
        use futures_util::SinkExt;
        for _ in 0..100 {
            let ping = tokio_tungstenite::tungstenite::Message::Ping(vec![1].into());
            if stuck.ws.send(ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    flood(&server, "flood", 8).await;
    assert!(
        subscribers_become(&server, "flood", 0, Duration::from_secs(8)).await,
        "the stalled client is still subscribed"
    );
    pinger.abort();
}

/// Sends a presence subscribe and returns the answer (succeeded or subscription_error).
async fn join(
    c: &mut Client,
    channel: &str,
    user_id: &str,
    info: serde_json::Value,
) -> serde_json::Value {
    let channel_data = serde_json::json!({"user_id": user_id, "user_info": info}).to_string();
    let auth = chorus_protocol::sign::sign_channel(
        KEY,
        SECRET,
        &c.socket_id,
        channel,
        Some(&channel_data),
    );
    c.send(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth, "channel_data": channel_data}}))
        .await;
    loop {
        let ev = c.next_event().await;
        if ev["event"] != "pusher:ping" && ev["event"] != "pusher_internal:member_added" {
            return ev;
        }
    }
}

fn limit_reached(ev: &serde_json::Value, status: u16) {
    assert_eq!(ev["event"], "pusher:subscription_error", "{ev}");
    assert_eq!(ev["data"]["type"], "LimitReached", "{ev}");
    assert_eq!(ev["data"]["status"], status, "{ev}");
}

#[tokio::test]
async fn subscriptions_per_connection_and_channels_per_app_are_capped() {
    let server = TestServer::start_with(|c| {
        c.apps[0].max_subscriptions_per_connection = 3;
        c.apps[0].max_channels = 4;
    })
    .await;
    let mut a = server.connect().await;
    for ch in ["a1", "a2", "a3"] {
        a.subscribe(ch).await;
    }
    a.send(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "a4"}}))
        .await;
    limit_reached(&a.expect_event("pusher:subscription_error").await, 429);
    // A repeat is answered as before; leaving one makes room.
    a.subscribe("a3").await;
    a.send(serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": "a1"}}))
        .await;
    a.subscribe("a4").await;

    // The app holds a2, a3, a4; one more channel, then only existing ones.
    let mut b = server.connect().await;
    b.subscribe("b1").await;
    b.send(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "b2"}}))
        .await;
    let refused = b.expect_event("pusher:subscription_error").await;
    limit_reached(&refused, 429);
    assert!(refused["data"]["error"]
        .as_str()
        .unwrap()
        .contains("4 channels"));
    b.subscribe("a2").await;
}

#[tokio::test]
async fn presence_members_and_their_info_are_capped_and_a_repeat_resends_nothing() {
    let server = TestServer::start_with(|c| c.apps[0].max_presence_members = 2).await;
    let room = "presence-room";
    let mut u1 = server.connect().await;
    let mut u2 = server.connect().await;
    let mut u3 = server.connect().await;
    let mut u1_again = server.connect().await;
    assert_eq!(
        join(&mut u1, room, "1", serde_json::json!({})).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert_eq!(
        join(&mut u2, room, "2", serde_json::json!({})).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    limit_reached(&join(&mut u3, room, "3", serde_json::json!({})).await, 429);
    // Another connection of a member is no new member.
    assert_eq!(
        join(&mut u1_again, room, "1", serde_json::json!({})).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let (_, users) = server
        .api()
        .get(&format!("/channels/{room}/users"), &[])
        .await;
    assert_eq!(sorted_ids(&users), ["1", "2"]);
    // u3 was not subscribed: it gets nothing of the channel.
    server.api().trigger(room, "e", "x").await;
    u1.expect_event("e").await;
    u3.expect_silence(Duration::from_millis(300)).await;

    // A repeated subscribe does not rebuild and resend the member list.
    let channel_data = serde_json::json!({"user_id": "1", "user_info": {}}).to_string();
    let auth =
        chorus_protocol::sign::sign_channel(KEY, SECRET, &u1.socket_id, room, Some(&channel_data));
    for _ in 0..3 {
        u1.send(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": room, "auth": auth, "channel_data": channel_data}}))
            .await;
    }
    u1.expect_silence(Duration::from_millis(300)).await;

    // user_info over max_presence_user_info_kb (2 KiB).
    let big = serde_json::json!({"bio": "x".repeat(3000)});
    limit_reached(&join(&mut u3, "presence-other", "3", big).await, 413);
}

/// A raw WebSocket on `server` after the handshake and `connection_established`, for frames no
/// well-behaved client library would send.
async fn raw_websocket(server: &TestServer) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    // The 101 answer and the established frame.
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("connection_established") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed during the handshake");
        seen.extend_from_slice(&buf[..n]);
    }
    tcp
}

/// A client frame (masked with a zero key, so the payload goes as is).
fn client_frame(fin: bool, opcode: u8, payload_len: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    match payload_len {
        0..=125 => f.push(0x80 | payload_len as u8),
        126..=0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            f.push(0x80 | 127);
            f.extend_from_slice(&payload_len.to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close frame; returns its code (`None`: closed without one).
async fn close_code_of(tcp: &mut TcpStream) -> Option<u16> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Parse what is there: unmasked server frames with short lengths.
        let mut i = 0;
        while i + 2 <= data.len() {
            let opcode = data[i] & 0x0f;
            let (len, head) = match data[i + 1] & 0x7f {
                126 if i + 4 <= data.len() => {
                    (u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize, 4)
                }
                126 => break,
                127 => panic!("unexpectedly long server frame"),
                n => (n as usize, 2),
            };
            if i + head + len > data.len() {
                break;
            }
            if opcode == 8 {
                let p = &data[i + head..i + head + len];
                return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
            i += head + len;
        }
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Err(_) => panic!("neither a close frame nor the end within {WAIT:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_protocol_errors_close_with_their_rfc_6455_codes() {
    let server = TestServer::start().await;
    // Text that is not UTF-8: 1007.
    let mut ws = raw_websocket(&server).await;
    ws.write_all(&client_frame(true, 1, 2, &[0xc3, 0x28]))
        .await
        .unwrap();
    assert_eq!(close_code_of(&mut ws).await, Some(1007));
    // A continuation with nothing to continue: 1002.
    let mut ws = raw_websocket(&server).await;
    ws.write_all(&client_frame(true, 0, 1, b"x")).await.unwrap();
    assert_eq!(close_code_of(&mut ws).await, Some(1002));
    // A 16 MB frame announced (over max_message_kb): 1009, without it being sent.
    let mut ws = raw_websocket(&server).await;
    ws.write_all(&client_frame(true, 1, 16 << 20, b"{"))
        .await
        .unwrap();
    assert_eq!(close_code_of(&mut ws).await, Some(1009));
    // The server is fine.
    let mut c = server.connect().await;
    c.subscribe("ok").await;
}

#[tokio::test]
async fn over_its_memory_limit_the_server_is_not_ready_and_refuses_new_connections() {
    let http = reqwest::Client::new();
    let get = |server: &TestServer, path: &str| {
        let url = format!("http://{}{path}", server.addr);
        let http = http.clone();
        async move {
            let res = http.get(url).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };
    let roomy = TestServer::start_with(|c| c.max_memory_mb = 1 << 20).await;
    assert_eq!(get(&roomy, "/ready").await.0, 200);

    // 1 MiB: any process is over it.
    let tight = TestServer::start_with(|c| c.max_memory_mb = 1).await;
    let (status, body) = get(&tight, "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("over_memory"), "{body}");
    // Still alive, and still serving what it has.
    assert_eq!(get(&tight, "/up").await.0, 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(tight.ws_url(KEY, "protocol=7"))
        .await
        .unwrap();
    let (err, code) = error_then_close(&mut ws).await;
    assert_eq!(err["code"], 4100);
    assert_eq!(code, Some(4100));
    let url = format!("http://{}/metrics", tight.admin);
    let metrics = http.get(url).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("chorus_connections_refused_total{reason=\"memory\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("chorus_process_resident_bytes{} "));
}

#[tokio::test]
async fn recovering_again_and_again_is_rate_limited_per_connection() {
    let server = TestServer::start_with(|c| c.apps[0].max_subscriptions_per_connection = 3).await;
    let mut c = server.connect().await;
    let subscribe = |from: Option<serde_json::Value>| {
        let mut data = serde_json::json!({"channel": "h"});
        if let Some(p) = from {
            data["recover"] = p;
        }
        serde_json::json!({"event": "pusher:subscribe", "data": data})
    };
    c.send(subscribe(None)).await;
    let start = c
        .expect_event("pusher_internal:subscription_succeeded")
        .await["position"]
        .clone();
    for i in 0..5 {
        server.api().trigger("h", "n", &i.to_string()).await;
    }
    let unsubscribe = serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": "h"}});
    // A burst as large as the channels a connection may hold (a reconnect recovers them all)...
    for _ in 0..3 {
        c.send(unsubscribe.clone()).await;
        c.send(subscribe(Some(start.clone()))).await;
        let ok = loop {
            let ev = c.next_event().await;
            if ev["event"] == "pusher_internal:subscription_succeeded" {
                break ev;
            }
        };
        assert_eq!(ok["recovery"]["recovered"], true, "{ok}");
    }
    // ...then the history is not replayed again on demand.
    c.send(unsubscribe).await;
    c.send(subscribe(Some(start))).await;
    let limited = loop {
        let ev = c.next_event().await;
        if ev["event"] == "pusher_internal:subscription_succeeded" {
            break ev;
        }
    };
    assert_eq!(
        limited["recovery"],
        serde_json::json!({"recovered": false, "replayed": 0, "reason": "rate_limited"})
    );
    c.expect_silence(Duration::from_millis(300)).await;
}
