//! Frames and payloads as browser values: the protocol crate's wire types written as JS objects
//! (then `JSON.stringify`), frames the browser parsed read back, and the objects the engine hands
//! to the app (presence members, errors). serde stays out of the wasm, which keeps the download
//! small.

use chorus_protocol::frame::{
    ConnectionEstablished, Frame, SigninData, SubscribeData, UnsubscribeData,
};
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::js::{get, js_str, js_string, set};

/// A wire type as a browser object, ready for `JSON.stringify`.
pub trait ToJs {
    fn to_js(&self) -> JsValue;
}

impl ToJs for SubscribeData {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "channel", &js_str(&self.channel));
        if let Some(a) = &self.auth {
            set(&o, "auth", &js_str(a));
        }
        if let Some(c) = &self.channel_data {
            set(&o, "channel_data", &js_str(c));
        }
        o.into()
    }
}

impl ToJs for UnsubscribeData {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "channel", &js_str(&self.channel));
        o.into()
    }
}

impl ToJs for SigninData {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "auth", &js_str(&self.auth));
        set(&o, "user_data", &js_str(&self.user_data));
        o.into()
    }
}

impl ToJs for JsValue {
    fn to_js(&self) -> JsValue {
        self.clone()
    }
}

/// `{"event", "channel"?, "data"}`, for `JSON.stringify`.
pub fn frame(event: &str, channel: Option<&str>, data: &dyn ToJs) -> Object {
    let frame = Object::new();
    set(&frame, "event", &js_str(event));
    if let Some(c) = channel {
        set(&frame, "channel", &js_str(c));
    }
    set(&frame, "data", &data.to_js());
    frame
}

/// Reads a frame the browser parsed; `data` stays a browser value.
pub fn read_frame(v: &JsValue) -> Option<Frame<JsValue>> {
    Some(Frame {
        event: get(v, "event").as_string()?,
        channel: get(v, "channel").as_string(),
        data: Some(get(v, "data")),
        user_id: id_of(get(v, "user_id")),
    })
}

/// Event data as pusher-js delivers it: a JSON string is parsed, anything else passes as is.
pub fn decode(v: JsValue) -> JsValue {
    match v.as_string() {
        Some(text) => JSON::parse(&text).unwrap_or(v),
        None => v,
    }
}

/// `data` of `pusher:connection_established`, when it has both fields.
pub fn established(data: &JsValue) -> Option<ConnectionEstablished> {
    Some(ConnectionEstablished {
        socket_id: get(data, "socket_id").as_string()?,
        activity_timeout: get(data, "activity_timeout").as_f64()? as u64,
    })
}

/// A user id as text (servers send strings; numbers are accepted).
pub fn id_of(v: JsValue) -> Option<String> {
    if v.is_undefined() || v.is_null() {
        None
    } else {
        Some(js_string(&v))
    }
}

/// Appends `(user_id, user_info)` of every member in the `presence.hash` of
/// `subscription_succeeded`.
pub fn presence_hash(data: &JsValue, members: &mut Vec<(String, JsValue)>) {
    let hash = get(&get(data, "presence"), "hash");
    if hash.is_object() {
        let ids = Object::keys(hash.unchecked_ref::<Object>());
        for k in 0..ids.length() {
            let id = ids.get(k);
            let info = Reflect::get(&hash, &id).unwrap_or(JsValue::UNDEFINED);
            members.push((id.as_string().unwrap_or_default(), info));
        }
    }
}

/// `{ id, info }` of a presence member.
pub fn member(id: &str, info: &JsValue) -> JsValue {
    let m = Object::new();
    set(&m, "id", &js_str(id));
    set(&m, "info", info);
    m.into()
}

/// `[{ id, info }]` of presence members.
pub fn member_list(members: &[(String, JsValue)]) -> JsValue {
    let out = Array::new();
    for (id, info) in members {
        out.push(&member(id, info));
    }
    out.into()
}

/// `{ user_id }` beside a client event that names its sender, else `undefined`.
pub fn sender(user: Option<String>) -> JsValue {
    match user {
        Some(u) => {
            let m = Object::new();
            set(&m, "user_id", &js_str(&u));
            m.into()
        }
        None => JsValue::UNDEFINED,
    }
}

/// `{ type, data }`: the engine's `error` event.
pub fn error(kind: &str, data: &JsValue) -> JsValue {
    let e = Object::new();
    set(&e, "type", &js_str(kind));
    set(&e, "data", data);
    e.into()
}

/// `{ code, message }` of a close with one of Pusher's codes (4000-4999).
pub fn close_error(code: u16, reason: &str) -> JsValue {
    let data = Object::new();
    set(&data, "code", &JsValue::from_f64(code as f64));
    set(&data, "message", &js_str(reason));
    data.into()
}
