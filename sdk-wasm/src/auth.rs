//! Authorization against the app's endpoints (private and presence channels, user sign-in): the
//! requests in flight, the form bodies sent and the answers read. The engine does the posting.

use chorus_protocol::frame::{SigninData, SubscribeData};
use js_sys::{encode_uri_component, Object, JSON};
use wasm_bindgen::JsValue;

use crate::frames::id_of;
use crate::js::{concat, get, js_str, js_string, set};

/// An auth endpoint and the headers the app sends it.
pub struct Endpoint {
    pub url: String,
    pub headers: JsValue,
}

/// One request in flight. `repr(C)` in this order: the layout the tuple it replaced had, which
/// lets `Pending::request` write it in place (about 50 bytes less wasm than Rust's own order).
#[derive(Debug, PartialEq)]
#[repr(C)]
pub struct AuthRequest {
    /// The socket it authorizes: a reconnect makes the answer moot.
    pub socket_id: String,
    /// Names the answer (`Client::answer(tag, …)`).
    pub tag: u32,
    /// `None`: user sign-in.
    pub channel: Option<String>,
}

/// The requests in flight.
#[derive(Default)]
pub struct Pending {
    list: Vec<AuthRequest>,
    next_tag: u32,
}

impl Pending {
    /// Records a request; returns its tag.
    pub fn request(&mut self, socket_id: String, channel: Option<String>) -> u32 {
        let tag = self.next_tag.wrapping_add(1);
        self.next_tag = tag;
        self.list.push(AuthRequest {
            tag,
            socket_id,
            channel,
        });
        tag
    }

    /// The request `tag` answers, once.
    pub fn take(&mut self, tag: u32) -> Option<AuthRequest> {
        let pos = self.list.iter().position(|p| p.tag == tag)?;
        Some(self.list.swap_remove(pos))
    }
}

/// The form pusher-js posts to authorize a channel.
pub fn channel_body(socket_id: &str, channel: &str) -> String {
    concat(&[
        "socket_id=",
        &String::from(encode_uri_component(socket_id)),
        "&channel_name=",
        &String::from(encode_uri_component(channel)),
    ])
}

/// The form pusher-js posts to sign the user in.
pub fn user_body(socket_id: &str) -> String {
    concat(&["socket_id=", &String::from(encode_uri_component(socket_id))])
}

/// What `Host::post` delivered: the endpoint's JSON answer, or (a number) the HTTP status.
pub fn outcome(value: JsValue) -> Result<JsValue, JsValue> {
    if value.as_f64().is_some() {
        Err(value)
    } else {
        Ok(value)
    }
}

/// `pusher:subscribe` from a channel endpoint's answer. Presence: `me` becomes our own user id
/// when the answer has `channel_data` that parses.
pub fn subscribe_data(channel: &str, body: &JsValue, me: &mut Option<String>) -> SubscribeData {
    let auth = get(body, "auth").as_string();
    let channel_data = get(body, "channel_data").as_string();
    if let Some(cd) = &channel_data {
        if let Ok(parsed) = JSON::parse(cd) {
            *me = id_of(get(&parsed, "user_id"));
        }
    }
    SubscribeData {
        channel: channel.to_owned(),
        auth,
        channel_data,
        recover: None,
    }
}

/// `pusher:signin` from the user endpoint's answer.
pub fn signin_data(body: &JsValue) -> SigninData {
    SigninData {
        auth: get(body, "auth").as_string().unwrap_or_default(),
        user_data: get(body, "user_data").as_string().unwrap_or_default(),
    }
}

/// The `AuthError` pusher-js reports (`what`: which endpoint); `status` 0 when the request failed.
pub fn auth_error(status: &JsValue, what: &str) -> JsValue {
    let e = Object::new();
    set(&e, "type", &js_str("AuthError"));
    let status = if status.as_f64().is_some() {
        status.clone()
    } else {
        JsValue::from_f64(0.0)
    };
    let text = concat(&[
        "Unable to retrieve auth string from ",
        what,
        " endpoint - received status: ",
        &js_string(&status),
    ]);
    set(&e, "error", &js_str(&text));
    set(&e, "status", &status);
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_their_request_once() {
        let mut p = Pending::default();
        let a = p.request("1.1".into(), Some("private-a".into()));
        let b = p.request("1.1".into(), None);
        assert_ne!(a, b);
        assert_eq!(p.take(99), None);
        let got = p.take(b).map(|r| (r.socket_id, r.channel));
        assert_eq!(got, Some(("1.1".to_owned(), None)));
        assert_eq!(p.take(b), None);
        assert_eq!(
            p.take(a).and_then(|r| r.channel).as_deref(),
            Some("private-a")
        );
        assert_eq!(p.take(a), None);
    }

    #[test]
    fn tags_wrap_without_overflow() {
        let mut p = Pending {
            list: Vec::new(),
            next_tag: u32::MAX,
        };
        assert_eq!(p.request("1.1".into(), None), 0);
        assert_eq!(p.request("1.1".into(), None), 1);
    }
}
