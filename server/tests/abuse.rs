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
