//! Webhooks: what happens on an app's channels, POSTed to its backend in Pusher's format
//! (`{"time_ms", "events": [...]}`, `X-Pusher-Key`, `X-Pusher-Signature` = hex HMAC-SHA256 of the
//! body with the app secret), so every `pusher` SDK's `webhook()` validation accepts them.
//!
//! Emitting never waits: an event is encoded once and pushed into each matching target's bounded
//! queue (full: dropped and counted). Each target has one task ([`sender`]) that batches, signs,
//! sends and retries with backoff; a slow or dead backend delays only its own queue.
//!
//! Who emits what, exactly once cluster-wide, is the cluster layer's business (the adapters); this
//! module only filters, encodes and delivers. [`edges`] turns one node's count changes into
//! transitions for the single-node adapter.

pub mod edges;
mod sender;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::config::{AppConfig, WebhookKind};
use crate::wire;

/// Events one target may have waiting, in count and in bytes.
const QUEUE_EVENTS: usize = 10_000;
const QUEUE_BYTES: usize = 8 << 20;

/// One thing that happened, as a webhook event.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// `channel_occupied`, `channel_vacated` or `cache_miss`.
    Channel {
        kind: WebhookKind,
        channel: &'a str,
    },
    /// `member_added` or `member_removed`.
    Member {
        kind: WebhookKind,
        channel: &'a str,
        user_id: &'a str,
    },
    /// `client_event`; `user_id` on presence channels.
    Client {
        channel: &'a str,
        event: &'a str,
        data: &'a RawValue,
        socket_id: &'a str,
        user_id: Option<&'a str>,
    },
    SubscriptionCount {
        channel: &'a str,
        count: usize,
    },
}

impl Event<'_> {
    fn kind(&self) -> WebhookKind {
        match self {
            Self::Channel { kind, .. } | Self::Member { kind, .. } => *kind,
            Self::Client { .. } => WebhookKind::ClientEvent,
            Self::SubscriptionCount { .. } => WebhookKind::SubscriptionCount,
        }
    }

    fn channel(&self) -> &str {
        match self {
            Self::Channel { channel, .. }
            | Self::Member { channel, .. }
            | Self::Client { channel, .. }
            | Self::SubscriptionCount { channel, .. } => channel,
        }
    }

    /// The event's JSON object, as Pusher documents its fields.
    fn encode(&self) -> String {
        let name = wire::json(self.kind().name());
        let channel = wire::json(self.channel());
        match self {
            Self::Channel { .. } => format!(r#"{{"name":{name},"channel":{channel}}}"#),
            Self::Member { user_id, .. } => format!(
                r#"{{"name":{name},"channel":{channel},"user_id":{}}}"#,
                wire::json(user_id)
            ),
            Self::Client {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                // Pusher gives `data` as a string: a client's string as is, anything else as
                // its JSON text.
                let data = match serde_json::from_str::<String>(data.get()) {
                    Ok(_) => data.get().to_owned(),
                    Err(_) => wire::json(data.get()),
                };
                let user = user_id
                    .map_or_else(String::new, |u| format!(r#","user_id":{}"#, wire::json(u)));
                format!(
                    r#"{{"name":{name},"channel":{channel},"event":{},"data":{data},"socket_id":{}{user}}}"#,
                    wire::json(event),
                    wire::json(socket_id)
                )
            }
            Self::SubscriptionCount { count, .. } => {
                format!(r#"{{"name":{name},"channel":{channel},"subscription_count":{count}}}"#)
            }
        }
    }
}

/// Counters of one app's webhooks, all targets together (for `/metrics`).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events delivered (2xx).
    pub sent: AtomicU64,
    /// Events given up on after retrying.
    pub failed: AtomicU64,
    /// Events dropped because a target's queue was full.
    pub dropped: AtomicU64,
    /// Requests that failed (each retry counts).
    pub request_errors: AtomicU64,
    /// Events waiting.
    pub queued: AtomicUsize,
}

struct Target {
    kinds: u8,
    prefix: Option<String>,
    queue: mpsc::Sender<Arc<str>>,
    queued_bytes: Arc<AtomicUsize>,
    /// Set while events are being dropped (logged once until the queue drains).
    dropping: Arc<AtomicBool>,
    url: String,
}

/// One app's webhook targets.
#[derive(Default)]
pub struct Webhooks {
    targets: Vec<Target>,
    /// Every target's kinds together.
    kinds: u8,
    stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// Starts a delivery task per configured target (none: nothing runs, nothing is paid).
    /// `stats` carries over the counters of the targets a reload replaces.
    pub fn start(
        app: &AppConfig,
        client: Option<&reqwest::Client>,
        stats: Arc<WebhookStats>,
    ) -> Self {
        let Some(client) = client.filter(|_| !app.webhooks.is_empty()) else {
            return Self {
                stats,
                ..Self::default()
            };
        };
        let mut targets = Vec::new();
        for hook in &app.webhooks {
            let (queue, rx) = mpsc::channel(QUEUE_EVENTS);
            let queued_bytes = Arc::new(AtomicUsize::new(0));
            let dropping = Arc::new(AtomicBool::new(false));
            tokio::spawn(sender::run(sender::Delivery {
                client: client.clone(),
                url: hook.url.clone(),
                key: app.key.clone(),
                secret: app.secret.clone(),
                rx,
                queued_bytes: Arc::clone(&queued_bytes),
                dropping: Arc::clone(&dropping),
                stats: Arc::clone(&stats),
            }));
            targets.push(Target {
                kinds: hook.event_types.iter().fold(0, |m, k| m | k.bit()),
                prefix: hook.channel_prefix.clone(),
                queue,
                queued_bytes,
                dropping,
                url: hook.url.clone(),
            });
        }
        Self {
            kinds: targets.iter().fold(0, |m, t| m | t.kinds),
            targets,
            stats,
        }
    }

    /// Whether some target takes `kind` (callers skip the work of an event nobody wants).
    pub fn wants(&self, kind: WebhookKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// Queues `event` for every target that takes it; never waits.
    pub fn emit(&self, event: Event<'_>) {
        let kind = event.kind();
        if !self.wants(kind) {
            return;
        }
        let mut encoded: Option<Arc<str>> = None;
        for target in &self.targets {
            let matches = target.kinds & kind.bit() != 0
                && target
                    .prefix
                    .as_deref()
                    .is_none_or(|p| event.channel().starts_with(p));
            if !matches {
                continue;
            }
            let body = encoded.get_or_insert_with(|| event.encode().into());
            let len = body.len();
            let over = target.queued_bytes.load(Ordering::Relaxed) + len > QUEUE_BYTES;
            if over || target.queue.try_send(Arc::clone(body)).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if !target.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(url = %target.url, "webhook queue full: dropping events (counted in chorus_webhook_events_total{{outcome=\"dropped\"}})");
                }
                continue;
            }
            target.queued_bytes.fetch_add(len, Ordering::Relaxed);
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }

    pub fn shared_stats(&self) -> Arc<WebhookStats> {
        Arc::clone(&self.stats)
    }

    /// Waits until every queued event has been sent or given up on, or `deadline` passes.
    pub async fn drained(&self, deadline: tokio::time::Instant) {
        while self.stats.queued.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The HTTP client every app's webhooks share, when some app has webhooks.
pub fn client(apps: &[AppConfig]) -> Option<reqwest::Client> {
    if apps.iter().all(|a| a.webhooks.is_empty()) {
        return None;
    }
    let built = reqwest::Client::builder()
        .timeout(sender::REQUEST_TIMEOUT)
        .user_agent(concat!("chorus/", env!("CARGO_PKG_VERSION")))
        .build();
    match built {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client: webhooks are off");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookConfig;

    #[tokio::test]
    async fn a_dead_target_fills_its_bounded_queue_then_drops_and_counts() {
        // Nothing listens on port 1: every request fails and is retried.
        let app = AppConfig {
            webhooks: vec![WebhookConfig {
                url: "http://127.0.0.1:1/hook".into(),
                event_types: vec![WebhookKind::ChannelOccupied],
                channel_prefix: None,
            }],
            ..AppConfig::development()
        };
        let client = client(std::slice::from_ref(&app));
        let hooks = Webhooks::start(&app, client.as_ref(), Arc::default());
        let kind = WebhookKind::ChannelOccupied;
        let vacated = WebhookKind::ChannelVacated;
        hooks.emit(Event::Channel {
            kind: vacated,
            channel: "not-wanted",
        });
        for _ in 0..QUEUE_EVENTS + sender::MAX_BATCH + 50 {
            hooks.emit(Event::Channel { kind, channel: "c" });
        }
        let stats = hooks.stats();
        let dropped = stats.dropped.load(Ordering::Relaxed);
        let queued = stats.queued.load(Ordering::Relaxed);
        assert!(dropped >= 50, "dropped {dropped}");
        assert!(
            queued <= QUEUE_EVENTS + sender::MAX_BATCH,
            "queued {queued}"
        );
        assert_eq!(
            dropped as usize + queued,
            QUEUE_EVENTS + sender::MAX_BATCH + 50
        );
    }

    #[test]
    fn events_encode_as_pusher_documents_them() {
        let data = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        let ev = Event::Client {
            channel: "presence-r",
            event: "client-typing",
            data: &data,
            socket_id: "1.2",
            user_id: Some("7"),
        };
        let v: serde_json::Value = serde_json::from_str(&ev.encode()).unwrap();
        assert_eq!(v["name"], "client_event");
        assert_eq!(v["data"], r#"{"a":1}"#);
        assert_eq!(v["user_id"], "7");
        let s = RawValue::from_string(r#""hi""#.into()).unwrap();
        let ev = Event::Client {
            channel: "private-r",
            event: "client-typing",
            data: &s,
            socket_id: "1.2",
            user_id: None,
        };
        let v: serde_json::Value = serde_json::from_str(&ev.encode()).unwrap();
        assert_eq!(v["data"], "hi");
        assert!(v.get("user_id").is_none());
        let ev = Event::Member {
            kind: WebhookKind::MemberAdded,
            channel: "presence-r",
            user_id: "7",
        };
        assert_eq!(
            ev.encode(),
            r#"{"name":"member_added","channel":"presence-r","user_id":"7"}"#
        );
    }
}
