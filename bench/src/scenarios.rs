//! The scenarios. Each returns one JSON record (or several for `max-fanout`) with the figures and
//! whether it passed its correctness checks (no loss, no error, right presence events).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::load::{self, PublishPlan, Recorder};
use crate::sys::{self, CpuMeter};
use crate::ws;
use crate::Target;

fn per_msg_us(cpu: Option<f64>, delivered: u64) -> Option<f64> {
    cpu.filter(|_| delivered > 0)
        .map(|c| c * 1e6 / delivered as f64)
}

// ---------------------------------------------------------------- idle

pub struct IdleOpts {
    pub connections: usize,
    pub concurrency: usize,
    pub hold_secs: f64,
}

pub async fn idle(t: &Target, o: &IdleOpts) -> Result<Value> {
    let rss0 = t.server_pid.and_then(sys::proc_rss_kib);
    let meter = CpuMeter::start(t.server_pid);
    let start = Instant::now();
    let rec = Recorder::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection is read (pings answered) from the moment it is open.
    let jobs = (0..o.connections).map(|i| {
        let rec = Arc::clone(&rec);
        let stop = stop_rx.clone();
        async move {
            let (w, _) = ws::connect(t, i).await?;
            anyhow::Ok(tokio::spawn(load::subscriber(w, rec, stop)))
        }
    });
    let mut holders = Vec::with_capacity(o.connections);
    let mut failed = 0usize;
    let mut first_error = None;
    let mut stream = futures_util::stream::iter(jobs).buffer_unordered(o.concurrency.max(1));
    while let Some(r) = stream.next().await {
        match r {
            Ok(h) => holders.push(h),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    drop(stream);
    let connect_secs = start.elapsed().as_secs_f64();
    let cpu = meter.read();
    let opened = holders.len();
    // Let the server settle (allocator, lazily grown buffers) before reading its memory.
    tokio::time::sleep(sys::secs(o.hold_secs)).await;
    let rss1 = t.server_pid.and_then(sys::proc_rss_kib);
    let closed = rec.closed.load(Ordering::SeqCst);
    let _ = stop_tx.send(true);
    for h in holders {
        let _ = h.await;
    }
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) if opened > 0 => Some((b as f64 - a as f64) * 1024.0 / opened as f64),
        _ => None,
    };
    let ok = failed == 0 && closed == 0;
    if let Some(e) = rec.first_error.lock().clone() {
        first_error.get_or_insert(e);
    }
    Ok(json!({
        "scenario": "idle", "ok": ok,
        "connections": o.connections, "opened": opened, "failed": failed, "closed_while_idle": closed,
        "connect_secs": connect_secs, "connects_per_sec": opened as f64 / connect_secs.max(1e-9),
        "server_rss_before_kib": rss0, "server_rss_after_kib": rss1,
        "server_bytes_per_connection": per_conn,
        "connections_per_gib": per_conn.map(|b| (1u64 << 30) as f64 / b.max(1.0)),
        "server_cpu_secs_connecting": cpu.server_cpu_secs, "tool_cpu_secs_connecting": cpu.tool_cpu_secs,
        "first_error": first_error,
    }))
}

// ---------------------------------------------------------------- fan-out, max-fan-out, chat

pub struct FanoutOpts {
    pub subscribers: usize,
    pub rate: f64,
    pub duration_secs: f64,
    pub max_batch: usize,
    pub http_connections: usize,
    pub payload_bytes: usize,
    pub concurrency: usize,
}

/// Subscribers on `channels` (subscriber `i` on `channels[i % len]`) that stay open across
/// phases.
struct Audience {
    rec: Arc<Recorder>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    channels: Arc<Vec<String>>,
    per_channel: usize,
}

impl Audience {
    async fn open(
        t: &Target,
        channels: Vec<String>,
        subscribers: usize,
        conc: usize,
    ) -> Result<Self> {
        let n = channels.len();
        let socks = load::open_subscribed(t, subscribers, conc, |i| channels[i % n].clone())
            .await
            .context("opening subscribers")?;
        let rec = Recorder::new();
        let (stop, rx) = watch::channel(false);
        let tasks = socks
            .into_iter()
            .map(|w| tokio::spawn(load::subscriber(w, Arc::clone(&rec), rx.clone())))
            .collect();
        Ok(Self {
            rec,
            stop,
            tasks,
            per_channel: subscribers / n.max(1),
            channels: Arc::new(channels),
        })
    }

    /// One timed publishing phase; returns its record.
    async fn phase(&self, t: &Target, o: &FanoutOpts, rate: f64) -> Result<Value> {
        let phase = self.rec.next_phase();
        let meter = CpuMeter::start(t.server_pid);
        let plan = PublishPlan {
            rate,
            duration: sys::secs(o.duration_secs),
            max_batch: o.max_batch,
            connections: o.http_connections,
            channels: Arc::clone(&self.channels),
            payload_bytes: o.payload_bytes,
            phase,
        };
        let pubs = load::publish(t, &plan).await?;
        let expected = pubs.events_ok * self.per_channel as u64;
        load::drain(
            &self.rec,
            expected,
            Duration::from_millis(1500),
            Duration::from_secs(10),
        )
        .await;
        let cpu = meter.read();
        let delivered = self.rec.delivered.load(Ordering::SeqCst);
        let hist = self.rec.latency_us.lock().clone();
        let loss = if expected > 0 {
            1.0 - delivered.min(expected) as f64 / expected as f64
        } else {
            0.0
        };
        let errors = self.rec.errors.load(Ordering::SeqCst);
        let closed = self.rec.closed.load(Ordering::SeqCst);
        let ok = pubs.events_failed == 0 && errors == 0 && delivered == expected && expected > 0;
        let first_error = pubs
            .first_error
            .clone()
            .or_else(|| self.rec.first_error.lock().clone());
        Ok(json!({
            "ok": ok,
            "subscribers_per_channel": self.per_channel, "channels": self.channels.len(),
            "target_rate": rate, "published": pubs.events_ok, "publish_failed": pubs.events_failed,
            "publish_rate": pubs.rate(), "http_requests": pubs.requests,
            "http_requests_per_sec": pubs.requests as f64 / pubs.wall_secs.max(1e-9),
            "http_request_ms": {"p50": pubs.request_p(0.5), "p99": pubs.request_p(0.99)},
            "expected": expected, "delivered": delivered, "late": self.rec.late.load(Ordering::SeqCst),
            "loss": loss, "delivered_per_sec": delivered as f64 / pubs.wall_secs.max(1e-9),
            "latency_ms": load::percentiles_ms(&hist),
            "wall_secs": cpu.wall_secs, "publish_secs": pubs.wall_secs,
            "server_cpu_secs": cpu.server_cpu_secs, "server_cores": cpu.server_cores(),
            "server_cpu_us_per_delivered": per_msg_us(cpu.server_cpu_secs, delivered),
            "server_cpu_us_per_published": per_msg_us(cpu.server_cpu_secs, pubs.events_ok),
            "tool_cpu_secs": cpu.tool_cpu_secs, "tool_cores": cpu.tool_cores(),
            "server_rss_kib": t.server_pid.and_then(sys::proc_rss_kib),
            "errors": errors, "closed_connections": closed, "first_error": first_error,
        }))
    }

    async fn close(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn tag(mut v: Value, scenario: &str) -> Value {
    v["scenario"] = scenario.into();
    v
}

pub async fn fanout(t: &Target, o: &FanoutOpts) -> Result<Value> {
    let aud = Audience::open(t, vec!["bench-fanout".into()], o.subscribers, o.concurrency).await?;
    let r = aud.phase(t, o, o.rate).await;
    aud.close().await;
    Ok(tag(r?, "fanout"))
}

pub struct MaxOpts {
    pub start_rate: f64,
    pub factor: f64,
    pub max_rate: f64,
    pub max_steps: usize,
    pub max_p99_ms: f64,
    pub max_loss: f64,
}

/// Steps the publish rate up until loss, p99 over the limit, or the publisher falls short of the
/// target; returns every step and the last sustainable one.
pub async fn max_fanout(t: &Target, o: &FanoutOpts, m: &MaxOpts) -> Result<Vec<Value>> {
    let aud = Audience::open(t, vec!["bench-max".into()], o.subscribers, o.concurrency).await?;
    let mut out = Vec::new();
    let mut best: Option<Value> = None;
    let mut rate = m.start_rate;
    for step in 0..m.max_steps {
        if rate > m.max_rate {
            break;
        }
        let r = aud.phase(t, o, rate).await?;
        let p99 = r["latency_ms"]["p99"].as_f64().unwrap_or(f64::MAX);
        let loss = r["loss"].as_f64().unwrap_or(1.0);
        let reached = r["publish_rate"].as_f64().unwrap_or(0.0) >= 0.9 * rate;
        let sustained =
            loss <= m.max_loss && p99 <= m.max_p99_ms && reached && r["errors"].as_u64() == Some(0);
        let mut rec = tag(r, "max-fanout-step");
        rec["step"] = step.into();
        rec["sustained"] = sustained.into();
        println!("{}", crate::summary(&rec));
        out.push(rec.clone());
        if !sustained {
            break;
        }
        best = Some(rec);
        rate *= m.factor;
    }
    aud.close().await;
    let mut fin = best.unwrap_or_else(|| json!({"ok": false, "delivered_per_sec": 0.0}));
    fin["scenario"] = "max-fanout".into();
    fin["ok"] = fin.get("delivered").is_some().into();
    out.push(fin);
    Ok(out)
}

pub struct ChatOpts {
    pub rooms: usize,
}

/// Rooms of two private-channel members each; events go round-robin to the rooms.
pub async fn chat(t: &Target, o: &FanoutOpts, c: &ChatOpts) -> Result<Value> {
    let channels: Vec<String> = (0..c.rooms).map(|i| format!("private-chat-{i}")).collect();
    let aud = Audience::open(t, channels, c.rooms * 2, o.concurrency).await?;
    let r = aud.phase(t, o, o.rate).await;
    aud.close().await;
    let mut r = tag(r?, "chat");
    r["rooms"] = c.rooms.into();
    Ok(r)
}

// ---------------------------------------------------------------- presence churn

pub struct PresenceOpts {
    pub channels: usize,
    pub watchers: usize,
    pub churners: usize,
    pub rate: f64,
    pub duration_secs: f64,
    pub hold_ms: u64,
}

#[derive(Default)]
struct Seen {
    added: HashMap<String, u32>,
    removed: HashMap<String, u32>,
    removed_before_added: u64,
}

fn member_event(frame: &str) -> Option<(bool, String)> {
    let added = frame.contains("pusher_internal:member_added");
    if !added && !frame.contains("pusher_internal:member_removed") {
        return None;
    }
    let v: Value = serde_json::from_str(frame).ok()?;
    let data = match &v["data"] {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        d => d.clone(),
    };
    let id = match &data["user_id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some((added, id))
}

/// Watchers sit on each presence channel; churners join with fresh user ids at `rate` per
/// second, stay `hold_ms`, and leave. Every watcher must see exactly one `member_added` and one
/// `member_removed` (in that order) per churn join on its channel.
pub async fn presence(t: &Target, o: &PresenceOpts) -> Result<Value> {
    let meter = CpuMeter::start(t.server_pid);
    let channels: Arc<Vec<String>> = Arc::new(
        (0..o.channels)
            .map(|i| format!("presence-room-{i}"))
            .collect(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let note = {
        let errors = Arc::clone(&errors);
        let first_error = Arc::clone(&first_error);
        move |e: String| {
            errors.fetch_add(1, Ordering::Relaxed);
            first_error.lock().get_or_insert(e);
        }
    };
    // Watchers.
    let mut watchers = Vec::new();
    let mut index = 0;
    for c in channels.iter() {
        for w in 0..o.watchers {
            let (mut ws, sid) = ws::connect(t, index).await?;
            index += 1;
            let cd = json!({"user_id": format!("watcher-{c}-{w}"), "user_info": {}}).to_string();
            ws::subscribe(&mut ws, t, &sid, c, Some(&cd)).await?;
            ws::wait_succeeded(&mut ws, c, Duration::from_secs(10)).await?;
            let seen = Arc::new(Mutex::new(Seen::default()));
            let s2 = Arc::clone(&seen);
            let mut stop = stop_rx.clone();
            let note = note.clone();
            let task = tokio::spawn(async move {
                loop {
                    let msg = tokio::select! { m = ws.next() => m, _ = stop.changed() => break };
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            let s = text.as_str();
                            if let Some((added, id)) = member_event(s) {
                                // Other watchers come and go at the start and end: only churn
                                // users are checked.
                                if id.starts_with("watcher-") {
                                    continue;
                                }
                                let mut seen = s2.lock();
                                if added {
                                    *seen.added.entry(id).or_default() += 1;
                                } else {
                                    if !seen.added.contains_key(&id) {
                                        seen.removed_before_added += 1;
                                    }
                                    *seen.removed.entry(id).or_default() += 1;
                                }
                            } else if ws::is_ping(s.as_bytes()) {
                                let _ = ws.send(ws::pong()).await;
                            } else if s.contains("error") {
                                note(format!("watcher got {s}"));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => {
                            note("watcher socket closed".into());
                            break;
                        }
                    }
                }
                let _ = ws.close(None).await;
            });
            watchers.push((c.clone(), seen, task));
        }
    }
    // Churners: each owns a socket and joins/leaves in turn.
    let joins: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let join_us = Arc::new(Mutex::new(load::histogram()));
    let start = Instant::now();
    let end = start + sys::secs(o.duration_secs);
    let total_rate = o.rate.max(0.1);
    let per = total_rate / o.churners.max(1) as f64;
    let mut churn_tasks = Vec::new();
    for k in 0..o.churners {
        let (mut ws, sid) = ws::connect(t, index).await?;
        index += 1;
        let channels = Arc::clone(&channels);
        let joins = Arc::clone(&joins);
        let join_us = Arc::clone(&join_us);
        let note = note.clone();
        let t = t.clone();
        let hold = Duration::from_millis(o.hold_ms);
        churn_tasks.push(tokio::spawn(async move {
            let mut n: u64 = 0;
            // Stagger the churners so joins spread evenly over each second.
            let offset = k as f64 / total_rate;
            loop {
                let due = start + Duration::from_secs_f64(n as f64 / per + offset);
                if due >= end {
                    break;
                }
                sys::sleep_until(due).await;
                let c = &channels[(n as usize + k) % channels.len()];
                let user = format!("u{k}-{n}");
                let cd = json!({"user_id": user, "user_info": {"n": n}}).to_string();
                let t0 = Instant::now();
                let r = async {
                    ws::subscribe(&mut ws, &t, &sid, c, Some(&cd)).await?;
                    let ok = ws::wait_succeeded(&mut ws, c, Duration::from_secs(10)).await?;
                    join_us
                        .lock()
                        .saturating_record(t0.elapsed().as_micros().max(1) as u64);
                    if !ok.contains(&user) {
                        note(format!(
                            "own user missing from subscription_succeeded: {ok}"
                        ));
                    }
                    joins
                        .lock()
                        .entry(c.clone())
                        .or_default()
                        .push(user.clone());
                    tokio::time::sleep(hold).await;
                    ws::unsubscribe(&mut ws, c).await
                }
                .await;
                if let Err(e) = r {
                    note(format!("churn: {e:#}"));
                    break;
                }
                n += 1;
            }
            let _ = ws.close(None).await;
            n
        }));
    }
    let mut total_joins = 0;
    for t in churn_tasks {
        total_joins += t.await.unwrap_or(0);
    }
    let churn_secs = start.elapsed().as_secs_f64();
    // Wait for the last member_removed events, then check every watcher.
    let joins = joins.lock().clone();
    let expected_per_watcher: HashMap<&String, usize> =
        joins.iter().map(|(c, v)| (c, v.len())).collect();
    let settle = Instant::now();
    loop {
        let done = watchers.iter().all(|(c, seen, _)| {
            let want = expected_per_watcher.get(c).copied().unwrap_or(0);
            let s = seen.lock();
            s.removed.len() >= want
        });
        if done || settle.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut missing = 0u64;
    let mut duplicate = 0u64;
    let mut out_of_order = 0u64;
    let mut expected_events = 0u64;
    for (c, seen, task) in watchers {
        let _ = task.await;
        let s = seen.lock();
        out_of_order += s.removed_before_added;
        for user in joins.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
            expected_events += 2;
            for map in [&s.added, &s.removed] {
                match map.get(user).copied().unwrap_or(0) {
                    0 => missing += 1,
                    1 => {}
                    _ => duplicate += 1,
                }
            }
        }
    }
    let cpu = meter.read();
    let errs = errors.load(Ordering::SeqCst);
    let ok = errs == 0 && missing == 0 && duplicate == 0 && out_of_order == 0 && total_joins > 0;
    let hist = join_us.lock().clone();
    Ok(json!({
        "scenario": "presence", "ok": ok,
        "channels": o.channels, "watchers_per_channel": o.watchers, "churners": o.churners,
        "target_joins_per_sec": o.rate, "joins": total_joins,
        "joins_per_sec": total_joins as f64 / churn_secs.max(1e-9),
        "member_events_expected": expected_events, "missing": missing, "duplicate": duplicate,
        "out_of_order": out_of_order,
        "join_latency_ms": load::percentiles_ms(&hist),
        "server_cpu_secs": cpu.server_cpu_secs, "tool_cpu_secs": cpu.tool_cpu_secs,
        "wall_secs": cpu.wall_secs,
        "errors": errs, "first_error": first_error.lock().clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::member_event;

    #[test]
    fn parses_member_events_with_string_or_object_data() {
        let added = r#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"u1-2\",\"user_info\":{}}"}"#;
        assert_eq!(member_event(added), Some((true, "u1-2".into())));
        let removed = r#"{"event":"pusher_internal:member_removed","channel":"presence-x","data":{"user_id":"u1-2"}}"#;
        assert_eq!(member_event(removed), Some((false, "u1-2".into())));
        assert_eq!(member_event(r#"{"event":"bench","data":"x"}"#), None);
    }
}
