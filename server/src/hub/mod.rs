//! This node's realtime state: the connections it serves and what they are subscribed to. It
//! knows nothing of Redis, HTTP or the socket loop; the layers above call into it.
//!
//! **The fan-out path**, the one place a published event reaches subscribers:
//! 1. the event is encoded once ([`crate::wire`]) by whoever publishes it (the HTTP API, a
//!    client event, a Redis bus message), inside a [`outbound::Cork`];
//! 2. [`channels::Channels::broadcast`] takes the channel's read lock and pushes the same bytes
//!    to every local subscriber (but the excluded one), through its [`gate`] if a cluster
//!    subscription is still pending;
//! 3. [`outbound::ConnHandle::send`] appends them to that connection's bounded queue (full: the
//!    connection is a slow consumer, closed with 4100);
//! 4. when the cork drops, the publishing thread writes each marked connection's queue into its
//!    socket; what a full socket cannot take is left to the connection's writer task.
//!
//! On channels with history, [`history`] gives the event its position before step 2, under the
//! channel's stream lock (see `App::publish` in [`crate::app`]).
//!
//! - [`outbound`]: the per-connection queue and the handle that reaches a connection.
//! - [`channels`]: the channel registry and the fan-out.
//! - [`gate`]: the filter in front of a subscription a cluster adapter completes.
//! - [`presence`]: presence members (users, not connections).
//! - [`history`]: recent events per channel with positions, for recovery.
//! - [`users`]: signed-in connections per user id.
//! - [`cache`]: cache channels' last event.
//! - [`counts`]: subscription counts waiting to be announced.
//! - [`tap`]: copies of delivered events for the dashboard's console (free while unwatched).

pub mod cache;
pub mod channels;
pub mod counts;
pub mod gate;
pub mod history;
pub mod outbound;
pub mod presence;
pub mod tap;
pub mod users;
