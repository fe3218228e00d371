//! Chorus server: a real-time WebSocket server speaking the Pusher Channels protocol v7.
//!
//! The crate is layered; a module imports only from the layers below it:
//!
//! | layer | modules | holds |
//! |---|---|---|
//! | leaves | [`config`], [`error`], [`metrics`], [`memory`], [`rate`], [`addresses`], [`wire`] | settings, every error and its Pusher code / HTTP status, counters, resident memory, token buckets, client addresses and their limits, every frame's shape |
//! | node state | [`hub`], [`webhooks`] | connections' queues, channels and **the fan-out**, presence, history, signed-in users; webhook queues and their delivery tasks |
//! | apps | [`app`] | tenants and their node-local operations |
//! | cluster | [`cluster`] | the `Adapter` trait: one node, or several on Redis |
//! | shared state | [`state`] | what every task holds: config, apps, adapter |
//! | edges | [`ws`], [`http`], [`admin`] | the WebSocket session; the signed HTTP API and `/up`, `/ready`; the admin listener's `/metrics` (never each other) |
//! | top | [`server`], [`listener`], [`tls`] | router, graceful shutdown, reloads; the accept loop and its bounds on connections not yet upgraded; TLS and its certificate reloads |
//!
//! A published event travels: the HTTP API ([`http`]) or a client event ([`ws`]) → encoded once
//! ([`wire`]) → the cluster adapter ([`cluster`]) → [`app`]'s local delivery → the fan-out in
//! [`hub`] (its module documentation has the whole path) → each subscriber's socket.
//!
//! The public surface is what the `chorus` binary and the integration tests use.

mod addresses;
mod admin;
mod app;
mod cluster;
mod config;
mod error;
mod http;
mod hub;
mod listener;
mod memory;
mod metrics;
mod rate;
mod server;
mod state;
mod tls;
mod webhooks;
mod wire;
mod ws;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use config::{
    AdapterKind, AppConfig, Cli, Config, ConfigError, LogFormat, WebhookConfig, WebhookKind,
};
pub use server::{Server, StartError};
pub use tls::TlsError;
