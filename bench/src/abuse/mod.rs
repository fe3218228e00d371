//! The `abuse` scenario: what an attacker without credentials can make the server hold, and
//! whether a bystander is still served meanwhile. The attacks ([`attacks`]) run one after the
//! other: silent sockets, unsigned stalled API bodies, long channel names never read, a presence
//! member re-subscribing, subscribe/unsubscribe churn, a recovery loop, a presence flood, and
//! stalled readers of a flooded channel.
//!
//! For each: server RSS before, at its peak (sampled every 100 ms) and 2 s after, how many of the
//! attacker's sockets the server closed, and the bystander's worst event latency (a client
//! connected before the attacks, receiving an event every 200 ms through an HTTP connection
//! opened before them too).

mod attacks;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
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

/// Runs `attack` while the bystander watches for at least `watch`; one row of the results.
async fn measured<F>(
    t: &Target,
    by: &mut Bystander,
    name: &str,
    watch: Duration,
    attack: F,
) -> Result<Value>
where
    F: Future<Output = Result<attacks::Seen>>,
{
    let rss = || t.server_pid.and_then(sys::proc_rss_kib);
    let before = rss();
    let peak = RssPeak::start(t.server_pid);
    let started = Instant::now();
    let (seen, watched) = tokio::join!(attack, by.watch(watch));
    let (seen, (worst, missed)) = (seen?, watched?);
    let took = started.elapsed().as_secs_f64();
    let peak = peak.finish();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut row = json!({
        "attack": name, "secs": took, "sockets": seen.sockets, "closed_by_server": seen.closed,
        "rss_before_kib": before, "rss_peak_kib": peak, "rss_after_kib": rss(),
        "bystander_worst_ms": worst, "bystander_missed": missed,
    });
    if let (Some(row), Value::Object(extra)) = (row.as_object_mut(), seen.extra) {
        row.extend(extra);
    }
    println!("  {}", crate::abuse_row(&row));
    Ok(row)
}

pub async fn abuse(t: &Target, o: &AbuseOpts) -> Result<Value> {
    let mut by = Bystander::open(t).await?;
    let short = Duration::from_secs(3);
    let mut rows = Vec::new();
    let hold = sys::secs(o.silent_hold_secs);
    rows.push(
        measured(
            t,
            &mut by,
            "silent",
            hold,
            attacks::silent(t, o.silent, hold),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "unsigned-bodies",
            hold,
            attacks::unsigned_bodies(t, 300, hold),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "long-names",
            short,
            attacks::long_names(t, 6, 200, 90),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "presence-resubscribe",
            short,
            attacks::presence_resubscribe(t, 100, 5000),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "subscribe-churn",
            short,
            attacks::subscribe_churn(t, 4.0),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "recover-loop",
            short,
            attacks::recover_loop(t, 100, 4.0),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "presence-flood",
            short,
            attacks::presence_flood(t, 50, 90, 300),
        )
        .await?,
    );
    rows.push(
        measured(
            t,
            &mut by,
            "stalled",
            short,
            attacks::stalled(t, o.stalled, o.flood_mb),
        )
        .await?,
    );
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["attack"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let all_closed = |name: &str| {
        let r = row(name);
        r["sockets"] == r["closed_by_server"]
    };
    let ok = rows.iter().all(|r| r["bystander_missed"] == 0)
        && all_closed("silent")
        && all_closed("unsigned-bodies")
        && all_closed("stalled")
        && row("stalled")["left_subscribed"] == false;
    Ok(json!({ "scenario": "abuse", "ok": ok, "attacks": rows }))
}
