//! The cluster adapter: several nodes share one Redis and behave as one server.
//!
//! - **Keys** (`keys`) are hash-tagged: a channel's keys, its route and its scripts are in the
//!   channel's slot, an app's users and channel index in the app's, so every script touches one
//!   slot and the same code runs on one Redis, behind Sentinels, or on a Redis Cluster.
//! - **Broadcasts** are delivered locally at once and published, in order, by one writer task per
//!   node, on the channel's own pub/sub channel (its *route*; sharded pub/sub on a Redis
//!   Cluster). A node is subscribed to the route of every channel it has a local subscriber on
//!   and to no other (`routes`), so it receives only what it delivers; a channel's first local
//!   subscriber waits for that subscription (one round trip). Messages about users
//!   (terminations, watchlists) go on the bus, which every node listens to.
//! - **State** (subscription counts, presence members, signed-in users) is kept per node inside
//!   each channel's (or app's) keys and merged when read; the app lists the channels each node
//!   serves, for channel listing and for reaping. Nodes heartbeat into a sorted set; a node
//!   silent for `node_timeout` is moved to the dead set by whichever node sees it first (the
//!   `ZREM` decides), and a claimed reaper removes its state channel by channel, sending
//!   `member_removed` for the members that were only there. So a node killed with `kill -9`
//!   leaves no ghost.
//! - **Presence** joins and leaves run as Lua scripts in the channel's slot, so "first connection
//!   of this user in the cluster" and "last one gone" are decided atomically.
//! - **History** lives in Redis streams in the channel's slot: a history event is positioned,
//!   kept and published by one script, so delivery order is offset order.
//! - **Sentinel**: the node asks the Sentinels for the primary twice a second; after a failover
//!   it swaps its command connection, resubscribes to the bus on the new primary and, finding its
//!   state missing there or not, goes on (a heartbeat that finds it gone rewrites it).
//! - **Redis Cluster**: the client follows the cluster's slot map and failovers by itself; a
//!   lost shard connection may have been a shard that restarted empty, so the node rewrites its
//!   state once the client has reconnected.
//! - **Redis down**: local subscribers keep being served, publishes are dropped (logged), presence
//!   falls back to this node's view, `/up` says `degraded`. On reconnection the node rewrites its
//!   own state (Redis may have lost it) and cross-node delivery resumes.
//!
//! Keys hold only app ids and channel names, which cannot contain `:` or newlines (checked).
//!
//! The folder, by reason to change:
//! - `adapter`: [`RedisAdapter`], the [`crate::cluster::Adapter`] built from the parts below;
//! - `keys`: every name in Redis and its hash tag;
//! - `scripts` (and `lua/`): every Redis call, typed; the scripts' arguments and replies;
//! - `bus`: the messages nodes send each other and their delivery here;
//! - `routes`: which channels' pub/sub this node is subscribed to;
//! - `writer`: the ordered queue of writes and the task that sends it;
//! - `membership`: the bus subscription, heartbeat and reaping;
//! - `health`: whether the link to Redis works;
//! - `link`: where Redis is (a URL, the primary the Sentinels name, followed across failovers, or
//!   a Redis Cluster).

mod adapter;
mod bus;
mod health;
mod keys;
mod link;
mod membership;
mod routes;
mod scripts;
mod writer;

pub use adapter::{RedisAdapter, RedisSettings};
pub use link::RedisSetupError;
