//! The attacks, each bounded in sockets, bytes and time, each returning what it saw. They are the
//! ones of the abuse issue, made with no credentials except where a logged-in user would have
//! them (a presence subscription signed by the backend).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::http::HttpConn;
use crate::ws::{self, Ws};
use crate::Target;

/// What an attack saw: its sockets, how many the server closed, and figures of its own.
pub struct Seen {
    pub sockets: usize,
    pub closed: usize,
    pub extra: Value,
}

async fn tcp(t: &Target) -> Result<TcpStream> {
    Ok(TcpStream::connect((t.host.as_str(), t.port)).await?)
}

/// Whether the server has closed `tcp` (what it sent meanwhile is read and dropped).
pub async fn tcp_closed(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(20), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Whether the server has closed `ws` (reading whatever it queued meanwhile, for at most `within`).
async fn ws_closed(ws: &mut Ws, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn count_closed(sockets: &mut [Ws]) -> usize {
    let mut n = 0;
    for ws in sockets {
        if ws_closed(ws, Duration::from_millis(200)).await {
            n += 1;
        }
    }
    n
}

/// TCP connections that never send a byte, held for `hold`.
pub async fn silent(t: &Target, n: usize, hold: Duration) -> Result<Seen> {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        socks.push(tcp(t).await?);
    }
    tokio::time::sleep(hold).await;
    let mut closed = 0;
    for s in &mut socks {
        if tcp_closed(s).await {
            closed += 1;
        }
    }
    Ok(Seen {
        sockets: n,
        closed,
        extra: json!({}),
    })
}

/// Unsigned POSTs announcing 1 MB that try to send 960 KB of it and then stall, for `hold`.
pub async fn unsigned_bodies(t: &Target, n: usize, hold: Duration) -> Result<Seen> {
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + hold;
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tcp(t).await?;
        let head = format!(
            "POST /apps/{}/events?auth_key=nobody HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
            t.app_id
        );
        let accepted = Arc::clone(&accepted);
        tasks.push(tokio::spawn(async move {
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..15 {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, s.write_all(&chunk)).await {
                    Ok(Ok(())) => accepted.fetch_add(chunk.len() as u64, Ordering::Relaxed),
                    _ => break,
                };
            }
            tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
            tcp_closed(&mut s).await
        }));
    }
    let mut closed = 0;
    for task in tasks {
        if task.await.unwrap_or(false) {
            closed += 1;
        }
    }
    Ok(Seen {
        sockets: n,
        closed,
        extra: json!({ "body_bytes_written": accepted.load(Ordering::Relaxed) }),
    })
}

/// Sockets that never read, each sending `per_socket` subscribes to `name_kb` KiB channel names
/// (each answered with an error that used to quote the name whole).
pub async fn long_names(t: &Target, n: usize, per_socket: usize, name_kb: usize) -> Result<Seen> {
    let name = "a".repeat(name_kb * 1024);
    let frame = json!({"event": "pusher:subscribe", "data": {"channel": name}}).to_string();
    let mut socks = Vec::with_capacity(n);
    let mut sent = 0u64;
    for i in 0..n {
        let (mut w, _) = ws::connect(t, 100 + i).await?;
        for _ in 0..per_socket {
            let send = w.send(Message::text(frame.clone()));
            match tokio::time::timeout(Duration::from_secs(2), send).await {
                Ok(Ok(())) => sent += frame.len() as u64,
                _ => break,
            }
        }
        socks.push(w);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let closed = count_closed(&mut socks).await;
    Ok(Seen {
        sockets: n,
        closed,
        extra: json!({ "bytes_sent": sent }),
    })
}

/// `members` users on one presence channel; one of them, never reading, re-sends its own valid
/// subscribe `resends` times (each used to rebuild and resend the whole member list).
pub async fn presence_resubscribe(t: &Target, members: usize, resends: usize) -> Result<Seen> {
    let channel = "presence-abuse";
    let info = "i".repeat(200);
    let mut socks = Vec::with_capacity(members);
    for i in 0..members {
        let (mut w, sid) = ws::connect(t, 200 + i).await?;
        let cd = json!({"user_id": format!("u{i}"), "user_info": {"name": info}}).to_string();
        ws::subscribe(&mut w, t, &sid, channel, Some(&cd)).await?;
        ws::wait_succeeded(&mut w, channel, Duration::from_secs(10)).await?;
        socks.push((w, sid, cd));
    }
    let (attacker, sid, cd) = socks.last_mut().expect("at least one member");
    let auth = chorus_protocol::sign::sign_channel(&t.key, &t.secret, sid, channel, Some(cd));
    let frame = json!({"event": "pusher:subscribe",
        "data": {"channel": channel, "auth": auth, "channel_data": cd}})
    .to_string();
    let mut sent = 0;
    for _ in 0..resends {
        let send = attacker.send(Message::text(frame.clone()));
        match tokio::time::timeout(Duration::from_secs(2), send).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let closed = usize::from(ws_closed(attacker, Duration::from_millis(500)).await);
    Ok(Seen {
        sockets: 1,
        closed,
        extra: json!({ "members": members, "resends_sent": sent, "frame_bytes": frame.len() }),
    })
}

/// One socket subscribing to a new channel and leaving it again, as fast as the server answers,
/// for `secs` (it reads, so it is not a slow consumer).
pub async fn subscribe_churn(t: &Target, secs: f64) -> Result<Seen> {
    let (w, sid) = ws::connect(t, 400).await?;
    let (mut tx, mut rx) = w.split();
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(text) = m {
                if text.as_str().contains("subscription_succeeded") {
                    n += 1;
                }
            }
        }
        n
    });
    let deadline = Instant::now() + crate::sys::secs(secs);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let channel = format!("churn-{sid}-{i}");
        let sub = json!({"event": "pusher:subscribe", "data": {"channel": channel}});
        let unsub = json!({"event": "pusher:unsubscribe", "data": {"channel": channel}});
        if tx.send(Message::text(sub.to_string())).await.is_err()
            || tx.send(Message::text(unsub.to_string())).await.is_err()
        {
            break;
        }
        i += 1;
    }
    let _ = tx.close().await;
    let succeeded = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    Ok(Seen {
        sockets: 1,
        closed: 0,
        extra: json!({ "subscribes_sent": i, "subscriptions_succeeded": succeeded }),
    })
}

/// A public channel with a full history of 9 KB events; one socket subscribes recovering from its
/// start and unsubscribes again, over and over for `secs`, reading everything.
pub async fn recover_loop(t: &Target, events: usize, secs: f64) -> Result<Seen> {
    let channel = "replay";
    let mut http = HttpConn::connect(t).await?;
    let data = "r".repeat(9000);
    for _ in 0..events.div_ceil(10) {
        let batch: Vec<Value> = (0..10)
            .map(|_| json!({"name": "old", "channel": channel, "data": data}))
            .collect();
        http.publish(true, json!({ "batch": batch }).to_string().as_bytes())
            .await?;
    }
    let (mut w, _) = ws::connect(t, 500).await?;
    w.send(Message::text(
        json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string(),
    ))
    .await?;
    let ok = ws::wait_succeeded(&mut w, channel, Duration::from_secs(10)).await?;
    let ok: Value = serde_json::from_str(&ok)?;
    // The position rides beside `data`, as on events.
    let from = json!({"epoch": ok["position"]["epoch"], "offset": 0});
    let (mut tx, mut rx) = w.split();
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            counter.fetch_add(m.len() as u64, Ordering::Relaxed);
        }
    });
    let deadline = Instant::now() + crate::sys::secs(secs);
    let (mut sent, mut loops) = (0u64, 0u64);
    let unsub = json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}).to_string();
    let sub = json!({"event": "pusher:subscribe", "data": {"channel": channel, "recover": from}})
        .to_string();
    while Instant::now() < deadline {
        if tx.send(Message::text(unsub.clone())).await.is_err()
            || tx.send(Message::text(sub.clone())).await.is_err()
        {
            break;
        }
        sent += (unsub.len() + sub.len()) as u64;
        loops += 1;
        // The attacker's own pace: the server's answers are what is measured.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tx.close().await;
    reader.abort();
    Ok(Seen {
        sockets: 1,
        closed: 0,
        extra: json!({
            "history_events": events, "history_epoch": from["epoch"], "loops": loops, "bytes_sent": sent,
            "bytes_received": received.load(Ordering::Relaxed),
        }),
    })
}

/// `big` sockets joining one presence channel with `info_kb` KiB of `user_info`, then `small`
/// ones with a little (more than the channel's member limit).
pub async fn presence_flood(t: &Target, big: usize, info_kb: usize, small: usize) -> Result<Seen> {
    let channel = "presence-crowd";
    let mut socks = Vec::with_capacity(big + small);
    let (mut admitted, mut refused) = (0u64, 0u64);
    for i in 0..big + small {
        let size = if i < big { info_kb * 1024 } else { 20 };
        let (mut w, sid) = ws::connect(t, 600 + i).await?;
        let cd = json!({"user_id": format!("c{i}"), "user_info": {"x": "y".repeat(size)}});
        ws::subscribe(&mut w, t, &sid, channel, Some(&cd.to_string())).await?;
        // The answer: succeeded or a subscription error.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, w.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let s = text.as_str();
                    if s.contains("subscription_succeeded") {
                        admitted += 1;
                        break;
                    }
                    if s.contains("subscription_error") {
                        refused += 1;
                        break;
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        socks.push(w);
    }
    Ok(Seen {
        sockets: big + small,
        closed: 0,
        extra: json!({ "admitted": admitted, "refused": refused }),
    })
}

/// `n` clients on one channel that never read while `flood_mb` MB are published on it.
pub async fn stalled(t: &Target, n: usize, flood_mb: usize) -> Result<Seen> {
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let (mut w, sid) = ws::connect(t, 1000 + i).await?;
        ws::subscribe(&mut w, t, &sid, "flood", None).await?;
        ws::wait_succeeded(&mut w, "flood", Duration::from_secs(10)).await?;
        socks.push(w);
    }
    let mut http = HttpConn::connect(t).await?;
    let data = "x".repeat(9000);
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({"name": "bulk", "channel": "flood", "data": data}))
        .collect();
    let body = json!({ "batch": batch }).to_string();
    for _ in 0..(flood_mb * 1_000_000 / 90_000) {
        http.publish(true, body.as_bytes()).await?;
    }
    // Whether the server still counts any of them on the channel.
    let path = format!("/apps/{}/channels/flood", t.app_id);
    let mut occupied = None;
    for _ in 0..50 {
        let reply = http.signed("GET", &path, b"").await;
        occupied = reply.ok().and_then(|r| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            v["occupied"].as_bool()
        });
        if occupied == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = count_closed(&mut socks).await;
    Ok(Seen {
        sockets: n,
        closed,
        extra: json!({ "flood_mb": flood_mb, "left_subscribed": occupied != Some(false) }),
    })
}
