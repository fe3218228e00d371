//! Encoding of server-to-client frames. Each frame is serialized once into shared bytes; fan-out
//! clones the handle, never the payload.

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::events;
use chorus_protocol::frame::{
    ErrorData, OutFrame, Recovery, StreamPosition, SubscriptionErrorData,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ConnectionError, SubscriptionError};

/// Encodes `{"event","channel","data","user_id"}`.
pub fn encode<D: Serialize>(
    event: &str,
    channel: Option<&str>,
    data: D,
    user_id: Option<&str>,
) -> Utf8Bytes {
    encode_full(event, channel, data, user_id, None, None)
}

/// Encodes a frame with Chorus's extension fields (history position, recovery outcome).
pub fn encode_full<D: Serialize>(
    event: &str,
    channel: Option<&str>,
    data: D,
    user_id: Option<&str>,
    position: Option<&StreamPosition>,
    recovery: Option<&Recovery>,
) -> Utf8Bytes {
    let frame = OutFrame {
        event,
        channel,
        data,
        user_id,
        position,
        recovery,
    };
    // Serializing plain strings, numbers and already-valid raw JSON cannot fail.
    Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default())
}

pub fn error(err: &ConnectionError) -> Utf8Bytes {
    encode(
        events::ERROR,
        None,
        ErrorData {
            code: Some(err.code().code()),
            message: err.to_string(),
        },
        None,
    )
}

pub fn subscription_error(channel: &str, err: &SubscriptionError) -> Utf8Bytes {
    encode(
        events::SUBSCRIPTION_ERROR,
        Some(channel),
        SubscriptionErrorData {
            kind: "AuthError".into(),
            error: err.to_string(),
            status: err.status(),
        },
        None,
    )
}

/// The size of an event's `data` as the payload limit counts it: a JSON string counts as the text
/// it holds (escapes decoded), any other value as its JSON text.
pub fn data_len(data: &RawValue) -> usize {
    let raw = data.get();
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        // Escapes make the literal longer than the string; decode only when there are any.
        Some(inner) if raw.contains('\\') => serde_json::from_str::<String>(raw)
            .map(|s| s.len())
            .unwrap_or(inner.len()),
        Some(inner) => inner.len(),
        None => raw.len(),
    }
}

/// A frame whose `data` is a JSON document sent as a string, as Pusher does for its own events.
pub fn encode_string_data(event: &str, channel: Option<&str>, data_json: &str) -> Utf8Bytes {
    encode(event, channel, data_json, None)
}
