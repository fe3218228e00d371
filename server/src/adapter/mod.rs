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

use chorus_protocol::frame::{RecoverFrom, Recovery, StreamPosition};
use serde_json::value::RawValue;

use crate::app::App;
use crate::channels::{Announce, ChannelInfo, Extras, Subscribed};
use crate::history::recovery_outcome;
use crate::outbound::ConnHandle;
use crate::presence::PresenceMember;
use crate::wire;

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

    /// Closes every connection signed in as `user_id`, on every node.
    fn terminate_user(&self, app: &Arc<App>, user_id: &str);

    /// Subscribes `conn` (already authorized) and sends it `subscription_succeeded`; on presence
    /// channels `member` is who joins, announced once per user cluster-wide. With `recover`, the
    /// events after that position are replayed right after `subscription_succeeded`.
    fn subscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<PresenceMember>,
        recover: Option<RecoverFrom>,
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

/// A server event to publish: `data` is a JSON string literal, written as is.
pub struct Publish<'a> {
    pub event: &'a str,
    pub data: &'a RawValue,
    /// The connection not to deliver to (Laravel's `toOthers()`).
    pub except: Option<&'a str>,
}

/// A page of a channel's history.
pub struct HistoryPage {
    /// The newest position; `None` when the channel keeps no history.
    pub position: Option<StreamPosition>,
    /// Encoded frames, oldest first.
    pub events: Vec<Utf8Bytes>,
}

impl HistoryPage {
    /// The page of a channel that keeps no history.
    pub fn none() -> Self {
        Self {
            position: None,
            events: Vec::new(),
        }
    }
}

impl App {
    /// Delivers to this node's subscribers and counts it.
    pub fn deliver_local(&self, channel: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let n = self.channels.broadcast(channel, frame, except);
        self.metrics.delivered(n, frame.len());
        n
    }

    /// Publishes on this node. With history, the event gets the next position and is kept and
    /// delivered under the stream's lock, so history order is delivery order.
    pub fn publish_local(&self, channel: &str, event: &Publish<'_>) -> usize {
        if !self.history.applies_to(channel) {
            let frame = wire::encode(event.event, Some(channel), event.data, None);
            return self.deliver_local(channel, &frame, event.except);
        }
        let stream = self.history.stream(channel);
        let mut stream = stream.lock();
        let frame = stream.append(&self.history.policy, event.except, |position| {
            wire::encode_full(
                event.event,
                Some(channel),
                event.data,
                None,
                Some(position),
                None,
            )
        });
        self.deliver_local(channel, &frame, event.except)
    }

    /// Subscribes on this node, answering a recovery request from this node's history: the
    /// missed events follow `subscription_succeeded` before any live one.
    pub fn subscribe_local(
        &self,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<&PresenceMember>,
        recover: Option<&RecoverFrom>,
    ) -> Subscribed {
        if !self.history.applies_to(channel) {
            let recovery = recover.map(|_| Recovery {
                recovered: false,
                replayed: 0,
                reason: Some("unavailable".into()),
            });
            let extras = Extras {
                position: None,
                recovery: recovery.as_ref(),
            };
            return self
                .channels
                .subscribe(channel, kind, conn, member, Announce::Local, extras);
        }
        let stream = self.history.stream(channel);
        let mut stream = stream.lock();
        let top = stream.top();
        let result = recover.map(|from| {
            stream.since(
                &self.history.policy,
                &from.position,
                from.socket_id.as_deref(),
            )
        });
        let recovery = result.as_ref().map(recovery_outcome);
        let extras = Extras {
            position: Some(&top),
            recovery: recovery.as_ref(),
        };
        let outcome = self
            .channels
            .subscribe(channel, kind, conn, member, Announce::Local, extras);
        if let (Subscribed::New { .. }, Some(Ok(missed))) = (outcome, &result) {
            for frame in missed {
                conn.send(frame);
            }
        }
        outcome
    }

    /// This node's history page of a channel.
    pub fn history_local(&self, channel: &str, limit: usize) -> HistoryPage {
        if !self.history.applies_to(channel) {
            return HistoryPage::none();
        }
        let stream = self.history.stream(channel);
        let mut stream = stream.lock();
        HistoryPage {
            position: Some(stream.top()),
            events: stream.recent(&self.history.policy, limit),
        }
    }
}
