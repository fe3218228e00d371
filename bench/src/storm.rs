//! `reconnect-storm`: N clients each subscribed to a private channel (signed here, as the app's
//! backend would: every signature counts as one auth request), then the server stops gracefully
//! (SIGTERM: 4200 to everyone) and starts again on the same port, and every client reconnects and
//! resubscribes. Two reconnect policies: pusher-js's (at once, then a fixed second between failed
//! attempts: no jitter) and the Chorus SDK's (at once, then full jitter from 250 ms growing 1.6×
//! up to 10 s, never more than the outage so far). Reports the time until all are subscribed
//! again, the auth requests per second at the peak, connect failures, refusals, and the new
//! server's CPU and RSS peak.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

use crate::{sys, ws, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// pusher-js: at once after 4200, then every second.
    PusherJs,
    /// The Chorus SDK: at once after 4200, then full jitter.
    Sdk,
}

/// Which server the binary is (how to start it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Chorus,
    /// Sockudo, configured through its environment as bench/run.sh does (local adapter, limits
    /// lifted).
    Sockudo,
}

pub struct StormOpts {
    pub kind: Kind,
    pub clients: usize,
    pub rooms: usize,
    pub policy: Policy,
}

/// Auth requests per 100 ms since the stop, and everything else the clients count.
#[derive(Default)]
struct Counts {
    auth_buckets: Mutex<Vec<u64>>,
    resubscribed: AtomicU64,
    connect_failures: AtomicU64,
    refusals: AtomicU64,
    last_done_ms: AtomicU64,
}

impl Counts {
    fn auth(&self, since: Instant) {
        let i = (since.elapsed().as_millis() / 100) as usize;
        let mut b = self.auth_buckets.lock();
        if b.len() <= i {
            b.resize(i + 1, 0);
        }
        b[i] += 1;
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn start(bin: &Path, kind: Kind, port: u16) -> Result<Child> {
    let mut cmd = Command::new(bin);
    match kind {
        Kind::Chorus => {
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--app-id", "storm-app", "--app-key", "storm-key"])
                .args(["--app-secret", "storm-secret", "--log", "warn"])
                .args(["--admin-port", "0"]);
        }
        Kind::Sockudo => {
            let app = ("storm-app", "storm-key", "storm-secret");
            cmd = crate::sockudo::command(bin, port, app, crate::sockudo::Adapter::Local)?;
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("{} did not listen on {port} within 15 s", bin.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

/// Connects and subscribes once; `Err` when either fails.
async fn join(
    t: &Target,
    i: usize,
    rooms: usize,
    counts: &Counts,
    since: Instant,
) -> Result<ws::Ws> {
    let (mut sock, socket_id) = ws::connect(t, i).await?;
    let channel = format!("private-room-{}", i % rooms);
    counts.auth(since);
    ws::subscribe(&mut sock, t, &socket_id, &channel, None).await?;
    ws::wait_succeeded(&mut sock, &channel, Duration::from_secs(30)).await?;
    Ok(sock)
}

/// One client: waits for its socket to end, then reconnects by `policy` until subscribed again.
async fn client(
    t: Target,
    i: usize,
    o: (usize, Policy),
    mut sock: ws::Ws,
    counts: Arc<Counts>,
    stop: Arc<Mutex<Option<Instant>>>,
) {
    while let Some(Ok(_)) = sock.next().await {}
    drop(sock);
    let Some(since) = *stop.lock() else { return };
    let (rooms, policy) = o;
    let mut attempt: i32 = 0;
    loop {
        match join(&t, i, rooms, &counts, since).await {
            Ok(s) => {
                counts.resubscribed.fetch_add(1, Ordering::Relaxed);
                counts
                    .last_done_ms
                    .fetch_max(since.elapsed().as_millis() as u64, Ordering::Relaxed);
                // Held open until the run ends.
                let mut s = s;
                while let Some(Ok(_)) = s.next().await {}
                return;
            }
            Err(e) => {
                let text = format!("{e:#}");
                if text.contains("4100") || text.contains("LimitReached") {
                    counts.refusals.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.connect_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let delay_ms = match policy {
            Policy::PusherJs => 1000.0,
            Policy::Sdk => {
                let outage = since.elapsed().as_millis() as f64;
                let step = (250.0 * 1.6f64.powi(attempt))
                    .min(10_000.0)
                    .min(outage.max(250.0));
                rand_unit() * step
            }
        };
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(delay_ms as u64)).await;
    }
}

/// A uniform number in [0, 1) without a dependency: the low bits of a fast clock, hashed.
fn rand_unit() -> f64 {
    let mut x = sys::now_us() ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

pub async fn run(bin: &Path, o: &StormOpts) -> Result<Value> {
    sys::raise_nofile();
    let port = free_port()?;
    let mut server = start(bin, o.kind, port).await?;
    let t = Target {
        host: "127.0.0.1".into(),
        port,
        app_id: "storm-app".into(),
        key: "storm-key".into(),
        secret: "storm-secret".into(),
        server_pid: server.id(),
    };
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(Mutex::new(None));
    let gate = Arc::new(Semaphore::new(256));
    let mut joins = Vec::with_capacity(o.clients);
    let started = Instant::now();
    for i in 0..o.clients {
        let (t, counts, gate) = (t.clone(), Arc::clone(&counts), Arc::clone(&gate));
        let rooms = o.rooms.max(1);
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            join(&t, i, rooms, &counts, started).await
        }));
    }
    let mut tasks = Vec::with_capacity(o.clients);
    for (i, j) in joins.into_iter().enumerate() {
        let sock = j
            .await
            .context("client task")?
            .with_context(|| format!("client {i}"))?;
        let (t, counts, stop) = (t.clone(), Arc::clone(&counts), Arc::clone(&stop));
        tasks.push(tokio::spawn(client(
            t,
            i,
            (o.rooms.max(1), o.policy),
            sock,
            counts,
            stop,
        )));
    }
    let connect_secs = started.elapsed().as_secs_f64();
    counts.auth_buckets.lock().clear();

    // The storm: a graceful stop (4200 to all), then the same binary again on the same port.
    let since = Instant::now();
    *stop.lock() = Some(since);
    if let Some(pid) = server.id() {
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), server.wait()).await;
    let down_ms = since.elapsed().as_millis() as u64;
    let mut server = start(bin, o.kind, port).await?;
    let up_ms = since.elapsed().as_millis() as u64;
    let pid = server.id();
    let cpu0 = pid.and_then(sys::proc_cpu_secs).unwrap_or(0.0);
    let mut rss_peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (counts.resubscribed.load(Ordering::Relaxed) as usize) < o.clients
        && Instant::now() < deadline
    {
        rss_peak = rss_peak.max(pid.and_then(sys::proc_rss_kib).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = pid.and_then(sys::proc_cpu_secs).unwrap_or(0.0) - cpu0;
    rss_peak = rss_peak.max(pid.and_then(sys::proc_rss_kib).unwrap_or(0));
    let resubscribed = counts.resubscribed.load(Ordering::Relaxed);
    let buckets = counts.auth_buckets.lock().clone();
    let auth_total: u64 = buckets.iter().sum();
    let auth_peak_per_sec = buckets.iter().copied().max().unwrap_or(0) * 10;
    for task in tasks {
        task.abort();
    }
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(json!({
        "scenario": "reconnect-storm",
        "server_kind": format!("{:?}", o.kind),
        "ok": resubscribed as usize == o.clients,
        "policy": format!("{:?}", o.policy),
        "clients": o.clients,
        "rooms": o.rooms,
        "initial_connect_secs": connect_secs,
        "server_down_ms": down_ms,
        "server_up_ms": up_ms,
        "resubscribed": resubscribed,
        "all_resubscribed_ms": counts.last_done_ms.load(Ordering::Relaxed),
        "auth_requests": auth_total,
        "auth_peak_per_sec": auth_peak_per_sec,
        "connect_failures": counts.connect_failures.load(Ordering::Relaxed),
        "refusals": counts.refusals.load(Ordering::Relaxed),
        "server_cpu_secs": cpu,
        "server_rss_peak_kib": rss_peak,
    }))
}
