//! Per-channel routing: this node is subscribed in Redis to the pub/sub channel of every channel
//! it has a local subscriber on (its route, `keys::route`), and to nothing else but the bus
//! (`keys::bus`, for messages about users); so it receives only the events it delivers. On a
//! Redis Cluster routes are sharded channels (`SSUBSCRIBE`): each flows through its slot's shard.
//!
//! One task owns the subscription's sink and applies the changes in order: a channel's first
//! local subscriber waits for its `SUBSCRIBE` to be confirmed (one Redis round trip), so no event
//! published after its `subscription_succeeded` can be missed; the last one leaving
//! `UNSUBSCRIBE`s. Changes queued together go as one `SUBSCRIBE` and one `UNSUBSCRIBE`. After a
//! reconnection the task subscribes to everything wanted again.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::try_join_all;
use redis::aio::PubSubSink;
use redis::cluster_async::ClusterConnection;
use tokio::sync::{mpsc, oneshot, Notify};

use super::link::OP_TIMEOUT;

/// Route changes waiting for the task; beyond this, callers wait their turn.
const QUEUE: usize = 16_384;
/// Changes applied in one go.
const BATCH: usize = 512;

/// Where route subscriptions are made: the bus connection of a single Redis, or a Redis Cluster
/// connection (whose sharded subscriptions go to each route's shard, and are made again by the
/// client after a reconnection).
pub enum Sink {
    Plain(PubSubSink),
    Cluster(ClusterConnection),
}

impl Sink {
    async fn subscribe(&mut self, routes: &[String]) -> redis::RedisResult<()> {
        match self {
            Self::Plain(s) => s.subscribe(routes).await,
            // One SSUBSCRIBE per route: a command may only name channels of one slot.
            Self::Cluster(c) => try_join_all(routes.iter().map(|r| {
                let mut c = c.clone();
                async move { c.ssubscribe(r).await }
            }))
            .await
            .map(drop),
        }
    }

    async fn unsubscribe(&mut self, routes: &[String]) -> redis::RedisResult<()> {
        match self {
            Self::Plain(s) => s.unsubscribe(routes).await,
            Self::Cluster(c) => try_join_all(routes.iter().map(|r| {
                let mut c = c.clone();
                async move { c.sunsubscribe(r).await }
            }))
            .await
            .map(drop),
        }
    }
}

enum Change {
    /// One more local subscriber; `done` fires once Redis confirmed the subscription (at once
    /// when there was one, or while Redis is unreachable).
    Add(String, oneshot::Sender<()>),
    Remove(String),
    /// A new bus connection: subscribe to everything wanted on it.
    Connected(Sink),
    Disconnected,
}

/// The handle: cheap to clone.
#[derive(Clone)]
pub struct Routes {
    changes: mpsc::Sender<Change>,
    /// Notified when a change could not be applied: the bus loop then reconnects.
    broken: Arc<Notify>,
}

impl Routes {
    pub fn start() -> Self {
        let (changes, rx) = mpsc::channel(QUEUE);
        let broken = Arc::new(Notify::new());
        tokio::spawn(run(rx, Arc::clone(&broken)));
        Self { changes, broken }
    }

    /// Counts a local subscriber of `route`; resolves once this node receives its events.
    pub async fn add(&self, route: String) {
        let (done, wait) = oneshot::channel();
        if self.changes.send(Change::Add(route, done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// One local subscriber of `route` fewer.
    pub fn remove(&self, route: String) {
        let changes = self.changes.clone();
        // Never waits on the caller's path (an unsubscribe, a closing connection).
        if let Err(mpsc::error::TrySendError::Full(change)) =
            changes.try_send(Change::Remove(route))
        {
            tokio::spawn(async move {
                let _ = changes.send(change).await;
            });
        }
    }

    pub async fn connected(&self, sink: Sink) {
        let _ = self.changes.send(Change::Connected(sink)).await;
    }

    /// Resolves when the subscription must be made again on a new connection.
    pub async fn broken(&self) {
        self.broken.notified().await;
    }

    pub async fn disconnected(&self) {
        let _ = self.changes.send(Change::Disconnected).await;
    }
}

async fn run(mut rx: mpsc::Receiver<Change>, broken: Arc<Notify>) {
    // Local subscribers per route, as this node counts them.
    let mut wanted: HashMap<String, usize> = HashMap::new();
    let mut sink: Option<Sink> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        let mut done = Vec::new();
        for change in batch.drain(..) {
            match change {
                Change::Add(route, ack) => {
                    let n = wanted.entry(route.clone()).or_insert(0);
                    *n += 1;
                    if *n == 1 {
                        unsubscribe.retain(|r| *r != route);
                        subscribe.push(route);
                    }
                    done.push(ack);
                }
                Change::Remove(route) => {
                    if let Some(n) = wanted.get_mut(&route) {
                        *n -= 1;
                        if *n == 0 {
                            wanted.remove(&route);
                            subscribe.retain(|r| *r != route);
                            unsubscribe.push(route);
                        }
                    }
                }
                Change::Connected(new) => {
                    sink = Some(new);
                    unsubscribe.clear();
                    subscribe = wanted.keys().cloned().collect();
                }
                Change::Disconnected => sink = None,
            }
        }
        if let Some(s) = sink.as_mut() {
            // Bounded: a stalled connection must not hold every subscribe of this node. On a
            // failure the bus loop is told to reconnect; its `Connected` subscribes to everything
            // wanted again. Until then subscribes do not wait.
            let applied = tokio::time::timeout(OP_TIMEOUT, async {
                if !unsubscribe.is_empty() {
                    s.unsubscribe(&unsubscribe).await?;
                }
                if !subscribe.is_empty() {
                    s.subscribe(&subscribe).await?;
                }
                Ok::<(), redis::RedisError>(())
            })
            .await;
            if !matches!(applied, Ok(Ok(()))) {
                tracing::warn!("redis subscribe failed: reconnecting the subscription");
                sink = None;
                broken.notify_one();
            }
        }
        for ack in done {
            let _ = ack.send(());
        }
    }
}
