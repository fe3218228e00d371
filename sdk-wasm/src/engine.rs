//! The engine behind `Client`: it holds all the state, runs the connection state machine and the
//! timers, handles what the socket delivers, and queues the events for the JS side. Its channel
//! and auth half is in `engine/subscriptions.rs`; the pure parts it drives live in `backoff`,
//! `channels`, `auth` and `frames`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use chorus_protocol::channel::{ChannelKind, SERVER_TO_USER_PREFIX};
use chorus_protocol::events as ev;
use js_sys::{Object, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::WebSocket;

mod subscriptions;

use crate::auth::{Endpoint, Pending};
use crate::backoff::{self, Backoff, CloseAction};
use crate::channels::Channels;
use crate::frames::{self, ToJs};
use crate::js::{self, clear_timeout, concat, get, js_str, set_timeout, Callback, Host};

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

/// Timers the engine runs; at most one of each kind is pending.
#[derive(Clone, Copy)]
pub enum Timer {
    Retry,
    Activity,
    Pong,
    Handshake,
    Unavailable,
}

impl Timer {
    /// From the argument `setTimeout` passes back (`which as u32`).
    pub fn of(which: u32) -> Timer {
        match which {
            0 => Timer::Retry,
            1 => Timer::Activity,
            2 => Timer::Pong,
            3 => Timer::Handshake,
            _ => Timer::Unavailable,
        }
    }
}

/// One event for the JS side (`Host::emit`), queued while the engine is borrowed and delivered
/// after.
struct Emit {
    channel: Option<String>,
    event: String,
    data: JsValue,
    extra: JsValue,
    frame: JsValue,
}

/// All of the SDK's state; the pure parts (`Backoff`, `Channels`, `Pending`, `Endpoint`) are
/// plain types, the control is here and in `subscriptions`.
pub struct Engine {
    url: String,
    /// The wss:// URL (port `wssPort`): a 4000 close ("SSL only") switches to it.
    tls_url: String,
    channel_auth: Endpoint,
    user_auth: Endpoint,
    /// Milliseconds: client's upper bound for the activity timeout, pong timeout, handshake timeout,
    /// delay before reporting `unavailable`.
    max_activity: f64,
    pong_ms: f64,
    handshake_ms: f64,
    unavailable_ms: f64,

    state: State,
    /// The app wants a connection (false after `disconnect()` or a refusal).
    want: bool,
    ws: Option<WebSocket>,
    socket_id: Option<String>,
    activity_ms: f64,
    backoff: Backoff,
    channels: Channels,
    signin: bool,
    /// Handles of the pending timers (`undefined` when not pending), indexed by `Timer`.
    timers: [JsValue; 5],
    pending: Pending,
    out: Vec<Emit>,
    /// The frame being handled, passed along with the events it produces.
    frame: JsValue,
}

/// What the JS callbacks reach the engine through (they hold it weakly).
pub struct Shared {
    pub engine: RefCell<Engine>,
    pub host: Host,
    pub on_message: Callback,
    pub on_close: Callback,
    pub on_timer: Callback,
}

impl Shared {
    /// The engine, for reading. One shared copy of the borrow check (smaller wasm than one per
    /// exported getter).
    pub fn engine(&self) -> std::cell::Ref<'_, Engine> {
        self.engine.borrow()
    }
}

/// Runs `f` on the engine, then delivers the events it queued. Every entry point (exported method,
/// socket callback, timer, finished HTTP request) goes through here, so the engine is never
/// borrowed while app code runs, and app code may call back into it.
pub fn run(shared: &Rc<Shared>, f: impl FnOnce(&mut Engine, &Rc<Shared>)) {
    f(&mut shared.engine.borrow_mut(), shared);
    flush(shared);
}

// Not inlined into each `run`: one copy of the delivery loop keeps the wasm smaller.
#[inline(never)]
fn flush(shared: &Rc<Shared>) {
    loop {
        let next = {
            let out = &mut shared.engine.borrow_mut().out;
            (!out.is_empty()).then(|| out.remove(0))
        };
        match next {
            Some(e) => shared
                .host
                .emit(e.channel, &e.event, &e.data, &e.extra, &e.frame),
            None => break,
        }
    }
}

/// `run` from a JS callback, unless the `Client` is gone.
pub fn with(weak: &Weak<Shared>, f: impl FnOnce(&mut Engine, &Rc<Shared>)) {
    if let Some(shared) = weak.upgrade() {
        run(&shared, f);
    }
}

impl Engine {
    /// `opts`: see `Client::new`.
    pub fn new(opts: &JsValue) -> Engine {
        Engine {
            url: js::text(opts, "url", ""),
            tls_url: js::text(opts, "tlsUrl", ""),
            channel_auth: Endpoint {
                url: js::text(opts, "authEndpoint", "/broadcasting/auth"),
                headers: get(opts, "authHeaders"),
            },
            user_auth: Endpoint {
                url: js::text(opts, "userEndpoint", "/broadcasting/user-auth"),
                headers: get(opts, "userHeaders"),
            },
            max_activity: js::num(opts, "activityTimeout", 120_000.0),
            pong_ms: js::num(opts, "pongTimeout", 10_000.0),
            handshake_ms: js::num(opts, "connectTimeout", 10_000.0),
            unavailable_ms: js::num(opts, "unavailableTimeout", 10_000.0),
            backoff: Backoff::new(
                js::num(opts, "reconnectBaseDelay", 250.0),
                js::num(opts, "maxReconnectDelay", 10_000.0),
            ),
            state: State::Initialized,
            want: false,
            ws: None,
            socket_id: None,
            activity_ms: 120_000.0,
            channels: Channels::default(),
            signin: false,
            timers: Default::default(),
            pending: Pending::default(),
            out: Vec::new(),
            frame: JsValue::UNDEFINED,
        }
    }

    fn emit(&mut self, channel: Option<&str>, event: &str, data: JsValue, extra: JsValue) {
        self.out.push(Emit {
            channel: channel.map(str::to_owned),
            event: event.to_owned(),
            data,
            extra,
            frame: self.frame.clone(),
        });
    }

    fn error(&mut self, kind: &str, data: JsValue) {
        let e = frames::error(kind, &data);
        self.emit(None, "error", e, JsValue::UNDEFINED);
    }

    fn set_state(&mut self, next: State) {
        if self.state != next {
            let prev = self.state;
            self.state = next;
            self.emit(
                None,
                "state_change",
                js_str(prev.name()),
                js_str(next.name()),
            );
        }
    }

    fn timer(&mut self, shared: &Rc<Shared>, which: Timer, ms: f64) {
        self.clear(which);
        self.timers[which as usize] = set_timeout(&shared.on_timer, ms.max(0.0), which as u32);
    }

    fn clear(&mut self, which: Timer) {
        let t = &mut self.timers[which as usize];
        if !t.is_undefined() {
            clear_timeout(t);
            *t = JsValue::UNDEFINED;
        }
    }

    fn armed(&self, which: Timer) -> bool {
        !self.timers[which as usize].is_undefined()
    }

    /// Writes `{"event", "channel"?, "data"}` to the socket.
    fn send(&self, event: &str, channel: Option<&str>, data: &dyn ToJs) {
        if let Some(ws) = &self.ws {
            if let Ok(text) = JSON::stringify(&frames::frame(event, channel, data)) {
                let _ = ws.send_with_str(&String::from(text));
            }
        }
    }

    /// `Client::connect`: connects (again) unless already connecting or connected.
    pub fn connect(&mut self, shared: &Rc<Shared>) {
        self.want = true;
        if self.ws.is_none() && !self.armed(Timer::Retry) {
            self.backoff.reset();
            self.open(shared);
        }
    }

    /// `Client::disconnect`: closes the connection and stops reconnecting.
    pub fn disconnect(&mut self) {
        self.want = false;
        self.clear_all();
        if self.state != State::Initialized {
            self.set_state(State::Disconnected);
        }
    }

    /// The browser's `online` event: the network is back, retry at once.
    pub fn online(&mut self, shared: &Rc<Shared>) {
        if self.want && self.ws.is_none() {
            self.backoff.reset();
            self.open(shared);
        }
    }

    pub fn state(&self) -> &'static str {
        self.state.name()
    }

    pub fn socket_id(&self) -> Option<String> {
        self.socket_id.clone()
    }

    /// Opens a new socket (the state becomes `connecting`, or stays `unavailable`).
    fn open(&mut self, shared: &Rc<Shared>) {
        self.drop_socket();
        self.clear(Timer::Retry);
        if self.state != State::Unavailable {
            self.set_state(State::Connecting);
        }
        match WebSocket::new(&self.url) {
            Ok(ws) => {
                ws.set_onmessage(Some(shared.on_message.as_ref().unchecked_ref()));
                ws.set_onclose(Some(shared.on_close.as_ref().unchecked_ref()));
                // An `error` event is always followed by `close`; handling it keeps Node's `ws`
                // from throwing an unhandled 'error'.
                ws.set_onerror(Some(shared.on_close.as_ref().unchecked_ref()));
                self.ws = Some(ws);
                self.timer(shared, Timer::Handshake, self.handshake_ms);
                if !self.armed(Timer::Unavailable) {
                    self.timer(shared, Timer::Unavailable, self.unavailable_ms);
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
        self.channels.unsubscribed();
        self.clear(Timer::Activity);
        self.clear(Timer::Pong);
        self.clear(Timer::Handshake);
    }

    fn clear_all(&mut self) {
        self.drop_socket();
        self.clear(Timer::Retry);
        self.clear(Timer::Unavailable);
    }

    /// Schedules the next attempt (see `Backoff::next_delay`), unless the app stopped wanting one.
    fn retry(&mut self, shared: &Rc<Shared>, floor: f64, at_once: bool) {
        if !self.want {
            return;
        }
        let delay =
            self.backoff
                .next_delay(js_sys::Date::now(), floor, at_once, js_sys::Math::random);
        if self.state != State::Unavailable {
            self.set_state(State::Connecting);
        }
        self.emit(
            None,
            "connecting_in",
            JsValue::from_f64(delay),
            JsValue::UNDEFINED,
        );
        self.timer(shared, Timer::Retry, delay);
        if !self.armed(Timer::Unavailable) {
            self.timer(shared, Timer::Unavailable, self.unavailable_ms);
        }
    }

    /// A timer went off.
    pub fn fire(&mut self, shared: &Rc<Shared>, which: Timer) {
        self.timers[which as usize] = JsValue::UNDEFINED;
        match which {
            Timer::Retry => self.open(shared),
            Timer::Activity => {
                // Idle for activity_timeout: ask the server whether it is still there.
                self.ping(shared);
            }
            Timer::Pong | Timer::Handshake => {
                // The server did not answer (frozen or unreachable): drop the socket, try again.
                self.drop_socket();
                self.retry(shared, 0.0, matches!(which, Timer::Pong));
            }
            Timer::Unavailable => {
                if self.want && self.state != State::Connected {
                    self.set_state(State::Unavailable);
                }
            }
        }
    }

    /// Checks the connection (activity timeout, the browser's `offline` event).
    pub fn ping(&mut self, shared: &Rc<Shared>) {
        if self.state == State::Connected && !self.armed(Timer::Pong) {
            self.send(ev::PING, None, &JsValue::from(Object::new()));
            self.timer(shared, Timer::Pong, self.pong_ms);
        }
    }

    pub fn on_close(&mut self, shared: &Rc<Shared>, code: u16, reason: String) {
        self.ws = None;
        self.drop_socket();
        if !self.want {
            return;
        }
        if backoff::reports_error(code) {
            self.error("PusherError", frames::close_error(code, &reason));
        }
        match CloseAction::of(code, self.url == self.tls_url) {
            CloseAction::UseTls => {
                self.url = self.tls_url.clone();
                self.backoff.reset();
                self.retry(shared, 0.0, true);
            }
            CloseAction::Stop => {
                self.want = false;
                self.clear_all();
                self.set_state(State::Failed);
            }
            CloseAction::Retry { floor, at_once } => self.retry(shared, floor, at_once),
        }
    }

    pub fn on_message(&mut self, shared: &Rc<Shared>, text: String) {
        let Ok(raw) = JSON::parse(&text) else { return };
        let Some(frame) = frames::read_frame(&raw) else {
            return;
        };
        // Any frame proves the server is alive: restart the idle timer.
        if self.state == State::Connected {
            self.timer(shared, Timer::Activity, self.activity_ms);
        }
        let data = frames::decode(frame.data.unwrap_or(JsValue::UNDEFINED));
        match (frame.channel, frame.event.as_str()) {
            (None, ev::CONNECTION_ESTABLISHED) => self.established(shared, data),
            (_, ev::PING) => self.send(ev::PONG, None, &JsValue::from(Object::new())),
            (_, ev::PONG) => self.clear(Timer::Pong),
            (None, ev::ERROR) => self.error("PusherError", data),
            (None, ev::SIGNIN_SUCCESS) => {
                let user = frames::decode(get(&data, "user_data"));
                if let Some(id) = get(&user, "id").as_string() {
                    let name = concat(&[SERVER_TO_USER_PREFIX, &id]);
                    match self.channels.find(&name) {
                        // Signed in again after a reconnect: subscribe again now.
                        Some(i) => self.join(shared, i),
                        None => self.subscribe(shared, &name),
                    }
                }
                self.emit(None, "signin_success", user, JsValue::UNDEFINED);
            }
            // `{ events: [{ name: "online" | "offline", user_ids }] }` for `chorus.user.watchlist`.
            (None, ev::WATCHLIST_EVENTS) => self.emit(None, "watchlist", data, JsValue::UNDEFINED),
            (Some(channel), event) => {
                self.frame = raw;
                self.channel_event(&channel, event, data, frame.user_id);
                self.frame = JsValue::UNDEFINED;
            }
            _ => {}
        }
    }

    fn established(&mut self, shared: &Rc<Shared>, data: JsValue) {
        let Some(info) = frames::established(&data) else {
            return;
        };
        self.clear(Timer::Handshake);
        self.clear(Timer::Unavailable);
        self.backoff.reset();
        self.activity_ms = (info.activity_timeout as f64 * 1000.0).min(self.max_activity);
        let id = js_str(&info.socket_id);
        self.socket_id = Some(info.socket_id);
        // The socket id first, so that it is known to the app's `connected` listeners.
        self.emit(None, "connected", id, JsValue::UNDEFINED);
        self.set_state(State::Connected);
        self.timer(shared, Timer::Activity, self.activity_ms);
        for i in 0..self.channels.len() {
            // The user's own channel waits for `pusher:signin_success`.
            if self.channels.at(i).kind != ChannelKind::ServerToUser {
                self.join(shared, i);
            }
        }
        if self.signin {
            self.do_signin(shared);
        }
    }
}
