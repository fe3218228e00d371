//! One webhook target's delivery task: takes what is queued, batches it for a short window,
//! signs it and POSTs it, retrying with jittered exponential backoff; a target that keeps failing
//! is logged once per outage, and a batch it will not take is given up on after [`GIVE_UP`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::WebhookStats;

/// How long the first event of a batch waits for others.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Events in one request.
pub const MAX_BATCH: usize = 100;
/// One request's bound, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a batch stop after this long.
const GIVE_UP: Duration = Duration::from_secs(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Delivery {
    pub client: reqwest::Client,
    pub url: String,
    pub key: String,
    pub secret: String,
    pub rx: mpsc::Receiver<Arc<str>>,
    pub queued_bytes: Arc<AtomicUsize>,
    pub dropping: Arc<AtomicBool>,
    pub stats: Arc<WebhookStats>,
}

/// Runs until the app's webhooks are dropped and the queue is empty.
pub async fn run(mut d: Delivery) {
    let mut batch: Vec<Arc<str>> = Vec::with_capacity(MAX_BATCH);
    let mut outage = false;
    while let Some(first) = d.rx.recv().await {
        batch.push(first);
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                biased;
                next = d.rx.recv() => match next {
                    Some(e) => batch.push(e),
                    None => break,
                },
                () = &mut window => break,
            }
        }
        let delivered = send(&d, &batch, &mut outage).await;
        let n = batch.len() as u64;
        let bytes: usize = batch.iter().map(|e| e.len()).sum();
        let counter = if delivered {
            &d.stats.sent
        } else {
            &d.stats.failed
        };
        counter.fetch_add(n, Ordering::Relaxed);
        d.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        d.stats.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        batch.clear();
        if d.rx.is_empty() && d.dropping.swap(false, Ordering::Relaxed) {
            tracing::info!(url = %d.url, "webhook queue drained (events were dropped while it was full)");
        }
    }
}

/// Sends one batch until it is taken (2xx) or [`GIVE_UP`] passes; returns whether it was taken.
async fn send(d: &Delivery, batch: &[Arc<str>], outage: &mut bool) -> bool {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_millis());
    let mut body = format!(r#"{{"time_ms":{time_ms},"events":["#);
    for (i, event) in batch.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str("]}");
    let signature = chorus_protocol::sign::hmac_sha256_hex(&d.secret, &body);
    let start = Instant::now();
    let mut backoff = Duration::from_millis(500);
    loop {
        let sent = d
            .client
            .post(&d.url)
            .header("Content-Type", "application/json")
            .header("X-Pusher-Key", &d.key)
            .header("X-Pusher-Signature", &signature)
            .body(body.clone())
            .send()
            .await;
        let error = match sent {
            Ok(res) if res.status().is_success() => {
                if std::mem::take(outage) {
                    tracing::info!(url = %d.url, "webhook target answers again");
                }
                return true;
            }
            Ok(res) => format!("answered {}", res.status()),
            Err(e) => e.to_string(),
        };
        d.stats.request_errors.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(outage, true) {
            tracing::warn!(url = %d.url, error = %error, "webhook target failing: retrying with backoff (logged once until it answers)");
        }
        if start.elapsed() >= GIVE_UP {
            tracing::warn!(url = %d.url, events = batch.len(), "webhook batch given up after retrying for {}s", GIVE_UP.as_secs());
            return false;
        }
        // Full jitter keeps several nodes from retrying in step.
        let wait = backoff.mul_f64(rand::random_range(0.5..=1.0));
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
