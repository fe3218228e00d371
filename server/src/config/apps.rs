//! One app's settings (`[[apps]]`), its webhooks among them.

use serde::Deserialize;

/// One tenant: its credentials and limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// A disabled app's connections are refused (4003) and its HTTP API answers 403.
    pub enabled: bool,
    /// Whether subscribers of non-presence channels get `pusher_internal:subscription_count`.
    pub enable_subscription_count: bool,
    /// Where the app's backend hears what happens (`[[apps.webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// Whether clients may send `client-*` events (whisper) on private and presence channels.
    pub enable_client_events: bool,
    /// Whether `pusher:signin` is accepted.
    pub enable_user_authentication: bool,
    /// Connections this app may hold (0 = unlimited); above it new ones are closed with 4004.
    pub max_connections: usize,
    /// Largest event `data` (HTTP API, 413 above it) and client event (`pusher:error` 4300), in KiB.
    pub max_event_payload_kb: usize,
    /// Client events one connection may send per second (0 = unlimited); above it `pusher:error` 4301.
    pub max_client_events_per_second: u32,
    /// Origins allowed to open a WebSocket (`*` = any, else exact `scheme://host[:port]`); others get 4009.
    pub allowed_origins: Vec<String>,
    /// Events kept per channel so reconnecting clients recover what they missed (0 = no history).
    pub history_size: usize,
    /// Seconds an event stays in history.
    pub history_ttl: u64,
    /// Channel name prefixes that keep history (`*` = all).
    pub history_channels: Vec<String>,
    /// Channels one connection may be subscribed to at once (0 = unlimited).
    pub max_subscriptions_per_connection: usize,
    /// Channels with subscribers on this node, per app (0 = unlimited).
    pub max_channels: usize,
    /// Members (users) of one presence channel, cluster-wide (0 = unlimited).
    pub max_presence_members: usize,
    /// Largest `user_info` of a presence member, in KiB.
    pub max_presence_user_info_kb: usize,
    /// Signed HTTP API requests this app may make per second, in bursts up to as many (0 =
    /// unlimited); above it 429 with `Retry-After`.
    pub max_api_requests_per_second: u32,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            enable_subscription_count: false,
            webhooks: Vec::new(),
            enable_client_events: true,
            enable_user_authentication: true,
            max_connections: 0,
            max_event_payload_kb: 10,
            max_client_events_per_second: 10,
            allowed_origins: vec!["*".into()],
            history_size: 100,
            history_ttl: 300,
            history_channels: vec!["*".into()],
            max_subscriptions_per_connection: 200,
            max_channels: 100_000,
            // Pusher's limit.
            max_presence_members: 100,
            max_presence_user_info_kb: 2,
            max_api_requests_per_second: 10_000,
        }
    }
}

impl AppConfig {
    /// The app served when nothing else is configured: fine on a laptop, never in production.
    pub fn development() -> Self {
        Self {
            id: "app-id".into(),
            key: "app-key".into(),
            secret: "app-secret".into(),
            ..Self::default()
        }
    }

    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        if self.allowed_origins.iter().any(|o| o == "*") {
            return true;
        }
        // Non-browser clients send no Origin; the origin check is a browser protection only.
        let Some(origin) = origin else { return true };
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// One webhook target of an app (`[[apps.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Which events this target receives.
    pub event_types: Vec<WebhookKind>,
    /// Only events of channels whose name starts with it.
    #[serde(default)]
    pub channel_prefix: Option<String>,
}

/// The webhook events, named as Pusher names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

impl WebhookKind {
    pub const ALL: [Self; 7] = [
        Self::ChannelOccupied,
        Self::ChannelVacated,
        Self::MemberAdded,
        Self::MemberRemoved,
        Self::ClientEvent,
        Self::CacheMiss,
        Self::SubscriptionCount,
    ];

    /// The event's `name` in a webhook body.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChannelOccupied => "channel_occupied",
            Self::ChannelVacated => "channel_vacated",
            Self::MemberAdded => "member_added",
            Self::MemberRemoved => "member_removed",
            Self::ClientEvent => "client_event",
            Self::CacheMiss => "cache_miss",
            Self::SubscriptionCount => "subscription_count",
        }
    }

    /// A bit of a set of kinds.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl AppConfig {
    /// Checks what one app's settings must satisfy on their own.
    pub fn check(&self) -> Result<(), String> {
        if self.id.is_empty() || self.key.is_empty() || self.secret.is_empty() {
            return Err("every app needs a non-empty id, key and secret".into());
        }
        // Ids appear in URLs and Redis keys; keys in URLs.
        if !self.id.chars().all(super::plain) || !self.key.chars().all(super::plain) {
            return Err(format!(
                "app id {:?} / key {:?}: no spaces, ':', '/' or control characters",
                self.id, self.key
            ));
        }
        for hook in &self.webhooks {
            let url = hook.url.as_str();
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.parse::<reqwest::Url>().is_err() {
                return Err(format!(
                    "app {:?}: webhook url {url:?} is not an http:// or https:// URL",
                    self.id
                ));
            }
            if hook.event_types.is_empty() {
                return Err(format!(
                    "app {:?}: webhook {url:?} needs at least one of event_types",
                    self.id
                ));
            }
        }
        Ok(())
    }
}
