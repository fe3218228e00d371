//! Chorus browser SDK: a Pusher Channels protocol v7 client compiled to WebAssembly.
//!
//! This crate is the engine of the npm package in `npm/`: it owns the WebSocket, the connection state
//! machine (reconnect with exponential backoff and full jitter, close-code ranges, heartbeat, the
//! browser's `online`/`offline` events), channel subscriptions (authorizing private and presence
//! channels against the app's auth endpoint, resubscribing after every reconnect), presence members,
//! client events (whisper) and user sign-in. The typed JS wrapper (`npm/index.js`) keeps the app's
//! listeners and Echo-style naming; every event this engine produces reaches it through one
//! callback, `host.emit(channel, event, data, extra, frame)`. Chorus's history extension (a
//! `position` on events, `recovery` on `subscription_succeeded`) is kept by the wrapper, which sees
//! the whole `frame`; when subscribing, the engine asks it (`host.position(channel)`) for the
//! position to `recover` from: a resubscription after a reconnect has one, a new channel none.
//!
//! Size matters (the whole download must stay within pusher-js + laravel-echo, 20,956 B gzip; the
//! tests measure both): JSON is parsed and written by the browser (`JSON.parse`/`JSON.stringify`),
//! there is no `format!`, and serde stays out of the wasm (the protocol crate's wire types are
//! written as browser objects, see `ToJs`).

#[cfg(target_arch = "wasm32")]
mod alloc;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: alloc::Allocator = alloc::Allocator::new();

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use chorus_protocol::channel::{ChannelKind, SERVER_TO_USER_PREFIX};
use chorus_protocol::events as ev;
use chorus_protocol::frame::{
    ConnectionEstablished, Frame, SigninData, SubscribeData, UnsubscribeData,
};
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Every callback the engine hands to JS has this one type, so the glue for closures exists once.
type Callback = Closure<dyn FnMut(JsValue)>;

#[wasm_bindgen]
extern "C" {
    /// The JS side: receives every event this engine produces.
    pub type Host;
    /// `frame`: for channel events, the whole frame as the server sent it (Chorus's `position`
    /// and `recovery` ride there; the wrapper keeps the history positions).
    #[wasm_bindgen(method)]
    fn emit(
        this: &Host,
        channel: Option<String>,
        event: &str,
        data: &JsValue,
        extra: &JsValue,
        frame: &JsValue,
    );
    /// The newest history position the wrapper holds for `channel` (`{epoch, offset}`, else
    /// `undefined`), sent as `recover` when subscribing again.
    #[wasm_bindgen(method)]
    fn position(this: &Host, channel: &str) -> JsValue;
    /// POSTs a form (`body`) to an auth endpoint with the app's `headers`, then calls
    /// `Client::answer(tag, value)` with the parsed JSON answer, or with the HTTP status (a number;
    /// 0 if the request failed).
    #[wasm_bindgen(method)]
    fn post(this: &Host, url: &str, headers: &JsValue, body: &str, tag: u32);

    /// `setTimeout(f, ms, arg)`: calls `f(arg)`; returns a handle (a number in browsers, an object
    /// in Node).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Callback, ms: f64, arg: u32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);

    /// JS `String(v)`: number to text without Rust's formatting machinery.
    #[wasm_bindgen(js_name = String)]
    fn js_string(v: &JsValue) -> String;

    /// `globalThis.addEventListener`: absent in Node, hence `catch`.
    #[wasm_bindgen(js_namespace = globalThis, js_name = addEventListener, catch)]
    fn add_global_listener(kind: &str, f: &Callback) -> Result<(), JsValue>;
}

/// Wire types of the protocol crate written as browser objects (then `JSON.stringify`): the SDK
/// leaves serde out of the wasm, which keeps the download small.
trait ToJs {
    fn to_js(&self) -> JsValue;
}

impl ToJs for SubscribeData {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "channel", &s(&self.channel));
        if let Some(a) = &self.auth {
            set(&o, "auth", &s(a));
        }
        if let Some(c) = &self.channel_data {
            set(&o, "channel_data", &s(c));
        }
        o.into()
    }
}

impl ToJs for UnsubscribeData {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "channel", &s(&self.channel));
        o.into()
    }
}

impl ToJs for SigninData {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        set(&o, "auth", &s(&self.auth));
        set(&o, "user_data", &s(&self.user_data));
        o.into()
    }
}

impl ToJs for JsValue {
    fn to_js(&self) -> JsValue {
        self.clone()
    }
}

/// Reads a frame the browser parsed; `data` stays a browser value.
fn read_frame(v: &JsValue) -> Option<Frame<JsValue>> {
    Some(Frame {
        event: get(v, "event").as_string()?,
        channel: get(v, "channel").as_string(),
        data: Some(get(v, "data")),
        user_id: id_of(get(v, "user_id")),
    })
}

/// Connection states, as pusher-js names them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Initialized,
    Connecting,
    Connected,
    Unavailable,
    Disconnected,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Initialized => "initialized",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Unavailable => "unavailable",
            State::Disconnected => "disconnected",
            State::Failed => "failed",
        }
    }
}

struct Channel {
    name: String,
    kind: ChannelKind,
    subscribed: bool,
    /// Presence: `(user_id, user_info)` of every member, in arrival order.
    members: Vec<(String, JsValue)>,
    /// Presence: our own user id, from the `channel_data` the auth endpoint returned.
    me: Option<String>,
}

/// Timers the engine runs; at most one of each kind is pending.
#[derive(Clone, Copy)]
enum Timer {
    Retry,
    Activity,
    Pong,
    Handshake,
    Unavailable,
}

/// One event for the JS side, queued while the state is borrowed and delivered after.
type Emit = (Option<String>, String, JsValue, JsValue, JsValue);

struct St {
    url: String,
    /// The wss:// URL (port `wssPort`): a 4000 close ("SSL only") switches to it.
    tls_url: String,
    auth_endpoint: String,
    auth_headers: JsValue,
    user_endpoint: String,
    user_headers: JsValue,
    /// Milliseconds: client's upper bound for the activity timeout, pong timeout, handshake timeout,
    /// delay before reporting `unavailable`, first backoff step, backoff cap.
    max_activity: f64,
    pong_ms: f64,
    handshake_ms: f64,
    unavailable_ms: f64,
    base_ms: f64,
    cap_ms: f64,

    state: State,
    /// The app wants a connection (false after `disconnect()` or a refusal).
    want: bool,
    ws: Option<WebSocket>,
    socket_id: Option<String>,
    activity_ms: f64,
    attempt: i32,
    /// When the current outage began (ms since the epoch).
    down_since: f64,
    channels: Vec<Channel>,
    signin: bool,
    /// Handles of the pending timers (`undefined` when not pending), indexed by `Timer`.
    timers: [JsValue; 5],
    /// Auth requests in flight: tag, socket id it was made for, channel (`None`: user sign-in).
    pending: Vec<(u32, String, Option<String>)>,
    next_tag: u32,
    out: Vec<Emit>,
    /// The frame being handled, passed along with the events it produces.
    frame: JsValue,
}

struct Shared {
    st: RefCell<St>,
    host: Host,
    on_message: Callback,
    on_close: Callback,
    on_timer: Callback,
}

/// The connection engine behind the `Chorus` class of the npm package.
#[wasm_bindgen]
pub struct Client {
    sh: Rc<Shared>,
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &s(key)).unwrap_or(JsValue::UNDEFINED)
}

fn set(obj: &JsValue, key: &str, val: &JsValue) {
    let _ = Reflect::set(obj, &s(key), val);
}

/// Event data as pusher-js delivers it: a JSON string is parsed, anything else passes as is.
fn decode(v: JsValue) -> JsValue {
    match v.as_string() {
        Some(text) => JSON::parse(&text).unwrap_or(v),
        None => v,
    }
}

fn concat(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        out.push_str(p);
    }
    out
}

/// Runs `f` on the state, then delivers the events it queued. Every entry point (exported method,
/// socket callback, timer, finished HTTP request) goes through here, so the state is never
/// borrowed while app code runs, and app code may call back into the engine.
fn run(sh: &Rc<Shared>, f: impl FnOnce(&mut St, &Rc<Shared>)) {
    f(&mut sh.st.borrow_mut(), sh);
    flush(sh);
}

#[inline(never)]
fn flush(sh: &Rc<Shared>) {
    loop {
        let next = {
            let out = &mut sh.st.borrow_mut().out;
            (!out.is_empty()).then(|| out.remove(0))
        };
        match next {
            Some((channel, event, data, extra, frame)) => {
                sh.host.emit(channel, &event, &data, &extra, &frame)
            }
            None => break,
        }
    }
}

fn with(weak: &Weak<Shared>, f: impl FnOnce(&mut St, &Rc<Shared>)) {
    if let Some(sh) = weak.upgrade() {
        run(&sh, f);
    }
}

impl St {
    fn emit(&mut self, channel: Option<&str>, event: &str, data: JsValue, extra: JsValue) {
        self.out.push((
            channel.map(str::to_owned),
            event.to_owned(),
            data,
            extra,
            self.frame.clone(),
        ));
    }

    fn error(&mut self, kind: &str, data: JsValue) {
        let e = Object::new();
        set(&e, "type", &s(kind));
        set(&e, "data", &data);
        self.emit(None, "error", e.into(), JsValue::UNDEFINED);
    }

    fn set_state(&mut self, next: State) {
        if self.state != next {
            let prev = self.state;
            self.state = next;
            self.emit(None, "state_change", s(prev.name()), s(next.name()));
        }
    }

    fn timer(&mut self, sh: &Rc<Shared>, which: Timer, ms: f64) {
        self.clear(which);
        self.timers[which as usize] = set_timeout(&sh.on_timer, ms.max(0.0), which as u32);
    }

    fn clear(&mut self, which: Timer) {
        let t = &mut self.timers[which as usize];
        if !t.is_undefined() {
            clear_timeout(t);
            *t = JsValue::UNDEFINED;
        }
    }

    /// Writes `{"event", "channel"?, "data"}` to the socket.
    fn send(&self, event: &str, channel: Option<&str>, data: &dyn ToJs) {
        if let Some(ws) = &self.ws {
            let frame = Object::new();
            set(&frame, "event", &s(event));
            if let Some(c) = channel {
                set(&frame, "channel", &s(c));
            }
            set(&frame, "data", &data.to_js());
            if let Ok(text) = JSON::stringify(&frame) {
                let _ = ws.send_with_str(&String::from(text));
            }
        }
    }

    /// Opens a new socket (the state becomes `connecting`, or stays `unavailable`).
    fn open(&mut self, sh: &Rc<Shared>) {
        self.drop_socket();
        self.clear(Timer::Retry);
        if self.state != State::Unavailable {
            self.set_state(State::Connecting);
        }
        match WebSocket::new(&self.url) {
            Ok(ws) => {
                ws.set_onmessage(Some(sh.on_message.as_ref().unchecked_ref()));
                ws.set_onclose(Some(sh.on_close.as_ref().unchecked_ref()));
                // An `error` event is always followed by `close`; handling it keeps Node's `ws`
                // from throwing an unhandled 'error'.
                ws.set_onerror(Some(sh.on_close.as_ref().unchecked_ref()));
                self.ws = Some(ws);
                self.timer(sh, Timer::Handshake, self.handshake_ms);
                if self.timers[Timer::Unavailable as usize].is_undefined() {
                    self.timer(sh, Timer::Unavailable, self.unavailable_ms);
                }
            }
            Err(e) => {
                self.want = false;
                self.clear_all();
                self.set_state(State::Failed);
                self.error("WebSocketError", e);
            }
        }
    }

    /// Forgets the current socket: no callback of it will run any more.
    fn drop_socket(&mut self) {
        if let Some(ws) = self.ws.take() {
            ws.set_onmessage(None);
            ws.set_onclose(None);
            // `onerror` stays: closing a socket that is still connecting fires `error` (in Node's
            // `ws` an unhandled one throws); the handler ignores it.
            let _ = ws.close();
        }
        self.socket_id = None;
        for c in &mut self.channels {
            c.subscribed = false;
        }
        self.clear(Timer::Activity);
        self.clear(Timer::Pong);
        self.clear(Timer::Handshake);
    }

    fn clear_all(&mut self) {
        self.drop_socket();
        self.clear(Timer::Retry);
        self.clear(Timer::Unavailable);
    }

    /// Schedules the next attempt: exponential backoff (steps grow by 1.6 from `base_ms`, capped
    /// at `cap_ms`) with full jitter (a random delay below the step), never sooner than `floor` ms.
    /// The step is also never longer than the outage has lasted so far: after a short outage the
    /// next attempt comes soon (fast recovery), while long outages back off fully. The first
    /// attempt after a working connection broke may be immediate (`at_once`: 4200-4299 and a
    /// missed pong).
    fn retry(&mut self, sh: &Rc<Shared>, floor: f64, at_once: bool) {
        if !self.want {
            return;
        }
        let now = js_sys::Date::now();
        if self.attempt == 0 {
            self.down_since = now;
        }
        let delay = if at_once && self.attempt == 0 {
            floor
        } else {
            let step = (self.base_ms * 1.6f64.powi(self.attempt))
                .min(self.cap_ms)
                .min((now - self.down_since).max(self.base_ms));
            (js_sys::Math::random() * step).max(floor)
        };
        self.attempt = self.attempt.saturating_add(1);
        if self.state != State::Unavailable {
            self.set_state(State::Connecting);
        }
        self.emit(
            None,
            "connecting_in",
            JsValue::from_f64(delay),
            JsValue::UNDEFINED,
        );
        self.timer(sh, Timer::Retry, delay);
        if self.timers[Timer::Unavailable as usize].is_undefined() {
            self.timer(sh, Timer::Unavailable, self.unavailable_ms);
        }
    }

    fn fire(&mut self, sh: &Rc<Shared>, which: Timer) {
        self.timers[which as usize] = JsValue::UNDEFINED;
        match which {
            Timer::Retry => self.open(sh),
            Timer::Activity => {
                // Idle for activity_timeout: ask the server whether it is still there.
                self.ping(sh);
            }
            Timer::Pong | Timer::Handshake => {
                // The server did not answer (frozen or unreachable): drop the socket, try again.
                self.drop_socket();
                self.retry(sh, 0.0, matches!(which, Timer::Pong));
            }
            Timer::Unavailable => {
                if self.want && self.state != State::Connected {
                    self.set_state(State::Unavailable);
                }
            }
        }
    }

    fn ping(&mut self, sh: &Rc<Shared>) {
        if self.state == State::Connected && self.timers[Timer::Pong as usize].is_undefined() {
            self.send(ev::PING, None, &JsValue::from(Object::new()));
            self.timer(sh, Timer::Pong, self.pong_ms);
        }
    }

    fn on_close(&mut self, sh: &Rc<Shared>, code: u16, reason: String) {
        self.ws = None;
        self.drop_socket();
        if !self.want {
            return;
        }
        if code >= 4000 {
            let data = Object::new();
            set(&data, "code", &JsValue::from_f64(code as f64));
            set(&data, "message", &s(&reason));
            self.error("PusherError", data.into());
        }
        match code {
            // SSL only: the one code of 4000-4099 that reconnects (as pusher-js does): switch to
            // wss:// (and `wssPort`) for good and go again at once. Refused on wss:// too: back
            // off rather than loop.
            4000 => {
                if self.url != self.tls_url {
                    self.url = self.tls_url.clone();
                    self.attempt = 0;
                    self.retry(sh, 0.0, true);
                } else {
                    self.retry(sh, 1000.0, false);
                }
            }
            // Refused (app unknown or disabled, over quota, bad version, unauthorized): stop.
            4001..=4099 => {
                self.want = false;
                self.clear_all();
                self.set_state(State::Failed);
            }
            // Over capacity: back off, at least a second.
            4100..=4199 => self.retry(sh, 1000.0, false),
            // Reconnect at once.
            4200..=4299 => self.retry(sh, 0.0, true),
            _ => self.retry(sh, 0.0, false),
        }
    }

    fn on_message(&mut self, sh: &Rc<Shared>, text: String) {
        let Ok(raw) = JSON::parse(&text) else { return };
        let Some(frame) = read_frame(&raw) else {
            return;
        };
        // Any frame proves the server is alive: restart the idle timer.
        if self.state == State::Connected {
            self.timer(sh, Timer::Activity, self.activity_ms);
        }
        let data = decode(frame.data.unwrap_or(JsValue::UNDEFINED));
        match (frame.channel, frame.event.as_str()) {
            (None, ev::CONNECTION_ESTABLISHED) => self.established(sh, data),
            (_, ev::PING) => self.send(ev::PONG, None, &JsValue::from(Object::new())),
            (_, ev::PONG) => self.clear(Timer::Pong),
            (None, ev::ERROR) => self.error("PusherError", data),
            (None, ev::SIGNIN_SUCCESS) => {
                let user = decode(get(&data, "user_data"));
                if let Some(id) = get(&user, "id").as_string() {
                    let name = concat(&[SERVER_TO_USER_PREFIX, &id]);
                    match self.find(&name) {
                        // Signed in again after a reconnect: subscribe again now.
                        Some(i) => self.join(sh, i),
                        None => self.subscribe(sh, &name),
                    }
                }
                self.emit(None, "signin_success", user, JsValue::UNDEFINED);
            }
            (Some(channel), event) => {
                self.frame = raw;
                self.channel_event(&channel, event, data, frame.user_id);
                self.frame = JsValue::UNDEFINED;
            }
            _ => {}
        }
    }

    fn established(&mut self, sh: &Rc<Shared>, data: JsValue) {
        let (Some(socket_id), Some(timeout)) = (
            get(&data, "socket_id").as_string(),
            get(&data, "activity_timeout").as_f64(),
        ) else {
            return;
        };
        let info = ConnectionEstablished {
            socket_id,
            activity_timeout: timeout as u64,
        };
        self.clear(Timer::Handshake);
        self.clear(Timer::Unavailable);
        self.attempt = 0;
        self.activity_ms = (info.activity_timeout as f64 * 1000.0).min(self.max_activity);
        let id = s(&info.socket_id);
        self.socket_id = Some(info.socket_id);
        // The socket id first, so that it is known to the app's `connected` listeners.
        self.emit(None, "connected", id, JsValue::UNDEFINED);
        self.set_state(State::Connected);
        self.timer(sh, Timer::Activity, self.activity_ms);
        for i in 0..self.channels.len() {
            // The user's own channel waits for `pusher:signin_success`.
            if self.channels[i].kind != ChannelKind::ServerToUser {
                self.join(sh, i);
            }
        }
        if self.signin {
            self.do_signin(sh);
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    fn channel_event(&mut self, name: &str, event: &str, data: JsValue, user: Option<String>) {
        let Some(i) = self.find(name) else { return };
        let chan = &mut self.channels[i];
        let ch = Some(name);
        match event {
            ev::SUBSCRIPTION_SUCCEEDED => {
                chan.subscribed = true;
                if chan.kind == ChannelKind::Presence {
                    chan.members.clear();
                    let hash = get(&get(&data, "presence"), "hash");
                    if hash.is_object() {
                        let ids = Object::keys(hash.unchecked_ref::<Object>());
                        for k in 0..ids.length() {
                            let id = ids.get(k);
                            let info = Reflect::get(&hash, &id).unwrap_or(JsValue::UNDEFINED);
                            chan.members
                                .push((id.as_string().unwrap_or_default(), info));
                        }
                    }
                    let me = chan.me.clone();
                    let list = self.member_list(i);
                    let me = me.map(|m| s(&m)).unwrap_or(JsValue::NULL);
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
                let Some(id) = id_of(get(&data, "user_id")) else {
                    return;
                };
                let info = get(&data, "user_info");
                let member = member(&id, &info);
                match chan.members.iter_mut().find(|m| m.0 == id) {
                    Some(m) => m.1 = info,
                    None => chan.members.push((id, info)),
                }
                self.emit(ch, "pusher:member_added", member, JsValue::UNDEFINED);
            }
            ev::MEMBER_REMOVED => {
                let Some(id) = id_of(get(&data, "user_id")) else {
                    return;
                };
                if let Some(pos) = chan.members.iter().position(|m| m.0 == id) {
                    let (id, info) = chan.members.remove(pos);
                    self.emit(
                        ch,
                        "pusher:member_removed",
                        member(&id, &info),
                        JsValue::UNDEFINED,
                    );
                }
            }
            ev::SUBSCRIPTION_ERROR => {
                self.emit(ch, "pusher:subscription_error", data, JsValue::UNDEFINED);
            }
            _ => {
                let meta = match user {
                    Some(u) => {
                        let m = Object::new();
                        set(&m, "user_id", &s(&u));
                        m.into()
                    }
                    None => JsValue::UNDEFINED,
                };
                self.emit(ch, event, data, meta);
            }
        }
    }

    fn member_list(&self, i: usize) -> JsValue {
        let out = js_sys::Array::new();
        for (id, info) in &self.channels[i].members {
            out.push(&member(id, info));
        }
        out.into()
    }

    /// Sends `pusher:subscribe` for channel `i`, after authorizing it if its kind needs that.
    fn join(&mut self, sh: &Rc<Shared>, i: usize) {
        let Some(socket_id) = self.socket_id.clone() else {
            return;
        };
        let chan = &self.channels[i];
        if !chan.kind.requires_auth() {
            let data = SubscribeData {
                channel: chan.name.clone(),
                auth: None,
                channel_data: None,
                recover: None,
            };
            self.send_subscribe(sh, data);
            return;
        }
        let name = chan.name.clone();
        let body = concat(&[
            "socket_id=",
            &String::from(js_sys::encode_uri_component(&socket_id)),
            "&channel_name=",
            &String::from(js_sys::encode_uri_component(&name)),
        ]);
        let tag = self.request(socket_id, Some(name));
        sh.host
            .post(&self.auth_endpoint, &self.auth_headers, &body, tag);
    }

    /// `pusher:subscribe`; with a remembered position (a resubscription: a new channel has none)
    /// also `recover`, so that the server replays what was missed.
    fn send_subscribe(&self, sh: &Rc<Shared>, data: SubscribeData) {
        let o = data.to_js();
        let pos = sh.host.position(&data.channel);
        if pos.is_object() {
            set(&o, "recover", &pos);
        }
        self.send(ev::SUBSCRIBE, None, &o);
    }

    fn authorized(
        &mut self,
        sh: &Rc<Shared>,
        name: &str,
        socket_id: &str,
        res: Result<JsValue, JsValue>,
    ) {
        // A reconnect (new socket id) or an unsubscribe while the request ran makes it moot.
        if self.socket_id.as_deref() != Some(socket_id) {
            return;
        }
        let Some(i) = self.find(name) else { return };
        match res {
            Ok(body) => {
                let auth = get(&body, "auth").as_string();
                let channel_data = get(&body, "channel_data").as_string();
                if let Some(cd) = &channel_data {
                    if let Ok(parsed) = JSON::parse(cd) {
                        self.channels[i].me = id_of(get(&parsed, "user_id"));
                    }
                }
                let data = SubscribeData {
                    channel: name.to_owned(),
                    auth,
                    channel_data,
                    recover: None,
                };
                self.send_subscribe(sh, data);
            }
            Err(status) => {
                let e = auth_error(&status, "channel-authorization");
                self.emit(
                    Some(name),
                    "pusher:subscription_error",
                    e.clone(),
                    JsValue::UNDEFINED,
                );
                set(&e, "channel", &s(name));
                self.error("AuthError", e);
            }
        }
    }

    fn subscribe(&mut self, sh: &Rc<Shared>, name: &str) {
        if self.find(name).is_some() {
            return;
        }
        self.channels.push(Channel {
            name: name.to_owned(),
            kind: ChannelKind::of(name),
            subscribed: false,
            members: Vec::new(),
            me: None,
        });
        if self.state == State::Connected {
            self.join(sh, self.channels.len() - 1);
        }
    }

    fn do_signin(&mut self, sh: &Rc<Shared>) {
        let Some(socket_id) = self.socket_id.clone() else {
            return;
        };
        let body = concat(&[
            "socket_id=",
            &String::from(js_sys::encode_uri_component(&socket_id)),
        ]);
        let tag = self.request(socket_id, None);
        sh.host
            .post(&self.user_endpoint, &self.user_headers, &body, tag);
    }

    fn request(&mut self, socket_id: String, channel: Option<String>) -> u32 {
        self.next_tag = self.next_tag.wrapping_add(1);
        self.pending.push((self.next_tag, socket_id, channel));
        self.next_tag
    }

    /// An auth request finished: `value` is the endpoint's JSON answer, or its HTTP status.
    fn answer(&mut self, sh: &Rc<Shared>, tag: u32, value: JsValue) {
        let Some(pos) = self.pending.iter().position(|p| p.0 == tag) else {
            return;
        };
        let (_, socket_id, channel) = self.pending.swap_remove(pos);
        let res = if value.as_f64().is_some() {
            Err(value)
        } else {
            Ok(value)
        };
        match channel {
            Some(name) => self.authorized(sh, &name, &socket_id, res),
            None => self.signed_in(&socket_id, res),
        }
    }

    fn signed_in(&mut self, socket_id: &str, res: Result<JsValue, JsValue>) {
        if self.socket_id.as_deref() != Some(socket_id) {
            return;
        }
        match res {
            Ok(body) => {
                let auth = get(&body, "auth").as_string().unwrap_or_default();
                let user_data = get(&body, "user_data").as_string().unwrap_or_default();
                self.send(ev::SIGNIN, None, &SigninData { auth, user_data });
            }
            Err(status) => {
                let e = auth_error(&status, "user-authentication");
                self.error("AuthError", e);
            }
        }
    }
}

/// A user id as text (servers send strings; numbers are accepted).
fn id_of(v: JsValue) -> Option<String> {
    if v.is_undefined() || v.is_null() {
        None
    } else {
        Some(js_string(&v))
    }
}

/// `{ id, info }` of a presence member.
fn member(id: &str, info: &JsValue) -> JsValue {
    let m = Object::new();
    set(&m, "id", &s(id));
    set(&m, "info", info);
    m.into()
}

fn auth_error(status: &JsValue, what: &str) -> JsValue {
    let e = Object::new();
    set(&e, "type", &s("AuthError"));
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
    set(&e, "error", &s(&text));
    set(&e, "status", &status);
    e.into()
}

fn num(opts: &JsValue, key: &str, default: f64) -> f64 {
    get(opts, key).as_f64().unwrap_or(default)
}

fn text(opts: &JsValue, key: &str, default: &str) -> String {
    get(opts, key)
        .as_string()
        .unwrap_or_else(|| default.to_owned())
}

#[wasm_bindgen]
impl Client {
    /// `opts` (normalized by the JS wrapper): `url`, `tlsUrl` (the wss:// URL, used after a 4000
    /// close), `authEndpoint`, `authHeaders`, `userEndpoint`, `userHeaders`, and optional timings
    /// in ms: `activityTimeout`, `pongTimeout`, `connectTimeout`, `unavailableTimeout`,
    /// `reconnectBaseDelay`, `maxReconnectDelay`.
    #[wasm_bindgen(constructor)]
    pub fn new(opts: JsValue, host: Host) -> Client {
        let st = St {
            url: text(&opts, "url", ""),
            tls_url: text(&opts, "tlsUrl", ""),
            auth_endpoint: text(&opts, "authEndpoint", "/broadcasting/auth"),
            auth_headers: get(&opts, "authHeaders"),
            user_endpoint: text(&opts, "userEndpoint", "/broadcasting/user-auth"),
            user_headers: get(&opts, "userHeaders"),
            max_activity: num(&opts, "activityTimeout", 120_000.0),
            pong_ms: num(&opts, "pongTimeout", 10_000.0),
            handshake_ms: num(&opts, "connectTimeout", 10_000.0),
            unavailable_ms: num(&opts, "unavailableTimeout", 10_000.0),
            base_ms: num(&opts, "reconnectBaseDelay", 250.0),
            cap_ms: num(&opts, "maxReconnectDelay", 10_000.0),
            state: State::Initialized,
            want: false,
            ws: None,
            socket_id: None,
            activity_ms: 120_000.0,
            attempt: 0,
            down_since: 0.0,
            channels: Vec::new(),
            signin: false,
            timers: Default::default(),
            pending: Vec::new(),
            next_tag: 0,
            out: Vec::new(),
            frame: JsValue::UNDEFINED,
        };
        let sh = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let w = weak.clone();
            let on_message = Callback::new(move |e: JsValue| {
                let e: MessageEvent = e.unchecked_into();
                if let Some(text) = e.data().as_string() {
                    with(&w, |st, sh| st.on_message(sh, text));
                }
            });
            let w = weak.clone();
            let on_close = Callback::new(move |e: JsValue| {
                if get(&e, "type").as_string().as_deref() == Some("close") {
                    let e: CloseEvent = e.unchecked_into();
                    with(&w, |st, sh| st.on_close(sh, e.code(), e.reason()));
                }
            });
            let w = weak.clone();
            let on_timer = Callback::new(move |which: JsValue| {
                let which = match which.as_f64().unwrap_or(0.0) as u32 {
                    0 => Timer::Retry,
                    1 => Timer::Activity,
                    2 => Timer::Pong,
                    3 => Timer::Handshake,
                    _ => Timer::Unavailable,
                };
                with(&w, |st, sh| st.fire(sh, which));
            });
            Shared {
                st: RefCell::new(st),
                host,
                on_message,
                on_close,
                on_timer,
            }
        });
        // Browser network events: retry at once when the network comes back; check the socket
        // with a ping when it goes away. Absent outside browsers.
        let w = Rc::downgrade(&sh);
        let net = Callback::new(move |e: JsValue| {
            let online = get(&e, "type").as_string().as_deref() == Some("online");
            with(
                &w,
                |st, sh| if online { st.online(sh) } else { st.ping(sh) },
            );
        });
        for kind in ["online", "offline"] {
            let _ = add_global_listener(kind, &net);
        }
        net.forget();
        Client { sh }
    }

    /// Connects (again) unless already connecting or connected.
    pub fn connect(&self) {
        run(&self.sh, |st, sh| {
            st.want = true;
            if st.ws.is_none() && st.timers[Timer::Retry as usize].is_undefined() {
                st.attempt = 0;
                st.open(sh);
            }
        });
    }

    /// Closes the connection and stops reconnecting; channels are kept for the next `connect()`.
    pub fn disconnect(&self) {
        run(&self.sh, |st, _| {
            st.want = false;
            st.clear_all();
            if st.state != State::Initialized {
                st.set_state(State::Disconnected);
            }
        });
    }

    pub fn state(&self) -> String {
        self.sh.st.borrow().state.name().to_owned()
    }

    #[wasm_bindgen(js_name = socketId)]
    pub fn socket_id(&self) -> Option<String> {
        self.sh.st.borrow().socket_id.clone()
    }

    pub fn subscribe(&self, name: &str) {
        run(&self.sh, |st, sh| st.subscribe(sh, name));
    }

    pub fn unsubscribe(&self, name: &str) {
        run(&self.sh, |st, _| {
            if let Some(i) = st.find(name) {
                st.channels.remove(i);
                if st.state == State::Connected {
                    let data = UnsubscribeData {
                        channel: name.to_owned(),
                    };
                    st.send(ev::UNSUBSCRIBE, None, &data);
                }
            }
        });
    }

    /// Whether `name` is subscribed right now (the server confirmed it on the current socket).
    pub fn subscribed(&self, name: &str) -> bool {
        let st = self.sh.st.borrow();
        st.find(name).is_some_and(|i| st.channels[i].subscribed)
    }

    /// Sends a client event (`client-…`) on a subscribed private or presence channel.
    pub fn trigger(&self, channel: &str, event: &str, data: JsValue) -> bool {
        let st = self.sh.st.borrow();
        let ok = st.state == State::Connected
            && st.find(channel).is_some_and(|i| {
                let c = &st.channels[i];
                c.subscribed && c.kind.allows_client_events()
            });
        if ok {
            st.send(event, Some(channel), &data);
        }
        ok
    }

    /// Presence members `[{ id, info }]` of a subscribed presence channel.
    pub fn members(&self, channel: &str) -> JsValue {
        let st = self.sh.st.borrow();
        match st.find(channel) {
            Some(i) => st.member_list(i),
            None => js_sys::Array::new().into(),
        }
    }

    /// Delivers the outcome of a `Host::post` request (see there).
    pub fn answer(&self, tag: u32, value: JsValue) {
        run(&self.sh, |st, sh| st.answer(sh, tag, value));
    }

    /// Signs the user in (`pusher:signin`) now and after every reconnect.
    pub fn signin(&self) {
        run(&self.sh, |st, sh| {
            if !st.signin {
                st.signin = true;
                if st.state == State::Connected {
                    st.do_signin(sh);
                }
            }
        });
    }
}

impl St {
    fn online(&mut self, sh: &Rc<Shared>) {
        if self.want && self.ws.is_none() {
            self.attempt = 0;
            self.open(sh);
        }
    }
}
