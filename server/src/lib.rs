//! Chorus server: a real-time WebSocket server speaking the Pusher Channels protocol v7.
//!
//! Module map (one concern each):
//! - [`config`]: flags, environment, TOML; every setting with its default.
//! - [`server`]: listener, router, graceful shutdown.
//! - [`connection`]: one WebSocket: admission, read loop, heartbeat, protocol events, writer task.
//! - [`outbound`]: the bounded per-connection queue and the handle used to reach a connection.
//! - [`channels`]: channel registry and **the fan-out path** ([`channels::Channels::broadcast`]).
//! - [`presence`]: presence membership (per user, not per connection).
//! - [`history`]: recent events per channel with positions, for recovery after a reconnect.
//! - [`adapter`]: how subscriptions and broadcasts reach the cluster: one node ([`adapter::local`])
//!   or several sharing Redis ([`adapter::redis`]).
//! - [`http_api`]: the signed Pusher HTTP API.
//! - [`app`]: apps (tenants), their connection quotas and signed-in users.
//! - [`wire`]: encoding server frames once into shared bytes.
//! - [`error`]: every error, mapped to Pusher codes and HTTP statuses in one place.
//! - [`metrics`]: Prometheus counters.
//! - [`state`]: the shared state handed to every task.
//!
//! A published event travels: HTTP API ([`http_api`]) or client event ([`connection`]) → encoded
//! once ([`wire`]) → [`adapter::Adapter::broadcast`] → [`channels::Channels::broadcast`] → each
//! subscriber's bounded queue ([`outbound`]) → that connection's writer task.

pub mod adapter;
pub mod app;
pub mod channels;
pub mod config;
pub mod connection;
pub mod error;
pub mod history;
pub mod http_api;
pub mod metrics;
pub mod outbound;
pub mod presence;
pub mod server;
pub mod state;
pub mod wire;

pub use config::{AppConfig, Config};
pub use server::Server;
