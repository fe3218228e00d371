//! Chorus browser SDK: a Pusher Channels protocol v7 client compiled to WebAssembly.
//!
//! This crate is the engine of the npm package in `npm/`: it owns the WebSocket, the connection state
//! machine (reconnect with exponential backoff and full jitter, close-code ranges, heartbeat, the
//! browser's `online`/`offline` events), channel subscriptions (authorizing private and presence
//! channels against the app's auth endpoint, resubscribing after every reconnect), presence members,
//! client events (whisper) and user sign-in. The typed JS wrapper (`npm/src/index.js`) keeps the
//! app's listeners and Echo-style naming; every event this engine produces reaches it through one
//! callback, `host.emit(channel, event, data, extra, frame)`. Chorus's history extension (a
//! `position` on events, `recovery` on `subscription_succeeded`) is kept by the wrapper, which sees
//! the whole `frame`; when subscribing, the engine asks it (`host.position(channel)`) for the
//! position to `recover` from: a resubscription after a reconnect has one, a new channel none.
//!
//! Modules, each using only those after it: `client` (the exported class) -> `engine` (all the
//! state and all the control: socket, timers, the JS host; `engine/subscriptions.rs` holds its
//! channel and auth half) -> `channels`, `auth`, `backoff`, `frames` (data and policy: they
//! return values and never call the engine) -> `js` (imports and object helpers). The pure parts
//! (backoff and close codes, channel and member bookkeeping, pending auth requests) call no JS,
//! so `cargo test -p chorus-sdk` runs their tests natively.
//!
//! Size matters (the whole download must stay within pusher-js + laravel-echo, 20,956 B gzip; the
//! tests measure both): JSON is parsed and written by the browser (`JSON.parse`/`JSON.stringify`),
//! there is no `format!`, and serde stays out of the wasm (the protocol crate's wire types are
//! written as browser objects, see `frames::ToJs`).

#[cfg(target_arch = "wasm32")]
mod alloc;
mod auth;
mod backoff;
mod channels;
mod client;
mod engine;
mod frames;
mod js;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: alloc::Allocator = alloc::Allocator::new();

pub use client::Client;
pub use js::Host;
