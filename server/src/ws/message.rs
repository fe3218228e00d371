//! A client frame, parsed once into what it asks for: [`ClientMessage::parse`] checks the JSON
//! and each event's `data`, so the session only applies well-formed requests.

use chorus_protocol::events;
use chorus_protocol::frame::{Frame, SigninData, SubscribeData, UnsubscribeData};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{quoted, ConnectionError};

/// What a client asked for.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    Ping,
    Pong,
    Subscribe(SubscribeData),
    Unsubscribe(UnsubscribeData),
    Signin(SigninData),
    /// A `client-*` event (whisper); `data` is relayed as sent.
    ClientEvent {
        event: String,
        channel: Option<String>,
        data: Option<&'a RawValue>,
    },
}

impl<'a> ClientMessage<'a> {
    pub fn parse(text: &'a str) -> Result<Self, ConnectionError> {
        let frame = serde_json::from_str::<Frame<&RawValue>>(text)
            .map_err(|e| ConnectionError::InvalidJson(quoted(&e.to_string())))?;
        let data = frame.data;
        Ok(match frame.event.as_str() {
            events::PING => Self::Ping,
            events::PONG => Self::Pong,
            events::SUBSCRIBE => Self::Subscribe(parse_data(data, events::SUBSCRIBE)?),
            events::UNSUBSCRIBE => Self::Unsubscribe(parse_data(data, events::UNSUBSCRIBE)?),
            events::SIGNIN => Self::Signin(parse_data(data, events::SIGNIN)?),
            name if events::is_client_event(name) => Self::ClientEvent {
                event: frame.event,
                channel: frame.channel,
                data,
            },
            other => return Err(ConnectionError::UnknownEvent(quoted(other))),
        })
    }

    /// Heartbeats do not count as activity (`inactivity_timeout`); everything else does.
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, Self::Ping | Self::Pong)
    }
}

/// Parses `data`, given as an object or (as some clients do) as a JSON string holding one.
fn parse_data<T: DeserializeOwned>(
    data: Option<&RawValue>,
    event: &'static str,
) -> Result<T, ConnectionError> {
    let parse = || {
        let raw = data?.get();
        serde_json::from_str(raw).ok().or_else(|| {
            let inner: String = serde_json::from_str(raw).ok()?;
            serde_json::from_str(&inner).ok()
        })
    };
    parse().ok_or(ConnectionError::InvalidData(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_as_an_object_or_a_string() {
        let a = r#"{"event":"pusher:subscribe","data":{"channel":"c"}}"#;
        let b = r#"{"event":"pusher:subscribe","data":"{\"channel\":\"c\"}"}"#;
        for text in [a, b] {
            match ClientMessage::parse(text).unwrap() {
                ClientMessage::Subscribe(d) => assert_eq!(d.channel, "c"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let err = |t: &str| ClientMessage::parse(t).unwrap_err();
        assert!(matches!(err("{"), ConnectionError::InvalidJson(_)));
        assert_eq!(
            err(r#"{"event":"pusher:subscribe","data":{}}"#),
            ConnectionError::InvalidData(events::SUBSCRIBE)
        );
        assert_eq!(
            err(r#"{"event":"pusher:signin"}"#),
            ConnectionError::InvalidData(events::SIGNIN)
        );
        let long = format!(r#"{{"event":"{}"}}"#, "x".repeat(100));
        assert_eq!(
            err(&long),
            ConnectionError::UnknownEvent(format!("{}…", "x".repeat(64)))
        );
    }

    #[test]
    fn heartbeats_and_client_events() {
        assert!(ClientMessage::parse(r#"{"event":"pusher:ping","data":{}}"#)
            .unwrap()
            .is_heartbeat());
        let whisper = r#"{"event":"client-typing","channel":"private-a","data":{"x":1}}"#;
        match ClientMessage::parse(whisper).unwrap() {
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => {
                assert_eq!(event, "client-typing");
                assert_eq!(channel.as_deref(), Some("private-a"));
                assert_eq!(data.unwrap().get(), r#"{"x":1}"#);
            }
            other => panic!("{other:?}"),
        }
    }
}
