//! The [`Adapter`] trait: how subscriptions, publishes and queries reach the whole cluster.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::ChannelKind;
use futures_util::future::BoxFuture;

use crate::app::{App, HistoryPage, Publish};
use crate::error::{AdapterError, SubscriptionError};
use crate::hub::channels::ChannelInfo;
use crate::hub::history::Recover;
use crate::hub::outbound::ConnHandle;
use crate::hub::presence::PresenceMember;

/// Whether the adapter reaches the rest of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Serving local subscribers only; the reason is shown at `/up`.
    Degraded(String),
}

pub trait Adapter: Send + Sync + 'static {
    /// Delivers an encoded event on `channel` to every subscriber in the cluster but `except`.
    /// Never waits: local delivery happens now, remote delivery is queued in order.
    fn broadcast(&self, app: &Arc<App>, channel: &str, frame: &Utf8Bytes, except: Option<&str>);

    /// Publishes a server event (HTTP API) on `channel`: encoded once, with its history position
    /// where the channel keeps history, and delivered like [`Adapter::broadcast`].
    /// The returned future resolves once the cluster has the event (so that a caller publishing
    /// next through another node cannot overtake it); the event is queued before it returns.
    fn publish(&self, app: &Arc<App>, channel: &str, event: &Publish<'_>)
        -> BoxFuture<'static, ()>;

    /// The channel's recent history, oldest first.
    fn history(
        &self,
        app: &Arc<App>,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'static, Result<HistoryPage, AdapterError>>;

    /// `conn` signed in as `user_id`, watching `watchlist`: it is sent the watched ids online
    /// anywhere in the cluster, and the user's first connection in the cluster is announced
    /// `online` to its watchers on every node.
    fn signin(
        &self,
        app: &Arc<App>,
        user_id: &str,
        conn: &ConnHandle,
        watchlist: &[String],
    ) -> BoxFuture<'static, ()>;

    /// `conn`, signed in as `user_id`, is gone: the user's last connection in the cluster is
    /// announced `offline`.
    fn signout(
        &self,
        app: &Arc<App>,
        user_id: &str,
        conn: &ConnHandle,
        watchlist: &[String],
    ) -> BoxFuture<'static, ()>;

    /// Closes every connection signed in as `user_id`, on every node.
    fn terminate_user(&self, app: &Arc<App>, user_id: &str);

    /// Subscribes `conn` (already authorized) and sends it `subscription_succeeded`; on presence
    /// channels `member` is who joins, announced once per user cluster-wide. With `recover`, the
    /// events after that position are replayed right after `subscription_succeeded`. A presence
    /// channel at `max_presence_members` refuses a new user (nothing is sent or kept).
    fn subscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<PresenceMember>,
        recover: Option<Recover>,
    ) -> BoxFuture<'static, Result<(), SubscriptionError>>;

    /// Unsubscribes `socket_id`; a presence user's last connection in the cluster leaving is announced.
    fn unsubscribe(&self, app: &Arc<App>, channel: &str, socket_id: &str)
        -> BoxFuture<'static, ()>;

    /// Cluster-wide counts of one channel.
    fn channel_info(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<ChannelInfo, AdapterError>>;

    /// Cluster-wide occupied channels starting with `prefix`.
    fn channels(
        &self,
        app: &Arc<App>,
        prefix: &str,
    ) -> BoxFuture<'static, Result<Vec<(String, ChannelInfo)>, AdapterError>>;

    /// Cluster-wide members of a presence channel.
    fn user_ids(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<Vec<String>, AdapterError>>;

    fn health(&self) -> Health {
        Health::Ok
    }

    /// This node's place in a cluster, for `/metrics` (`None`: a single node).
    fn node(&self) -> Option<NodeStats> {
        None
    }
}

/// A cluster node's identity and its queue of writes to the others.
pub struct NodeStats {
    pub id: String,
    /// Writes (publishes, count updates) queued for Redis.
    pub write_queue: usize,
    /// Writes dropped because that queue was full.
    pub writes_dropped: u64,
    /// The last heartbeat's round trip to Redis.
    pub round_trip: std::time::Duration,
    /// The nodes alive at the last heartbeat (this one included), sorted.
    pub nodes: Vec<String>,
    /// Pub/sub messages received from Redis.
    pub messages_received: u64,
}
