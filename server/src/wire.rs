//! Every server-to-client frame's shape, encoded once into shared bytes: fan-out clones the
//! handle, never the payload. Nothing else in the server writes a frame's JSON by hand.

use std::collections::HashMap;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::events;
use chorus_protocol::frame::{
    ConnectionEstablished, ErrorData, OutFrame, Recovery, StreamPosition, SubscriptionErrorData,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ConnectionError, SubscriptionError};

pub static PONG: Utf8Bytes = Utf8Bytes::from_static(r#"{"event":"pusher:pong","data":{}}"#);
pub static PING: Utf8Bytes = Utf8Bytes::from_static(r#"{"event":"pusher:ping","data":{}}"#);

/// JSON text of a value made of strings, numbers, maps with string keys and already-valid raw
/// JSON: serde_json cannot fail on those, so a failure is a bug here, not bad input.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serializing plain data to JSON cannot fail")
}

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
    Utf8Bytes::from(json(&OutFrame {
        event,
        channel,
        data,
        user_id,
        position,
        recovery,
    }))
}

/// A frame whose `data` is a JSON document sent as a string, as Pusher does for its own events.
pub fn encode_string_data(event: &str, channel: Option<&str>, data_json: &str) -> Utf8Bytes {
    encode(event, channel, data_json, None)
}

pub fn connection_established(socket_id: &str, activity_timeout: u64) -> Utf8Bytes {
    let data = json(&ConnectionEstablished {
        socket_id: socket_id.to_owned(),
        activity_timeout,
    });
    encode_string_data(events::CONNECTION_ESTABLISHED, None, &data)
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
            kind: err.kind().into(),
            error: err.to_string(),
            status: err.status(),
        },
        None,
    )
}

/// `pusher_internal:subscription_succeeded` with the given `data` JSON (`{}`, or the presence
/// members), and Chorus's history position and recovery outcome.
pub fn succeeded(
    channel: &str,
    data_json: &str,
    position: Option<&StreamPosition>,
    recovery: Option<&Recovery>,
) -> Utf8Bytes {
    encode_full(
        events::SUBSCRIPTION_SUCCEEDED,
        Some(channel),
        data_json,
        None,
        position,
        recovery,
    )
}

/// `pusher_internal:member_added`; `user_info` absent is sent as `null`.
pub fn member_added(channel: &str, user_id: &str, user_info: Option<&RawValue>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a str,
        user_info: &'a RawValue,
    }
    let data = json(&Data {
        user_id,
        user_info: user_info.unwrap_or(RawValue::NULL),
    });
    encode_string_data(events::MEMBER_ADDED, Some(channel), &data)
}

/// `pusher_internal:member_removed`.
/// `pusher_internal:subscription_count` (pusher-js emits `pusher:subscription_count`).
pub fn subscription_count(channel: &str, count: usize) -> Utf8Bytes {
    encode_string_data(
        "pusher_internal:subscription_count",
        Some(channel),
        &format!(r#"{{"subscription_count":{count}}}"#),
    )
}

/// `pusher_internal:watchlist_events` with one event (`online` or `offline`) naming `user_ids`
/// (pusher-js: `pusher.user.watchlist.bind(name, ...)`).
pub fn watchlist_event(name: &str, user_ids: &[&str]) -> Utf8Bytes {
    Utf8Bytes::from(format!(
        r#"{{"event":"pusher_internal:watchlist_events","data":{{"events":[{{"name":{},"user_ids":{}}}]}}}}"#,
        json(name),
        json(user_ids)
    ))
}

/// `pusher:cache_miss`: a cache channel has no event to give a new subscriber.
pub fn cache_miss(channel: &str) -> Utf8Bytes {
    Utf8Bytes::from(format!(
        r#"{{"event":"pusher:cache_miss","channel":{}}}"#,
        json(channel)
    ))
}

pub fn member_removed(channel: &str, user_id: &str) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a str,
    }
    encode_string_data(
        events::MEMBER_REMOVED,
        Some(channel),
        &json(&Data { user_id }),
    )
}

/// `data` of `subscription_succeeded` on a presence channel, from each member's id and info.
pub fn presence_data<'a>(members: impl Iterator<Item = (&'a str, &'a RawValue)>) -> String {
    #[derive(Serialize)]
    struct Presence<'a> {
        ids: Vec<&'a str>,
        hash: HashMap<&'a str, &'a RawValue>,
        count: usize,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        presence: Presence<'a>,
    }
    let (ids, hash): (Vec<&str>, HashMap<&str, &RawValue>) =
        members.map(|(id, info)| (id, (id, info))).unzip();
    json(&Data {
        presence: Presence {
            count: ids.len(),
            ids,
            hash,
        },
    })
}

/// `pusher:signin_success`, echoing the signed `user_data`.
pub fn signin_success(user_data: &str) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Success<'a> {
        user_data: &'a str,
    }
    encode(events::SIGNIN_SUCCESS, None, Success { user_data }, None)
}

/// An encoded frame without its closing `}`, so that fields can be appended without parsing it
/// again: Redis appends the history position it assigns, the bus wraps it in an envelope.
#[derive(Debug, Clone)]
pub struct OpenFrame(String);

impl OpenFrame {
    /// Opens a frame [`encode`] made (a JSON object, so it ends with `}`).
    pub fn of(frame: &Utf8Bytes) -> Self {
        let text = frame.as_str();
        Self(text.strip_suffix('}').unwrap_or(text).to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The frame as it was: closed again, without added fields.
    pub fn close(mut self) -> Utf8Bytes {
        self.0.push('}');
        Utf8Bytes::from(self.0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_frames_carry_their_data_as_a_string() {
        let info = RawValue::from_string(r#"{"name":"A"}"#.into()).unwrap();
        let added = member_added("presence-r", "1", Some(&info));
        assert_eq!(
            added.as_str(),
            r#"{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":\"1\",\"user_info\":{\"name\":\"A\"}}"}"#
        );
        assert!(member_added("presence-r", "1", None)
            .as_str()
            .contains(r#"\"user_info\":null"#));
        assert_eq!(
            member_removed("presence-r", "1").as_str(),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"1\"}"}"#
        );
    }

    #[test]
    fn an_open_frame_closes_to_the_same_bytes() {
        let frame = encode("e", Some("c"), "d", None);
        let open = OpenFrame::of(&frame);
        assert!(!open.as_str().ends_with('}'));
        assert_eq!(open.close(), frame);
    }
}
