//! JSON envelopes exchanged on the socket: `{"event": …, "channel": …, "data": …}`.
//!
//! Frames are generic over the `data` type so that the server can keep it as raw JSON and the SDK as
//! a browser value; neither needs a particular JSON library from this crate.

use serde::{Deserialize, Serialize};

/// A frame as it is read from the socket.
#[derive(Debug, Clone, Deserialize)]
pub struct Frame<D> {
    pub event: String,
    #[serde(default)]
    pub channel: Option<String>,
    pub data: Option<D>,
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A frame as it is written to the socket; borrows everything so encoding allocates once.
#[derive(Debug, Clone, Serialize)]
pub struct OutFrame<'a, D: Serialize> {
    pub event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    pub data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    /// Chorus extension: where this event stands in the channel's history. pusher-js and Echo
    /// ignore fields they do not know, so they keep working unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<&'a StreamPosition>,
    /// Chorus extension, on `subscription_succeeded` only: the outcome of a requested recovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<&'a Recovery>,
}

/// A place in a channel's history: `offset` counts the channel's events within one `epoch`; the
/// epoch changes whenever the history starts over (server restart, history expired), so offsets of
/// different epochs are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    pub epoch: String,
    pub offset: u64,
}

/// Outcome of a `recover` request (sent with `subscription_succeeded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// True when every missed event follows (replayed in order before any live one).
    pub recovered: bool,
    /// How many missed events are replayed.
    pub replayed: u64,
    /// Why recovery failed: `epoch_changed`, `expired` or `unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `data` of `pusher:connection_established` (sent as a JSON string inside the frame).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionEstablished {
    pub socket_id: String,
    /// Seconds of silence after which the client should ping.
    pub activity_timeout: u64,
}

/// `data` of `pusher:error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorData {
    pub code: Option<u16>,
    pub message: String,
}

/// `data` of `pusher:subscribe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeData {
    pub channel: String,
    #[serde(default)]
    pub auth: Option<String>,
    /// Presence only: JSON string `{"user_id": …, "user_info": …}` covered by the signature.
    #[serde(default)]
    pub channel_data: Option<String>,
    /// Chorus extension: resubscribing after a reconnect, replay what came after this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover: Option<RecoverFrom>,
}

/// Where a resubscribing client left off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverFrom {
    #[serde(flatten)]
    pub position: StreamPosition,
    /// The client's previous connection: events published with `socket_id` = this (Laravel's
    /// `toOthers()` from this client) are not replayed to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
}

/// `data` of `pusher:unsubscribe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsubscribeData {
    pub channel: String,
}

/// `data` of `pusher:signin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigninData {
    pub auth: String,
    /// JSON string with at least a string `id`, covered by the signature.
    pub user_data: String,
}

/// `data` of `pusher:subscription_error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionErrorData {
    #[serde(rename = "type")]
    pub kind: String,
    pub error: String,
    pub status: u16,
}
