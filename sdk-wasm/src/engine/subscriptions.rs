//! Subscriptions and authorization, as the engine runs them: joining channels (after asking the
//! app's endpoint when the kind needs it), the server's channel events, presence members, client
//! events and user sign-in. A second `impl Engine`, beside the connection code in `engine.rs`.

use std::rc::Rc;

use chorus_protocol::channel::ChannelKind;
use chorus_protocol::events as ev;
use chorus_protocol::frame::{SubscribeData, UnsubscribeData};
use wasm_bindgen::JsValue;

use super::{Engine, Shared, State};
use crate::auth;
use crate::frames::{self, ToJs};
use crate::js::{get, js_str, set};

impl Engine {
    /// An event on a channel (the frame is in `self.frame`).
    pub(super) fn channel_event(
        &mut self,
        name: &str,
        event: &str,
        data: JsValue,
        user: Option<String>,
    ) {
        let Some(chan) = self.channels.get_mut(name) else {
            return;
        };
        let ch = Some(name);
        match event {
            ev::SUBSCRIPTION_SUCCEEDED => {
                chan.subscribed = true;
                if chan.kind == ChannelKind::Presence {
                    frames::presence_hash(&data, chan.members.succeeded());
                    let list = frames::member_list(chan.members.list());
                    let me = chan
                        .members
                        .me
                        .as_deref()
                        .map(js_str)
                        .unwrap_or(JsValue::NULL);
                    self.emit(ch, "pusher:subscription_succeeded", list, me);
                } else {
                    self.emit(
                        ch,
                        "pusher:subscription_succeeded",
                        data,
                        JsValue::UNDEFINED,
                    );
                }
            }
            ev::MEMBER_ADDED => {
                let Some(id) = frames::id_of(get(&data, "user_id")) else {
                    return;
                };
                let info = get(&data, "user_info");
                let member = frames::member(&id, &info);
                chan.members.added(id, info);
                self.emit(ch, "pusher:member_added", member, JsValue::UNDEFINED);
            }
            ev::MEMBER_REMOVED => {
                let Some(id) = frames::id_of(get(&data, "user_id")) else {
                    return;
                };
                if let Some((id, info)) = chan.members.removed(&id) {
                    self.emit(
                        ch,
                        "pusher:member_removed",
                        frames::member(&id, &info),
                        JsValue::UNDEFINED,
                    );
                }
            }
            ev::SUBSCRIPTION_ERROR => {
                self.emit(ch, "pusher:subscription_error", data, JsValue::UNDEFINED);
            }
            _ => self.emit(ch, event, data, frames::sender(user)),
        }
    }

    pub fn subscribe(&mut self, shared: &Rc<Shared>, name: &str) {
        if let Some(i) = self.channels.add(name) {
            if self.state == State::Connected {
                self.join(shared, i);
            }
        }
    }

    pub fn unsubscribe(&mut self, name: &str) {
        if self.channels.remove(name) && self.state == State::Connected {
            let data = UnsubscribeData {
                channel: name.to_owned(),
            };
            self.send(ev::UNSUBSCRIBE, None, &data);
        }
    }

    /// Whether the server confirmed `name` on the current socket.
    pub fn subscribed(&self, name: &str) -> bool {
        self.channels.get(name).is_some_and(|c| c.subscribed)
    }

    /// Sends a client event on a subscribed private or presence channel; whether it was sent.
    pub fn trigger(&self, channel: &str, event: &str, data: &JsValue) -> bool {
        let ok = self.state == State::Connected
            && self
                .channels
                .get(channel)
                .is_some_and(|c| c.subscribed && c.kind.allows_client_events());
        if ok {
            self.send(event, Some(channel), data);
        }
        ok
    }

    /// `[{ id, info }]` of `channel`'s presence members (empty for other channels).
    pub fn members(&self, channel: &str) -> JsValue {
        match self.channels.get(channel) {
            Some(c) => frames::member_list(c.members.list()),
            None => js_sys::Array::new().into(),
        }
    }

    /// Sends `pusher:subscribe` for channel `i`, after authorizing it if its kind needs that.
    pub(super) fn join(&mut self, shared: &Rc<Shared>, i: usize) {
        let Some(socket_id) = self.socket_id.clone() else {
            return;
        };
        let chan = self.channels.at(i);
        if !chan.kind.requires_auth() {
            let data = SubscribeData {
                channel: chan.name.clone(),
                auth: None,
                channel_data: None,
                recover: None,
            };
            self.send_subscribe(shared, data);
            return;
        }
        let name = chan.name.clone();
        let body = auth::channel_body(&socket_id, &name);
        let tag = self.pending.request(socket_id, Some(name));
        let ep = &self.channel_auth;
        shared.host.post(&ep.url, &ep.headers, &body, tag);
    }

    /// `pusher:subscribe`; with a remembered position (a resubscription: a new channel has none)
    /// also `recover`, so that the server replays what was missed.
    fn send_subscribe(&self, shared: &Rc<Shared>, data: SubscribeData) {
        let o = data.to_js();
        let pos = shared.host.position(&data.channel);
        if pos.is_object() {
            set(&o, "recover", &pos);
        }
        self.send(ev::SUBSCRIBE, None, &o);
    }

    /// `Client::signin`: signs the user in now (when connected) and after every reconnect.
    pub fn signin(&mut self, shared: &Rc<Shared>) {
        if !self.signin {
            self.signin = true;
            if self.state == State::Connected {
                self.do_signin(shared);
            }
        }
    }

    pub(super) fn do_signin(&mut self, shared: &Rc<Shared>) {
        let Some(socket_id) = self.socket_id.clone() else {
            return;
        };
        let body = auth::user_body(&socket_id);
        let tag = self.pending.request(socket_id, None);
        let ep = &self.user_auth;
        shared.host.post(&ep.url, &ep.headers, &body, tag);
    }

    /// An auth request finished: `value` is the endpoint's JSON answer, or its HTTP status.
    pub fn answer(&mut self, shared: &Rc<Shared>, tag: u32, value: JsValue) {
        let Some(req) = self.pending.take(tag) else {
            return;
        };
        let res = auth::outcome(value);
        match req.channel {
            Some(name) => self.authorized(shared, &name, &req.socket_id, res),
            None => self.signed_in(&req.socket_id, res),
        }
    }

    fn authorized(
        &mut self,
        shared: &Rc<Shared>,
        name: &str,
        socket_id: &str,
        res: Result<JsValue, JsValue>,
    ) {
        // A reconnect (new socket id) or an unsubscribe while the request ran makes it moot.
        if self.socket_id.as_deref() != Some(socket_id) {
            return;
        }
        let Some(chan) = self.channels.get_mut(name) else {
            return;
        };
        match res {
            Ok(body) => {
                let data = auth::subscribe_data(name, &body, &mut chan.members.me);
                self.send_subscribe(shared, data);
            }
            Err(status) => {
                let e = auth::auth_error(&status, "channel-authorization");
                self.emit(
                    Some(name),
                    "pusher:subscription_error",
                    e.clone(),
                    JsValue::UNDEFINED,
                );
                set(&e, "channel", &js_str(name));
                self.error("AuthError", e);
            }
        }
    }

    fn signed_in(&mut self, socket_id: &str, res: Result<JsValue, JsValue>) {
        if self.socket_id.as_deref() != Some(socket_id) {
            return;
        }
        match res {
            Ok(body) => self.send(ev::SIGNIN, None, &auth::signin_data(&body)),
            Err(status) => {
                let e = auth::auth_error(&status, "user-authentication");
                self.error("AuthError", e);
            }
        }
    }
}
