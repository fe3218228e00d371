//! Apps (tenants): each has its credentials, limits, channels, history, signed-in users and
//! metrics, and the operations on them that involve this node only (the cluster layer builds on
//! these: the local adapter is just them, the Redis adapter adds the other nodes).

mod apps;
mod limit;

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::StreamPosition;
use chorus_protocol::{is_cache_channel, ChannelKind};
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::config::{AppConfig, WebhookKind};
use crate::hub::cache::Cache;
use crate::hub::channels::{Announce, Channels, Subscribed, SucceededExtras};
use crate::hub::counts::DirtyCounts;
use crate::hub::history::{
    recovery_outcome, recovery_unavailable, History, HistoryPolicy, Recover, Stream, StreamSlot,
};
use crate::hub::outbound::ConnHandle;
use crate::hub::presence::PresenceMember;
use crate::hub::tap::Tap;
use crate::hub::users::Users;
use crate::metrics::AppMetrics;
use crate::rate::RateLimiter;
use crate::webhooks::edges::{Edge, Edges};
use crate::webhooks::{Event, Webhooks};
use crate::wire;

pub use apps::Apps;
pub use limit::{ConnectionLimit, ConnectionPermit};

pub struct App {
    /// The settings; a reload swaps them (see [`Self::reconfigure`]).
    settings: ArcSwap<AppConfig>,
    pub channels: Channels,
    pub users: Users,
    pub history: History,
    pub metrics: AppMetrics,
    pub connections: ConnectionLimit,
    /// Copies of delivered events for the dashboard's console.
    pub tap: Tap,
    hooks: ArcSwap<Webhooks>,
    /// Becomes true when the app is disabled or removed: its connections close with 4003.
    closing: watch::Sender<bool>,
    /// Cache channels' last event (single node; with Redis it lives there).
    pub cache: Cache,
    /// Channels whose subscription count is to be announced.
    pub dirty_counts: DirtyCounts,
    /// This node's occupied channels and presence users, counted for the single-node adapter's
    /// webhooks (a cluster adapter learns the cluster-wide transitions from Redis).
    occupancy: Edges,
    members: Edges,
    /// Signed HTTP API requests (`max_api_requests_per_second`).
    api_requests: parking_lot::Mutex<RateLimiter>,
}

/// A server event to publish: `data` is a JSON string literal, written as is.
pub struct Publish<'a> {
    pub event: &'a str,
    pub data: &'a RawValue,
    /// The connection not to deliver to (Laravel's `toOthers()`).
    pub except: Option<&'a str>,
}

impl Publish<'_> {
    /// The event's frame on `channel`, without a history position.
    pub fn frame(&self, channel: &str) -> Utf8Bytes {
        wire::encode(self.event, Some(channel), self.data, None)
    }
}

/// A page of a channel's history.
pub struct HistoryPage {
    /// The newest position; `None` when the channel keeps no history.
    pub position: Option<StreamPosition>,
    /// Encoded frames, oldest first.
    pub events: Vec<Utf8Bytes>,
}

impl HistoryPage {
    /// The page of a channel that keeps no history.
    pub fn none() -> Self {
        Self {
            position: None,
            events: Vec::new(),
        }
    }
}

impl App {
    /// With `client`, the app's webhooks start delivering (inside a tokio runtime).
    pub fn new(config: AppConfig, client: Option<&reqwest::Client>) -> Self {
        Self {
            hooks: ArcSwap::from_pointee(Webhooks::start(&config, client, Arc::default())),
            closing: watch::Sender::new(false),
            cache: Cache::default(),
            dirty_counts: DirtyCounts::default(),
            occupancy: Edges::default(),
            members: Edges::default(),
            history: History::new(HistoryPolicy::of(&config)),
            connections: ConnectionLimit::new(config.max_connections),
            api_requests: parking_lot::Mutex::new(RateLimiter::new(
                config.max_api_requests_per_second,
            )),
            channels: Channels::new(config.max_presence_members),
            settings: ArcSwap::from_pointee(config),
            users: Users::default(),
            metrics: AppMetrics::default(),
            tap: Tap::default(),
        }
    }

    pub fn config(&self) -> Guard<Arc<AppConfig>> {
        self.settings.load()
    }

    pub fn webhooks(&self) -> Guard<Arc<Webhooks>> {
        self.hooks.load()
    }

    /// Resolves once the app is disabled or removed (its connections then close with 4003).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Closes every connection of the app (4003): it was disabled or removed.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Applies changed settings (same id): limits hold from now on for new connections,
    /// subscriptions and requests (open connections keep their per-connection limits), changed
    /// webhooks replace the old targets (which finish what they queued), and a disabled app's
    /// connections are closed. History settings keep their start-up values.
    pub fn reconfigure(&self, config: AppConfig, client: Option<&reqwest::Client>) {
        let old = self.config();
        self.connections.set_max(config.max_connections);
        self.channels.set_max_members(config.max_presence_members);
        if config.max_api_requests_per_second != old.max_api_requests_per_second {
            *self.api_requests.lock() = RateLimiter::new(config.max_api_requests_per_second);
        }
        let signing_changed = config.key != old.key || config.secret != old.secret;
        if config.webhooks != old.webhooks || signing_changed {
            let stats = self.webhooks().shared_stats();
            self.hooks
                .store(Arc::new(Webhooks::start(&config, client, stats)));
        }
        let enabled = config.enabled;
        self.settings.store(Arc::new(config));
        // Only a change wakes the connections (re-enabling lets new ones in).
        self.closing.send_if_modified(|closed| {
            let modified = *closed == enabled;
            *closed = !enabled;
            modified
        });
    }

    /// Takes one signed API request from the app's budget; `Err` holds the seconds until the
    /// next one is allowed.
    pub fn api_request(&self) -> Result<(), u64> {
        let mut limiter = self.api_requests.lock();
        if limiter.allow() {
            return Ok(());
        }
        self.metrics
            .api_requests_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(limiter.retry_after_secs())
    }

    /// One more (`up`) or one fewer subscriber of `channel` on this node: the single-node
    /// adapter's `channel_occupied` / `channel_vacated`.
    pub fn occupancy_local(&self, channel: &str, up: bool) {
        let kind = match self.occupancy.change(channel, up) {
            Some(Edge::Up) => WebhookKind::ChannelOccupied,
            Some(Edge::Down) => WebhookKind::ChannelVacated,
            None => return,
        };
        self.webhooks().emit(Event::Channel { kind, channel });
    }

    /// A presence user's first connection on `channel` joined (`up`) or its last left: the
    /// single-node adapter's `member_added` / `member_removed`.
    pub fn membership_local(&self, channel: &str, user_id: &str, up: bool) {
        let kind = match self.members.change(&format!("{channel}\n{user_id}"), up) {
            Some(Edge::Up) => WebhookKind::MemberAdded,
            Some(Edge::Down) => WebhookKind::MemberRemoved,
            None => return,
        };
        self.webhooks().emit(Event::Member {
            kind,
            channel,
            user_id,
        });
    }

    /// Largest event payload in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.config().max_event_payload_kb.saturating_mul(1024)
    }

    /// Delivers to this node's subscribers and counts it.
    pub fn deliver_local(&self, channel: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let start = std::time::Instant::now();
        let n = self.channels.broadcast(channel, frame, except);
        if n > 0 {
            self.metrics.fanout.observe(start.elapsed());
        }
        if self.tap.watching() {
            self.tap.send(channel, frame, n);
        }
        self.metrics.delivered(n, frame.len());
        n
    }

    /// Publishes on this node. With history, the event gets the next position and is kept and
    /// delivered under the stream's lock, so history order is delivery order.
    pub fn publish_local(&self, channel: &str, event: &Publish<'_>) -> usize {
        if !self.history.applies_to(channel) {
            let frame = event.frame(channel);
            self.cache_local(channel, &frame);
            return self.deliver_local(channel, &frame, event.except);
        }
        let stream = self.history.stream(channel);
        let mut stream = stream.lock();
        let frame = stream.append(&self.history.policy, event.except, |position| {
            wire::encode_full(
                event.event,
                Some(channel),
                event.data,
                None,
                Some(position),
                None,
            )
        });
        self.cache_local(channel, &frame);
        self.deliver_local(channel, &frame, event.except)
    }

    /// Keeps `frame` as the last event of `channel` if it is a cache channel (single node).
    pub fn cache_local(&self, channel: &str, frame: &Utf8Bytes) {
        if is_cache_channel(channel)
            && !self.cache.store(channel, frame, self.config().max_channels)
        {
            tracing::debug!(
                channel,
                "cache channel not kept: max_channels cache channels are"
            );
        }
    }

    /// Subscribes on this node, as [`Self::subscribe_channel`], and on a cache channel sends a
    /// new subscriber the last event right after `subscription_succeeded` (or
    /// `pusher:cache_miss`, which fires the `cache_miss` webhook). A recovering subscriber gets
    /// what it missed instead.
    pub fn subscribe_local(
        &self,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<&PresenceMember>,
        recover: Option<&Recover>,
    ) -> Subscribed {
        if !is_cache_channel(channel) || recover.is_some() {
            return self.subscribe_channel(channel, kind, conn, member, recover, None);
        }
        let cached = self.cache.get(channel);
        let follow = cached.clone().unwrap_or_else(|| wire::cache_miss(channel));
        let outcome = self.subscribe_channel(channel, kind, conn, member, None, Some(&follow));
        if cached.is_none() && matches!(outcome, Subscribed::New { .. }) {
            self.cache_missed(channel);
        }
        outcome
    }

    /// Whether `channel`'s subscription count is announced (`enable_subscription_count`, or a
    /// `subscription_count` webhook; never on presence channels, whose members are the count).
    pub fn counts_subscriptions(&self, channel: &str) -> bool {
        let kind = ChannelKind::of(channel);
        !matches!(kind, ChannelKind::Presence | ChannelKind::ServerToUser)
            && (self.config().enable_subscription_count
                || self.webhooks().wants(WebhookKind::SubscriptionCount))
    }

    /// Announces `channel`'s cluster-wide subscription `count`: to its subscribers on this node
    /// when `enable_subscription_count` (`deliver`: a cluster adapter delivers through the bus
    /// instead), and to the `subscription_count` webhook.
    pub fn subscription_count(&self, channel: &str, count: usize, deliver: bool) {
        if deliver && self.config().enable_subscription_count {
            self.deliver_local(channel, &wire::subscription_count(channel, count), None);
        }
        self.webhooks()
            .emit(Event::SubscriptionCount { channel, count });
    }

    /// A new subscriber of a cache channel found no event: the `cache_miss` webhook.
    pub fn cache_missed(&self, channel: &str) {
        let kind = WebhookKind::CacheMiss;
        self.webhooks().emit(Event::Channel { kind, channel });
    }

    /// Subscribes on this node, answering a recovery request from this node's history: the
    /// missed events follow `subscription_succeeded` before any live one; `follow` follows it.
    fn subscribe_channel(
        &self,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<&PresenceMember>,
        recover: Option<&Recover>,
        follow: Option<&Utf8Bytes>,
    ) -> Subscribed {
        if !self.history.applies_to(channel) {
            let recovery = recover.map(|_| recovery_unavailable());
            self.metrics.recovery(recovery.as_ref());
            let extras = SucceededExtras {
                position: None,
                recovery: recovery.as_ref(),
                follow,
            };
            return self
                .channels
                .subscribe(channel, kind, conn, member, Announce::Local, extras);
        }
        let missed = |stream: Option<&mut Stream>| {
            recover.map(|r| match r {
                Recover::From(from) => {
                    self.history
                        .missed(stream, &from.position, from.socket_id.as_deref())
                }
                Recover::Denied(failure) => Err(*failure),
            })
        };
        let register = |top: StreamPosition, result: Option<Result<Vec<Utf8Bytes>, _>>| {
            let recovery = result.as_ref().map(recovery_outcome);
            self.metrics.recovery(recovery.as_ref());
            let extras = SucceededExtras {
                position: Some(&top),
                recovery: recovery.as_ref(),
                follow,
            };
            let outcome =
                self.channels
                    .subscribe(channel, kind, conn, member, Announce::Local, extras);
            if let (Subscribed::New { .. }, Some(Ok(missed))) = (outcome, &result) {
                for frame in missed {
                    conn.send(frame);
                }
            }
            outcome
        };
        // Registered under the stream's lock, or while holding off its start: no event between
        // the position given and the first live one.
        match self.history.slot(channel) {
            StreamSlot::Started(stream) => {
                let mut stream = stream.lock();
                let top = stream.top();
                let result = missed(Some(&mut stream));
                register(top, result)
            }
            StreamSlot::Vacant(_hold) => register(self.history.origin(), missed(None)),
        }
    }

    /// This node's history page of a channel.
    pub fn history_local(&self, channel: &str, limit: usize) -> HistoryPage {
        if !self.history.applies_to(channel) {
            return HistoryPage::none();
        }
        let Some(stream) = self.history.started(channel) else {
            return HistoryPage {
                position: Some(self.history.origin()),
                events: Vec::new(),
            };
        };
        let mut stream = stream.lock();
        HistoryPage {
            position: Some(stream.top()),
            events: stream.recent(&self.history.policy, limit),
        }
    }
}
