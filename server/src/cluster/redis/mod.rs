//! The cluster adapter: several nodes share one Redis and behave as one server.
//!
//! - **Broadcasts** are delivered locally at once and published on the pub/sub channel
//!   `{prefix}:bus`, in order, by one writer task per node; every other node delivers them to its
//!   own subscribers. Terminations travel the same way.
//! - **State** (subscription counts, presence members) is written per node, under
//!   `{prefix}:n:{node}:…`, and merged over the nodes that are alive when read. Nodes heartbeat
//!   into the sorted set `{prefix}:nodes`; a node silent for `node_timeout` is reaped by whichever
//!   node sees it first (the `ZREM` decides), which sends `member_removed` for the members that
//!   were only there. So a node killed with `kill -9` leaves no ghost.
//! - **Presence** joins and leaves run as Lua scripts, so "first connection of this user in the
//!   cluster" and "last one gone" are decided atomically.
//! - **History** lives in Redis streams `{prefix}:h:{app}:{channel}:…`: a history event is
//!   positioned, kept and published by one script, so bus order is offset order.
//! - **Sentinel**: the node asks the Sentinels for the primary twice a second; after a failover
//!   it swaps its command connection, resubscribes to the bus on the new primary and, finding its
//!   state missing there or not, goes on (a heartbeat that finds it gone rewrites it).
//! - **Redis down**: local subscribers keep being served, publishes are dropped (logged), presence
//!   falls back to this node's view, `/up` says `degraded`. On reconnection the node rewrites its
//!   own state (Redis may have lost it) and cross-node delivery resumes.
//!
//! Keys hold only app ids and channel names, which cannot contain `:` or newlines (checked).
//!
//! The folder, by reason to change:
//! - `adapter`: [`RedisAdapter`], the [`crate::cluster::Adapter`] built from the parts below;
//! - `scripts` (and `lua/`): every Redis call, typed; the scripts' arguments and replies;
//! - `bus`: the messages nodes send each other and their delivery here;
//! - `writer`: the ordered queue of writes and the task that sends it;
//! - `membership`: the bus subscription, heartbeat and reaping;
//! - `health`: whether the link to Redis works;
//! - `link`: where Redis is (a URL, or the primary the Sentinels name, followed across failovers).

mod adapter;
mod bus;
mod health;
mod link;
mod membership;
mod scripts;
mod writer;

pub use adapter::{RedisAdapter, RedisSettings};
pub use link::RedisSetupError;
