//! `Client`, the class the npm wrapper drives: its constructor wires the socket, timer and network
//! callbacks to the engine; its methods enter the engine through `run`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent};

use crate::engine::{run, with, Engine, Shared, Timer};
use crate::js::{add_global_listener, get, Callback, Host};

/// The connection engine behind the `Chorus` class of the npm package.
#[wasm_bindgen]
pub struct Client {
    shared: Rc<Shared>,
}

#[wasm_bindgen]
impl Client {
    /// `opts` (normalized by the JS wrapper): `url`, `tlsUrl` (the wss:// URL, used after a 4000
    /// close), `authEndpoint`, `authHeaders`, `userEndpoint`, `userHeaders`, and optional timings
    /// in ms: `activityTimeout`, `pongTimeout`, `connectTimeout`, `unavailableTimeout`,
    /// `reconnectBaseDelay`, `maxReconnectDelay`.
    #[wasm_bindgen(constructor)]
    pub fn new(opts: JsValue, host: Host) -> Client {
        // The callbacks hold the engine weakly: dropping the `Client` frees it.
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let w = weak.clone();
            let on_message = Callback::new(move |e: JsValue| {
                let e: MessageEvent = e.unchecked_into();
                if let Some(text) = e.data().as_string() {
                    with(&w, |engine, shared| engine.on_message(shared, text));
                }
            });
            let w = weak.clone();
            let on_close = Callback::new(move |e: JsValue| {
                // Also the socket's `onerror`, which is followed by `close` anyway.
                if get(&e, "type").as_string().as_deref() == Some("close") {
                    let e: CloseEvent = e.unchecked_into();
                    with(&w, |engine, shared| {
                        engine.on_close(shared, e.code(), e.reason())
                    });
                }
            });
            let w = weak.clone();
            let on_timer = Callback::new(move |which: JsValue| {
                let which = Timer::of(which.as_f64().unwrap_or(0.0) as u32);
                with(&w, |engine, shared| engine.fire(shared, which));
            });
            Shared {
                engine: RefCell::new(Engine::new(&opts)),
                host,
                on_message,
                on_close,
                on_timer,
            }
        });
        // Browser network events: retry at once when the network comes back; check the socket
        // with a ping when it goes away. Absent outside browsers.
        let w = Rc::downgrade(&shared);
        let net = Callback::new(move |e: JsValue| {
            let online = get(&e, "type").as_string().as_deref() == Some("online");
            with(&w, |engine, shared| {
                if online {
                    engine.online(shared)
                } else {
                    engine.ping(shared)
                }
            });
        });
        for kind in ["online", "offline"] {
            let _ = add_global_listener(kind, &net);
        }
        net.forget();
        Client { shared }
    }

    /// Connects (again) unless already connecting or connected.
    pub fn connect(&self) {
        run(&self.shared, |engine, shared| engine.connect(shared));
    }

    /// Closes the connection and stops reconnecting; channels are kept for the next `connect()`.
    pub fn disconnect(&self) {
        run(&self.shared, |engine, _| engine.disconnect());
    }

    pub fn state(&self) -> String {
        self.shared.engine().state().to_owned()
    }

    #[wasm_bindgen(js_name = socketId)]
    pub fn socket_id(&self) -> Option<String> {
        self.shared.engine().socket_id()
    }

    pub fn subscribe(&self, name: &str) {
        run(&self.shared, |engine, shared| {
            engine.subscribe(shared, name)
        });
    }

    pub fn unsubscribe(&self, name: &str) {
        run(&self.shared, |engine, _| engine.unsubscribe(name));
    }

    /// Whether `name` is subscribed right now (the server confirmed it on the current socket).
    pub fn subscribed(&self, name: &str) -> bool {
        self.shared.engine().subscribed(name)
    }

    /// Sends a client event (`client-…`) on a subscribed private or presence channel.
    pub fn trigger(&self, channel: &str, event: &str, data: JsValue) -> bool {
        self.shared.engine().trigger(channel, event, &data)
    }

    /// Presence members `[{ id, info }]` of a subscribed presence channel.
    pub fn members(&self, channel: &str) -> JsValue {
        self.shared.engine().members(channel)
    }

    /// Delivers the outcome of a `Host::post` request (see there).
    pub fn answer(&self, tag: u32, value: JsValue) {
        run(&self.shared, |engine, shared| {
            engine.answer(shared, tag, value)
        });
    }

    /// Signs the user in (`pusher:signin`) now and after every reconnect.
    pub fn signin(&self) {
        run(&self.shared, |engine, shared| engine.signin(shared));
    }
}
