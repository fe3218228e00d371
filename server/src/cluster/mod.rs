//! How subscriptions and broadcasts reach the cluster: the [`Adapter`] trait and its two
//! implementations.
//!
//! - [`local::LocalAdapter`] (the default) serves one node: this node's state is the whole truth,
//!   so every operation is the app's own (`App::*_local` in [`crate::app`]).
//! - [`redis::RedisAdapter`] joins several nodes through Redis: broadcasts are published to the
//!   other nodes, which deliver them through `App::deliver_local`; presence membership and
//!   channel counts are kept per node in Redis and merged on reading.
//!
//! Adapters never touch a socket: they reach connections only through the hub.

mod adapter;
pub mod local;
pub mod redis;

pub use adapter::{Adapter, Health};
