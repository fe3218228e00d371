//! The `abuse` scenario: what an attacker without credentials can make the server hold, and
//! whether a bystander is still served meanwhile. Two attacks, one after the other:
//! - `silent`: N TCP connections that never send a byte (they must be closed after the server's
//!   handshake timeout);
//! - `stalled`: K WebSocket clients subscribed to a channel that is flooded, which never read
//!   (they must be closed as slow consumers, their queues bounded).
//!
//! For each: server RSS before, at its peak (sampled every 100 ms) and after, how many of the
//! attacker's connections the server closed, and the bystander's worst event latency (a client
//! connected before the attack, receiving an event every 200 ms through an HTTP connection opened
//! before it too).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::http::HttpConn;
use crate::sys;
use crate::ws::{self, Ws};
use crate::Target;

pub struct AbuseOpts {
    pub silent: usize,
    /// Seconds to hold the silent sockets (more than the server's handshake timeout).
    pub silent_hold_secs: f64,
    pub stalled: usize,
    pub flood_mb: usize,
}

/// The server's resident size, its peak kept by a sampler while an attack runs.
struct RssPeak {
    pid: Option<u32>,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    fn start(pid: Option<u32>) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(pid) = pid {
            let (peak, stop) = (Arc::clone(&peak_kib), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = sys::proc_rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        Self {
            pid,
            peak_kib,
            stop,
        }
    }

    fn finish(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.pid.map(|_| self.peak_kib.load(Ordering::Relaxed))
    }
}

/// A client connected before the attacks, fed through an HTTP connection opened before them.
struct Bystander {
    ws: Ws,
    http: HttpConn,
    seq: u64,
}

impl Bystander {
    async fn open(t: &Target) -> Result<Self> {
        let (mut ws, socket_id) = ws::connect(t, 0).await?;
        ws::subscribe(&mut ws, t, &socket_id, "bystander", None).await?;
        ws::wait_succeeded(&mut ws, "bystander", Duration::from_secs(10)).await?;
        Ok(Self {
            ws,
            http: HttpConn::connect(t).await?,
            seq: 0,
        })
    }

    /// Publishes one event and waits for it; returns the latency, `None` if it never came.
    async fn probe(&mut self) -> Result<Option<Duration>> {
        self.seq += 1;
        let tag = format!("probe-{}", self.seq);
        let body = json!({"name": "probe", "channel": "bystander", "data": tag}).to_string();
        let sent = Instant::now();
        let reply = self.http.publish(false, body.as_bytes()).await?;
        if reply.status != 200 {
            bail!("probe publish answered {}", reply.status);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return Ok(None);
            };
            match msg {
                Some(Ok(Message::Text(text))) if text.as_str().contains(&tag) => {
                    return Ok(Some(sent.elapsed()));
                }
                Some(Ok(Message::Text(text))) if ws::is_ping(text.as_bytes()) => {
                    self.ws.send(ws::pong()).await?;
                }
                Some(Ok(_)) => {}
                _ => bail!("the bystander's socket ended"),
            }
        }
    }

    /// Probes every 200 ms for `how_long`; returns (worst latency ms, probes missed).
    async fn watch(&mut self, how_long: Duration) -> Result<(f64, u64)> {
        let end = Instant::now() + how_long;
        let (mut worst, mut missed) = (0f64, 0u64);
        while Instant::now() < end {
            match self.probe().await? {
                Some(d) => worst = worst.max(d.as_secs_f64() * 1e3),
                None => missed += 1,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok((worst, missed))
    }
}

async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(20), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

pub async fn abuse(t: &Target, o: &AbuseOpts) -> Result<Value> {
    let rss = || t.server_pid.and_then(sys::proc_rss_kib);
    let mut bystander = Bystander::open(t).await?;

    // Silent sockets.
    let before = rss();
    let peak = RssPeak::start(t.server_pid);
    let mut silent = Vec::with_capacity(o.silent);
    for _ in 0..o.silent {
        silent.push(TcpStream::connect((t.host.as_str(), t.port)).await?);
    }
    let (worst_silent, missed_silent) = bystander.watch(sys::secs(o.silent_hold_secs)).await?;
    let mut closed = 0;
    for tcp in &mut silent {
        if closed_by_server(tcp).await {
            closed += 1;
        }
    }
    drop(silent);
    let silent_peak = peak.finish();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let silent_after = rss();

    // Stalled readers of a flooded channel.
    let stalled_before = rss();
    let peak = RssPeak::start(t.server_pid);
    let mut stalled = Vec::with_capacity(o.stalled);
    for i in 0..o.stalled {
        let (mut w, socket_id) = ws::connect(t, 1 + i).await?;
        ws::subscribe(&mut w, t, &socket_id, "flood", None).await?;
        ws::wait_succeeded(&mut w, "flood", Duration::from_secs(10)).await?;
        stalled.push(w);
    }
    let target = t.clone();
    let flood_mb = o.flood_mb;
    let flood = tokio::spawn(async move {
        let mut http = HttpConn::connect(&target).await?;
        let data = "x".repeat(9000);
        let batch: Vec<Value> = (0..10)
            .map(|_| json!({"name": "bulk", "channel": "flood", "data": data}))
            .collect();
        let body = json!({ "batch": batch }).to_string();
        for _ in 0..(flood_mb * 1_000_000 / 90_000) {
            http.publish(true, body.as_bytes()).await?;
        }
        anyhow::Ok(())
    });
    let (worst_stalled, missed_stalled) = bystander.watch(Duration::from_secs(3)).await?;
    flood.await??;
    // Left: whether the server still counts any of them on the channel.
    let path = format!("/apps/{}/channels/flood", t.app_id);
    let mut left = None;
    for _ in 0..50 {
        let reply = bystander.http.signed("GET", &path, b"").await;
        let occupied = reply.ok().and_then(|r| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            v["occupied"].as_bool()
        });
        left = occupied;
        if occupied == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stalled_peak = peak.finish();
    drop(stalled);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stalled_after = rss();

    let ok = closed == o.silent && left == Some(false) && missed_silent == 0 && missed_stalled == 0;
    Ok(json!({
        "scenario": "abuse", "ok": ok,
        "silent": o.silent, "silent_closed_by_server": closed,
        "silent_rss_before_kib": before, "silent_rss_peak_kib": silent_peak, "silent_rss_after_kib": silent_after,
        "silent_bystander_worst_ms": worst_silent, "silent_bystander_missed": missed_silent,
        "stalled": o.stalled, "flood_mb": o.flood_mb, "stalled_left_subscribed": left.map(|occupied| if occupied { "some" } else { "none" }),
        "stalled_rss_before_kib": stalled_before, "stalled_rss_peak_kib": stalled_peak, "stalled_rss_after_kib": stalled_after,
        "stalled_bystander_worst_ms": worst_stalled, "stalled_bystander_missed": missed_stalled,
    }))
}
