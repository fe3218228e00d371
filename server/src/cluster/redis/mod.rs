//! The cluster adapter: several nodes share one Redis and behave as one server.
//!
//! - **Broadcasts** are delivered locally at once and published, in order, by one writer task per
//!   node, on the channel's own pub/sub channel `{prefix}:c:{app}:{channel}` (its *route*). A node
//!   is subscribed to the route of every channel it has a local subscriber on and to no other
//!   (`routes`), so it receives only what it delivers; a channel's first local subscriber waits
//!   for that `SUBSCRIBE` (one round trip). Messages about users (terminations, watchlists) go on
//!   `{prefix}:bus`, which every node listens to.
//! - **State** (subscription counts, presence members) is written per node, under
//!   `{prefix}:n:{node}:…`, and merged over the nodes that are alive when read. Nodes heartbeat
//!   into the sorted set `{prefix}:nodes`; a node silent for `node_timeout` is reaped by whichever
//!   node sees it first (the `ZREM` decides), which sends `member_removed` for the members that
//!   were only there. So a node killed with `kill -9` leaves no ghost.
//! - **Presence** joins and leaves run as Lua scripts, so "first connection of this user in the
//!   cluster" and "last one gone" are decided atomically.
//! - **History** lives in Redis streams `{prefix}:h:{app}:{channel}:…`: a history event is
//!   positioned, kept and published by one script, so delivery order is offset order.
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
//! - `routes`: which channels' pub/sub this node is subscribed to;
//! - `writer`: the ordered queue of writes and the task that sends it;
//! - `membership`: the bus subscription, heartbeat and reaping;
//! - `health`: whether the link to Redis works;
//! - `link`: where Redis is (a URL, or the primary the Sentinels name, followed across failovers).

mod adapter;
mod bus;
mod health;
mod link;
mod membership;
mod routes;
mod scripts;
mod writer;

pub use adapter::{RedisAdapter, RedisSettings};
pub use link::RedisSetupError;
