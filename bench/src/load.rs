//! The machinery shared by the fan-out, max-fan-out and chat scenarios: subscribers that record
//! delivery latency, and a publisher that posts timestamped events through the HTTP API at a fixed
//! rate (batching when it falls behind) over a few keep-alive connections.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::http::HttpConn;
use crate::sys::{now_us, sleep_until};
use crate::ws::{self, Ws};
use crate::Target;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// What every subscriber reports into. Frames carry `#t<send µs>#p<phase>#` in their data;
/// only frames of the current phase count (a late frame of an earlier step is not a delivery of
/// this one).
pub struct Recorder {
    pub phase: AtomicU32,
    pub delivered: AtomicU64,
    pub late: AtomicU64,
    pub errors: AtomicU64,
    pub closed: AtomicU64,
    pub latency_us: Mutex<Histogram<u64>>,
    pub first_error: Mutex<Option<String>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: AtomicU32::new(0),
            delivered: AtomicU64::new(0),
            late: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            latency_us: Mutex::new(histogram()),
            first_error: Mutex::new(None),
        })
    }

    /// Starts a new phase: clears the counters and the histogram.
    pub fn next_phase(&self) -> u32 {
        let p = self.phase.fetch_add(1, Ordering::SeqCst) + 1;
        self.delivered.store(0, Ordering::SeqCst);
        self.late.store(0, Ordering::SeqCst);
        self.latency_us.lock().reset();
        p
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(what);
        }
    }
}

/// Reads `<digits>` right after `tag` in `frame`.
pub fn number_after(frame: &[u8], tag: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(frame, tag)? + tag.len();
    let mut n: u64 = 0;
    let mut any = false;
    for &b in &frame[at..] {
        if b.is_ascii_digit() {
            n = n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            any = true;
        } else {
            break;
        }
    }
    any.then_some(n)
}

/// Reads one subscriber's socket until `stop`, recording timestamped frames.
pub async fn subscriber(mut ws: Ws, rec: Arc<Recorder>, mut stop: watch::Receiver<bool>) {
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let b = text.as_bytes();
                if let Some(sent) = number_after(b, b"#t") {
                    let now = now_us();
                    let phase = number_after(b, b"#p").unwrap_or(u64::MAX);
                    if phase == u64::from(rec.phase.load(Ordering::Relaxed)) {
                        rec.delivered.fetch_add(1, Ordering::Relaxed);
                        rec.latency_us
                            .lock()
                            .saturating_record(now.saturating_sub(sent).max(1));
                    } else {
                        rec.late.fetch_add(1, Ordering::Relaxed);
                    }
                } else if ws::is_ping(b) {
                    if ws.send(ws::pong()).await.is_err() {
                        break;
                    }
                } else if memchr::memmem::find(b, b"error").is_some() {
                    rec.error(text.as_str().chars().take(300).collect());
                }
            }
            Some(Ok(Message::Close(frame))) => {
                rec.closed.fetch_add(1, Ordering::Relaxed);
                rec.error(format!("server closed a subscriber: {frame:?}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                rec.closed.fetch_add(1, Ordering::Relaxed);
                rec.error(format!("subscriber socket error: {e}"));
                break;
            }
            None => {
                rec.closed.fetch_add(1, Ordering::Relaxed);
                rec.error("subscriber socket closed".into());
                break;
            }
        }
    }
    let _ = ws.close(None).await;
}

/// Opens `count` connections, subscribing connection `i` to `channel_of(i)`, `concurrency` at a
/// time; returns them ready (subscription succeeded).
pub async fn open_subscribed(
    t: &Target,
    count: usize,
    concurrency: usize,
    channel_of: impl Fn(usize) -> String,
) -> Result<Vec<Ws>> {
    let jobs = (0..count).map(|i| {
        let channel = channel_of(i);
        async move {
            let (mut ws, socket_id) = ws::connect(t, i).await?;
            ws::subscribe(&mut ws, t, &socket_id, &channel, None).await?;
            ws::wait_succeeded(&mut ws, &channel, Duration::from_secs(20)).await?;
            anyhow::Ok(ws)
        }
    });
    let mut out = Vec::with_capacity(count);
    let mut stream = futures_util::stream::iter(jobs).buffer_unordered(concurrency.max(1));
    while let Some(r) = stream.next().await {
        out.push(r?);
    }
    Ok(out)
}

/// Publishing settings.
#[derive(Clone)]
pub struct PublishPlan {
    /// Events per second in total; 0 = as fast as the server answers (closed loop).
    pub rate: f64,
    pub duration: Duration,
    /// Most events per request (1 = `/events` only; up to 10 through `/batch_events`).
    pub max_batch: usize,
    /// Concurrent keep-alive HTTP connections.
    pub connections: usize,
    pub channels: Arc<Vec<String>>,
    pub payload_bytes: usize,
    pub phase: u32,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PublishStats {
    pub events_ok: u64,
    pub events_failed: u64,
    pub requests: u64,
    pub wall_secs: f64,
    pub first_error: Option<String>,
    #[serde(skip)]
    pub request_us: Option<Histogram<u64>>,
}

impl PublishStats {
    pub fn rate(&self) -> f64 {
        self.events_ok as f64 / self.wall_secs.max(1e-9)
    }
    pub fn request_p(&self, q: f64) -> f64 {
        self.request_us
            .as_ref()
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
            .unwrap_or(0.0)
    }
}

fn event_json(out: &mut String, channel: &str, phase: u32, payload_bytes: usize) {
    use std::fmt::Write;
    let _ = write!(out, r#"{{"name":"bench","channel":"{channel}","data":""#);
    let start = out.len();
    let _ = write!(out, "#t{}#p{phase}#", now_us());
    // Pad the data to `payload_bytes`.
    while out.len() - start < payload_bytes {
        out.push('x');
    }
    out.push_str("\"}");
}

/// Publishes per `plan` over fresh HTTP connections; returns when the duration is over.
pub async fn publish(t: &Target, plan: &PublishPlan) -> Result<PublishStats> {
    let n = plan.connections.max(1);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(HttpConn::connect(t).await?);
    }
    let start = Instant::now();
    let end = start + plan.duration;
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let plan = plan.clone();
        let counter = Arc::clone(&counter);
        let t = t.clone();
        let rate = plan.rate / n as f64;
        // Stagger the tasks' schedules so their requests interleave.
        let offset = if rate > 0.0 {
            i as f64 / n as f64 / rate
        } else {
            0.0
        };
        tasks.push(tokio::spawn(async move {
            let mut st = PublishStats {
                request_us: Some(histogram()),
                ..Default::default()
            };
            let mut sent: u64 = 0;
            let mut body = String::with_capacity(4096);
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let due = if rate > 0.0 {
                    let elapsed = (now - start).as_secs_f64() - offset;
                    ((elapsed * rate).floor().max(0.0) as u64 + 1).saturating_sub(sent)
                } else {
                    plan.max_batch as u64
                };
                if due == 0 {
                    let next = start + Duration::from_secs_f64(sent as f64 / rate + offset);
                    sleep_until(next.min(end)).await;
                    continue;
                }
                let k = (due as usize).min(plan.max_batch.max(1));
                body.clear();
                let batch = k > 1;
                if batch {
                    body.push_str(r#"{"batch":["#);
                }
                for j in 0..k {
                    if j > 0 {
                        body.push(',');
                    }
                    let c = counter.fetch_add(1, Ordering::Relaxed) as usize;
                    let channel = &plan.channels[c % plan.channels.len()];
                    event_json(&mut body, channel, plan.phase, plan.payload_bytes);
                }
                if batch {
                    body.push_str("]}");
                }
                let t0 = Instant::now();
                let reply = conn.publish(batch, body.as_bytes()).await;
                st.requests += 1;
                if let Some(h) = st.request_us.as_mut() {
                    h.saturating_record(t0.elapsed().as_micros().max(1) as u64);
                }
                sent += k as u64;
                match reply {
                    Ok(r) if r.status == 200 => st.events_ok += k as u64,
                    Ok(r) => {
                        st.events_failed += k as u64;
                        if st.first_error.is_none() {
                            st.first_error = Some(format!(
                                "HTTP {}: {}",
                                r.status,
                                String::from_utf8_lossy(&r.body)
                                    .chars()
                                    .take(200)
                                    .collect::<String>()
                            ));
                        }
                    }
                    Err(e) => {
                        st.events_failed += k as u64;
                        if st.first_error.is_none() {
                            st.first_error = Some(format!("{e:#}"));
                        }
                        // Reconnect once; give up on this connection if that fails too.
                        match HttpConn::connect(&t).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            st
        }));
    }
    let mut total = PublishStats {
        request_us: Some(histogram()),
        ..Default::default()
    };
    for task in tasks {
        let st = task.await?;
        total.events_ok += st.events_ok;
        total.events_failed += st.events_failed;
        total.requests += st.requests;
        if total.first_error.is_none() {
            total.first_error = st.first_error;
        }
        if let (Some(a), Some(b)) = (total.request_us.as_mut(), st.request_us.as_ref()) {
            let _ = a.add(b);
        }
    }
    total.wall_secs = start
        .elapsed()
        .as_secs_f64()
        .min(plan.duration.as_secs_f64() + 5.0);
    Ok(total)
}

/// Waits until `expected` deliveries were recorded, or nothing arrived for `quiet`, or `max`.
pub async fn drain(rec: &Recorder, expected: u64, quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut last = rec.delivered.load(Ordering::SeqCst);
    let mut last_change = Instant::now();
    while start.elapsed() < max {
        let now = rec.delivered.load(Ordering::SeqCst);
        if now >= expected {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency percentiles in milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> serde_json::Value {
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({
        "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
        "max": h.max() as f64 / 1000.0, "mean": h.mean() / 1000.0, "count": h.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_timestamp_and_phase_in_a_frame() {
        let frame = br##"{"event":"bench","channel":"c","data":"#t123456#p7#xxxx"}"##;
        assert_eq!(number_after(frame, b"#t"), Some(123_456));
        assert_eq!(number_after(frame, b"#p"), Some(7));
        assert_eq!(number_after(b"{\"event\":\"pusher:ping\"}", b"#t"), None);
    }

    #[test]
    fn event_json_is_valid_and_padded() {
        let mut s = String::new();
        event_json(&mut s, "private-chat-1", 3, 100);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["channel"], "private-chat-1");
        let data = v["data"].as_str().unwrap();
        assert!(data.starts_with("#t") && data.contains("#p3#"));
        assert_eq!(data.len(), 100, "{data}");
    }
}
