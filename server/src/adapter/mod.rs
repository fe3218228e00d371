//! How subscriptions and broadcasts reach the cluster: the [`Adapter`] trait.
//!
//! [`local::LocalAdapter`] (the default) serves one node: everything is this node's state.
//! [`redis::RedisAdapter`] joins several nodes through Redis: broadcasts are published to the other
//! nodes, which deliver them through [`App::deliver_local`]; presence membership and channel counts
//! are kept per node in Redis and merged on reading.

pub mod local;
pub mod redis;

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::ChannelKind;
use futures_util::future::BoxFuture;

use crate::app::App;
use crate::channels::ChannelInfo;
use crate::outbound::ConnHandle;
use crate::presence::PresenceMember;

pub use local::LocalAdapter;

/// Why the adapter cannot answer for the cluster right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster state unavailable: {0}")]
pub struct AdapterError(pub String);

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

    /// Closes every connection signed in as `user_id`, on every node.
    fn terminate_user(&self, app: &Arc<App>, user_id: &str);

    /// Subscribes `conn` (already authorized) and sends it `subscription_succeeded`; on presence
    /// channels `member` is who joins, announced once per user cluster-wide.
    fn subscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<PresenceMember>,
    ) -> BoxFuture<'static, ()>;

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

    /// Leaves the cluster cleanly (graceful shutdown, after connections closed).
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

impl App {
    /// Delivers to this node's subscribers and counts it.
    pub fn deliver_local(&self, channel: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let n = self.channels.broadcast(channel, frame, except);
        self.metrics.delivered(n, frame.len());
        n
    }
}
