//! The ordered writer: every write this node makes to Redis without waiting for it (publishes,
//! subscription counts, the state rewrite) goes through one queue and one task, so Redis sees
//! them in the order they happened. Writes are sent as pipelines of up to [`BATCH`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::is_cache_channel;
use tokio::sync::{mpsc, oneshot};

use super::bus::{self, Body};
use super::keys;
use super::scripts::{Join, Orphan, PublishHistory, Scripts};
use crate::app::{App, Apps};
use crate::config::WebhookKind;
use crate::error::AdapterError;
use crate::hub::outbound::Cork;
use crate::webhooks::Event;
use crate::wire::{self, OpenFrame};

/// Queued writes (publishes, count updates) before new ones are dropped while Redis is slow or down.
const QUEUE: usize = 65_536;
/// Writes sent in one batch.
const BATCH: usize = 256;
/// A state rewrite that failed (Redis still away) is tried again after this long.
const RESYNC_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes that must reach Redis in order; none is awaited by the caller.
pub enum Op {
    /// A message on a pub/sub channel: a channel's route, or (`route` false) the bus.
    Publish {
        to: String,
        msg: String,
        route: bool,
    },
    /// An event on a channel with history: positioned and published by Redis.
    PublishHistory {
        app: Arc<App>,
        channel: String,
        frame: OpenFrame,
        except: Option<String>,
    },
    /// A cache channel's last event.
    Cache {
        app: String,
        channel: String,
        frame: Utf8Bytes,
    },
    /// This node's subscription count of a channel changed.
    SubscriptionDelta {
        app: Arc<App>,
        channel: String,
        delta: i64,
    },
    /// Announce a channel's cluster-wide subscription count (after the deltas before it).
    SubscriptionCount { app: Arc<App>, channel: String },
    /// Rewrite this node's state from local state (after Redis lost it).
    Resync,
    /// Fired once every write queued before it has been sent (or has failed).
    Ack(oneshot::Sender<()>),
}

/// The queue's sending side. The task ends once every `Writer` is dropped and the queue is empty.
#[derive(Clone)]
pub struct Writer {
    ops: mpsc::Sender<Op>,
    node: Arc<str>,
    prefix: Arc<str>,
    dropped_warned: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the task that sends what is queued.
    pub fn start(scripts: Arc<Scripts>, apps: Arc<Apps>) -> Self {
        let (ops, rx) = mpsc::channel(QUEUE);
        let writer = Self {
            ops,
            node: scripts.node().into(),
            prefix: scripts.prefix().into(),
            dropped_warned: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        tokio::spawn(write_loop(scripts, apps, writer.downgrade(), rx));
        writer
    }

    /// Writes waiting to be sent.
    pub fn queued(&self) -> usize {
        QUEUE - self.ops.capacity()
    }

    /// Writes dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a write; gives it back when the queue is full.
    pub fn enqueue(&self, op: Op) -> Result<(), Op> {
        self.ops.try_send(op).map_err(|e| {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.dropped_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "redis write queue full: dropping cross-node messages until it drains"
                );
            }
            e.into_inner()
        })
    }

    /// Delivers locally and publishes to the other nodes.
    pub fn broadcast(&self, app: &App, channel: &str, frame: &Utf8Bytes, except: Option<&str>) {
        app.deliver_local(channel, frame, except);
        let body = Body::Event {
            channel,
            except,
            frame,
        };
        let id = &app.config().id;
        let to = keys::route(&self.prefix, id, channel);
        let msg = bus::envelope(&self.node, id, body);
        let _ = self.enqueue(Op::Publish {
            to,
            msg,
            route: true,
        });
    }

    /// Keeps `frame` as the cluster's last event of `channel` if it is a cache channel.
    pub fn cache(&self, app: &App, channel: &str, frame: &Utf8Bytes) {
        if is_cache_channel(channel) {
            let _ = self.enqueue(Op::Cache {
                app: app.config().id.clone(),
                channel: channel.to_owned(),
                frame: frame.clone(),
            });
        }
    }

    /// Tells every node's watchers (this one's too, through the bus) that `user_id` came online
    /// or went offline.
    pub fn watch(&self, app: &App, user_id: &str, online: bool) {
        let body = Body::Watch { user_id, online };
        let msg = bus::envelope(&self.node, &app.config().id, body);
        let _ = self.enqueue(Op::Publish {
            to: keys::bus(&self.prefix),
            msg,
            route: false,
        });
    }

    /// Asks the other nodes to close `user_id`'s connections.
    pub fn terminate(&self, app: &App, user_id: &str) {
        let body = Body::Terminate { user_id };
        let msg = bus::envelope(&self.node, &app.config().id, body);
        let _ = self.enqueue(Op::Publish {
            to: keys::bus(&self.prefix),
            msg,
            route: false,
        });
    }

    fn downgrade(&self) -> WeakWriter {
        WeakWriter {
            ops: self.ops.downgrade(),
            node: Arc::clone(&self.node),
            prefix: Arc::clone(&self.prefix),
            dropped_warned: Arc::clone(&self.dropped_warned),
            dropped: Arc::clone(&self.dropped),
        }
    }
}

/// The task's own way back into its queue (for the rewrite's announcements), which does not keep
/// the queue open.
struct WeakWriter {
    ops: mpsc::WeakSender<Op>,
    node: Arc<str>,
    prefix: Arc<str>,
    dropped_warned: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl WeakWriter {
    fn upgrade(&self) -> Option<Writer> {
        Some(Writer {
            ops: self.ops.upgrade()?,
            node: Arc::clone(&self.node),
            prefix: Arc::clone(&self.prefix),
            dropped_warned: Arc::clone(&self.dropped_warned),
            dropped: Arc::clone(&self.dropped),
        })
    }
}

/// What a reply of the pipeline is about.
enum Reply {
    Delta(Arc<App>, String),
    Count(Arc<App>, String),
}

/// A history event of the batch being sent, delivered locally (without position) if Redis fails.
struct Fallback {
    app: Arc<App>,
    channel: String,
    frame: OpenFrame,
    except: Option<String>,
}

/// Sends queued writes in order, a batch at a time. A channel newly served by this node is
/// listed in its app's index before its count is written (so that reaping finds it), and
/// unlisted after its count here dropped to zero.
async fn write_loop(
    scripts: Arc<Scripts>,
    apps: Arc<Apps>,
    me: WeakWriter,
    mut rx: mpsc::Receiver<Op>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (mut listed, mut writes) = (scripts.batch(), scripts.batch());
        let mut resync = false;
        let mut fallback = Vec::new();
        let mut acks = Vec::new();
        // The writes that reply, in order: a delta's reply says what became occupied or vacated
        // (and this node's count), a count's is the count.
        let mut replies_to = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Publish { to, msg, route } => scripts.publish(&mut writes, &to, &msg, route),
                Op::SubscriptionDelta {
                    app,
                    channel,
                    delta,
                } => {
                    let id = &app.config().id;
                    if delta > 0 {
                        scripts.index(&mut listed, id, &channel, true);
                    }
                    scripts.subscription_delta(&mut writes, id, &channel, delta);
                    replies_to.push(Reply::Delta(app, channel));
                }
                Op::SubscriptionCount { app, channel } => {
                    let prefix = app.config().enable_subscription_count.then(|| {
                        bus::envelope_prefix(scripts.node(), &app.config().id, &channel, None, true)
                    });
                    scripts.subscription_count(
                        &mut writes,
                        &app.config().id,
                        &channel,
                        prefix.as_deref(),
                    );
                    replies_to.push(Reply::Count(app, channel));
                }
                Op::PublishHistory {
                    app,
                    channel,
                    frame,
                    except,
                } => {
                    let envelope_prefix = bus::envelope_prefix(
                        scripts.node(),
                        &app.config().id,
                        &channel,
                        except.as_deref(),
                        true,
                    );
                    let event = PublishHistory {
                        app: &app.config().id,
                        channel: &channel,
                        policy: &app.history.policy,
                        frame: &frame,
                        envelope_prefix: &envelope_prefix,
                        except: except.as_deref(),
                    };
                    scripts.publish_history(&mut writes, event);
                    fallback.push(Fallback {
                        app,
                        channel,
                        frame,
                        except,
                    });
                }
                Op::Cache {
                    app,
                    channel,
                    frame,
                } => scripts.cache(&mut writes, &app, &channel, &frame),
                Op::Resync => resync = true,
                Op::Ack(done) => acks.push(done),
            }
        }
        // A batch of only acks and resyncs sends nothing.
        let sent = if listed.is_empty() && writes.is_empty() {
            Some(Vec::new())
        } else {
            scripts.send(vec![listed, writes]).await
        };
        if let Some(replies) = sent {
            me.dropped_warned.store(false, Ordering::Relaxed);
            // This node's count of each channel after the batch: zero is unlisted.
            let mut counts: HashMap<(String, String), i64> = HashMap::new();
            for (to, reply) in replies_to.into_iter().zip(replies) {
                match to {
                    Reply::Delta(app, channel) => {
                        let (change, here) = Scripts::delta_reply(&reply);
                        let kind = match change {
                            1 => Some(WebhookKind::ChannelOccupied),
                            -1 => Some(WebhookKind::ChannelVacated),
                            _ => None,
                        };
                        if let Some(kind) = kind {
                            app.webhooks().emit(Event::Channel {
                                kind,
                                channel: &channel,
                            });
                        }
                        counts.insert((app.config().id.clone(), channel), here);
                    }
                    Reply::Count(app, channel) => {
                        let count = usize::try_from(reply_int(&reply)).unwrap_or(0);
                        app.subscription_count(&channel, count, false);
                    }
                }
            }
            let mut unlisted = scripts.batch();
            for ((app, channel), here) in counts {
                if here == 0 {
                    scripts.index(&mut unlisted, &app, &channel, false);
                }
            }
            if !unlisted.is_empty() {
                // Lost with Redis: a listed channel nobody serves is skipped by listing.
                let _ = scripts.send(vec![unlisted]).await;
            }
        } else {
            // Redis did not take them: local subscribers still get them live, unpositioned,
            // written by this task as a bus message's are (see `Cork`).
            let _cork = Cork::new();
            for f in fallback {
                f.app
                    .deliver_local(&f.channel, &f.frame.close(), f.except.as_deref());
            }
        }
        for done in acks.drain(..) {
            let _ = done.send(());
        }
        if resync {
            let Some(writer) = me.upgrade() else { continue };
            if let Err(e) = rewrite_state(&scripts, &apps, &writer).await {
                tracing::warn!(error = %e, "could not rewrite this node's redis state; will retry");
                tokio::spawn(async move {
                    tokio::time::sleep(RESYNC_RETRY).await;
                    let _ = writer.enqueue(Op::Resync);
                });
            }
        }
    }
}

fn reply_int(value: &redis::Value) -> i64 {
    redis::from_redis_value_ref::<i64>(value).unwrap_or(0)
}

/// Rewrites this node's state from local state (after clearing what Redis still had of it),
/// announcing the members Redis had lost (not those it still had: the cluster knows them).
async fn rewrite_state(
    scripts: &Scripts,
    apps: &Apps,
    writer: &Writer,
) -> Result<(), AdapterError> {
    // Listed first: state written by a node that is not on the list would never be reaped.
    if scripts.heartbeat().await? < 0 {
        return Err(AdapterError(
            "redis: this node is being reaped; rewriting after".into(),
        ));
    }
    let ids: Vec<String> = apps.iter().map(|a| a.config().id.clone()).collect();
    let known: HashSet<Orphan> = scripts
        .reap_node(scripts.node(), &ids)
        .await?
        .members
        .into_iter()
        .collect();
    for app in apps.iter() {
        let id = &app.config().id;
        for (channel, count) in app.channels.subscription_counts() {
            scripts
                .subscription_delta_now(id, &channel, count as i64)
                .await?;
        }
        for (user_id, count) in app.users.counts() {
            scripts.user_delta(id, &user_id, count as i64).await?;
        }
        for (channel, member, count) in app.channels.presence_snapshot() {
            let join = Join {
                app: id,
                channel: &channel,
                member: &member,
                set_count: Some(count),
            };
            let was_known = known.contains(&Orphan {
                app: id.clone(),
                channel: channel.to_string(),
                user_id: member.user_id.clone(),
            });
            if scripts.join(join).await?.is_new && !was_known {
                let frame =
                    wire::member_added(&channel, &member.user_id, member.user_info.as_deref());
                writer.broadcast(&app, &channel, &frame, None);
            }
        }
    }
    tracing::info!("redis state of this node rewritten");
    Ok(())
}
