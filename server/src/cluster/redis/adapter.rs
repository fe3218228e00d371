//! [`RedisAdapter`]: the [`Adapter`] of a node in a cluster, built from the folder's parts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::{is_cache_channel, ChannelKind};
use futures_util::future::BoxFuture;
use tokio::sync::{oneshot, watch};

use super::health::LinkHealth;
use super::link::{self, Link, RedisSetupError, OP_TIMEOUT};
use super::membership;
use super::routes::Routes;
use super::scripts::{Join, ReadHistory, Scripts};
use super::writer::{Op, Writer};
use crate::app::{App, Apps, HistoryPage, Publish};
use crate::cluster::adapter::{Adapter, Health, NodeStats};
use crate::config::WebhookKind;
use crate::error::{AdapterError, SubscriptionError};
use crate::hub::channels::{Announce, ChannelInfo, Left, Subscribed, SucceededExtras};
use crate::hub::counts::COALESCE;
use crate::hub::history::{recovery_outcome, recovery_unavailable, Recover};
use crate::hub::outbound::ConnHandle;
use crate::hub::presence::PresenceMember;
use crate::hub::users::Users;
use crate::webhooks::Event;
use crate::wire::{self, OpenFrame};

/// Settings of the Redis adapter.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Sentinels to ask for the primary of `sentinel_master` (empty: `url` is the server).
    pub sentinels: Vec<String>,
    pub sentinel_master: String,
    /// Nodes of a Redis Cluster to start from (empty: `url` or the Sentinels).
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key and of the pub/sub channel, so several deployments can share a Redis.
    pub prefix: String,
    /// A node that has not heartbeated for this long is dead; its members are removed.
    pub node_timeout: Duration,
}

/// The Redis cluster adapter. See the folder's documentation.
pub struct RedisAdapter {
    inner: Arc<Inner>,
}

struct Inner {
    scripts: Arc<Scripts>,
    writer: Writer,
    routes: Routes,
    /// Dropped with the adapter: the membership loops see it close and end.
    _stop: watch::Sender<()>,
}

impl RedisAdapter {
    /// Starts the adapter's background tasks. Redis need not be up yet: the node serves local
    /// subscribers (degraded) until it is.
    pub fn start(settings: RedisSettings, apps: Arc<Apps>) -> Result<Self, RedisSetupError> {
        let link = Arc::new(Link::new(
            &settings.url,
            &settings.sentinels,
            &settings.sentinel_master,
            &settings.cluster_nodes,
        )?);
        let commands = link.commands()?;
        let node = format!("{:016x}", rand::random::<u64>());
        tracing::info!(node = %node, redis = %link.describe(), prefix = %settings.prefix, "redis adapter starting");
        let health = Arc::new(LinkHealth::new());
        let scripts = Arc::new(Scripts::new(
            Arc::clone(&commands),
            settings.prefix,
            settings.node_timeout,
            node,
            link.is_cluster(),
            Arc::clone(&health),
        ));
        let writer = Writer::start(Arc::clone(&scripts), Arc::clone(&apps));
        let routes = Routes::start();
        let (stop, stopped) = watch::channel(());
        let (moved, primary) = watch::channel(0);
        tokio::spawn(link::follow_primary(
            Arc::clone(&link),
            commands,
            health,
            moved,
            stopped.clone(),
        ));
        tokio::spawn(membership::subscribe_loop(
            link,
            primary,
            routes.clone(),
            Arc::clone(&scripts),
            Arc::clone(&apps),
            writer.clone(),
            stopped.clone(),
        ));
        tokio::spawn(membership::heartbeat_loop(
            Arc::clone(&scripts),
            apps,
            writer.clone(),
            settings.node_timeout,
            stopped,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                scripts,
                writer,
                routes,
                _stop: stop,
            }),
        })
    }
}

impl Inner {
    /// Publishes a server event; on channels with history Redis positions it. The receiver fires
    /// once Redis has it, so that an HTTP API caller that goes on to publish through another node
    /// cannot overtake it.
    fn publish(
        &self,
        app: &Arc<App>,
        channel: &str,
        event: &Publish<'_>,
    ) -> Option<oneshot::Receiver<()>> {
        let frame = event.frame(channel);
        self.writer.cache(app, channel, &frame);
        if !app.history.applies_to(channel) {
            self.writer.broadcast(app, channel, &frame, event.except);
        } else {
            let op = Op::PublishHistory {
                app: Arc::clone(app),
                channel: channel.to_owned(),
                frame: OpenFrame::of(&frame),
                except: event.except.map(str::to_owned),
            };
            if self.writer.enqueue(op).is_err() {
                app.deliver_local(channel, &frame, event.except);
            }
        }
        let (done, wait) = oneshot::channel();
        self.writer.enqueue(Op::Ack(done)).ok().map(|()| wait)
    }

    fn subscription_delta(&self, app: &Arc<App>, channel: &str, delta: i64) {
        let _ = self.writer.enqueue(Op::SubscriptionDelta {
            app: Arc::clone(app),
            channel: channel.to_owned(),
            delta,
        });
        if app.counts_subscriptions(channel) && app.dirty_counts.mark(channel) {
            let app = Arc::clone(app);
            let writer = self.writer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(COALESCE).await;
                for channel in app.dirty_counts.take() {
                    let app = Arc::clone(&app);
                    let channel = channel.into();
                    let _ = writer.enqueue(Op::SubscriptionCount { app, channel });
                }
            });
        }
    }

    fn route(&self, app: &App, channel: &str) -> String {
        self.scripts.route(&app.config().id, channel)
    }

    /// A public or private channel without history: this node's answer is the whole answer,
    /// once this node receives the channel's events.
    async fn subscribe_plain(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        recover: Option<&Recover>,
    ) -> Result<(), SubscriptionError> {
        let recovery = recover.map(|_| recovery_unavailable());
        let extras = SucceededExtras {
            position: None,
            recovery: recovery.as_ref(),
            follow: None,
        };
        let route = self.route(app, channel);
        self.routes.add(route.clone()).await;
        let outcome = app
            .channels
            .subscribe(channel, kind, conn, None, Announce::Local, extras);
        match outcome {
            Subscribed::New { .. } => self.subscription_delta(app, channel, 1),
            Subscribed::Already | Subscribed::Full => self.routes.remove(route),
        }
        Ok(())
    }

    /// Presence or history: the cluster's members and history come from Redis; events wait
    /// behind the subscription's gate until `subscription_succeeded` is sent.
    async fn subscribe_deferred(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<&PresenceMember>,
        recover: Option<&Recover>,
    ) -> Result<(), SubscriptionError> {
        // Routed first: events published while Redis is read wait behind the gate.
        let route = self.route(app, channel);
        self.routes.add(route.clone()).await;
        let outcome = app.channels.subscribe(
            channel,
            kind,
            conn,
            member,
            Announce::Deferred,
            SucceededExtras::default(),
        );
        let new_local_user = match outcome {
            Subscribed::New { new_local_user } => new_local_user,
            Subscribed::Already => {
                self.routes.remove(route);
                return Ok(());
            }
            Subscribed::Full => {
                self.routes.remove(route);
                return Err(full(app));
            }
        };
        self.subscription_delta(app, channel, 1);
        let (announce, data) = match member {
            Some(member) => {
                let join = Join {
                    app: &app.config().id,
                    channel,
                    member,
                    set_count: None,
                };
                match self.scripts.join(join).await {
                    Ok(j) if j.is_new && over_limit(app, j.members) => {
                        // Full cluster-wide: undo, silently (nobody was told of the join).
                        app.channels.unsubscribe(channel, conn.socket_id(), false);
                        self.subscription_delta(app, channel, -1);
                        self.routes.remove(route);
                        let _ = self
                            .scripts
                            .leave(&app.config().id, channel, &member.user_id)
                            .await;
                        return Err(full(app));
                    }
                    Ok(j) => (j.is_new, j.presence_data),
                    // Degraded: this node's view is the best there is.
                    Err(_) => (new_local_user, app.channels.local_presence_data(channel)),
                }
            }
            None => (false, "{}".to_owned()),
        };
        let (top, recovery, replay) = if app.history.applies_to(channel) {
            let read = ReadHistory {
                app: &app.config().id,
                channel,
                policy: &app.history.policy,
                from: recover.and_then(Recover::from),
                limit: 0,
            };
            match self.scripts.read_history(read).await {
                Ok(mut read) => {
                    if let Some(Recover::Denied(failure)) = recover {
                        read.frames = Err(*failure);
                    }
                    let recovery = recover.map(|_| recovery_outcome(&read.frames));
                    (Some(read.top), recovery, read.frames.unwrap_or_default())
                }
                Err(_) => (None, recover.map(|_| recovery_unavailable()), Vec::new()),
            }
        } else {
            (None, recover.map(|_| recovery_unavailable()), Vec::new())
        };
        let mut replay = replay;
        // A cache channel's new subscriber gets its last event (not when recovering: the replay
        // has it).
        let mut cache_missed = false;
        if is_cache_channel(channel) && recover.is_none() {
            match self.scripts.cache_get(&app.config().id, channel).await {
                Ok(Some(frame)) => replay.push(Utf8Bytes::from(frame)),
                Ok(None) => {
                    replay.push(wire::cache_miss(channel));
                    cache_missed = true;
                }
                Err(_) => {}
            }
        }
        app.metrics.recovery(recovery.as_ref());
        let extras = SucceededExtras {
            position: top.as_ref(),
            recovery: recovery.as_ref(),
            follow: None,
        };
        app.channels.activate(
            channel,
            conn.socket_id(),
            &extras.frame(channel, &data),
            &replay,
            top.as_ref(),
        );
        if let (true, Some(member)) = (announce, member) {
            let frame = wire::member_added(channel, &member.user_id, member.user_info.as_deref());
            self.writer
                .broadcast(app, channel, &frame, Some(conn.socket_id()));
            app.webhooks().emit(Event::Member {
                kind: WebhookKind::MemberAdded,
                channel,
                user_id: &member.user_id,
            });
        }
        if cache_missed {
            app.cache_missed(channel);
        }
        Ok(())
    }

    async fn unsubscribe(&self, app: &Arc<App>, channel: &str, left: Left) {
        self.routes.remove(self.route(app, channel));
        self.subscription_delta(app, channel, -1);
        let Some(user_id) = left.user_id else { return };
        if !left.last_local_connection {
            return;
        }
        let gone = self
            .scripts
            .leave(&app.config().id, channel, &user_id)
            .await
            .unwrap_or(true);
        if gone {
            let frame = wire::member_removed(channel, &user_id);
            self.writer.broadcast(app, channel, &frame, None);
            app.webhooks().emit(Event::Member {
                kind: WebhookKind::MemberRemoved,
                channel,
                user_id: &user_id,
            });
        }
    }
}

fn full(app: &App) -> SubscriptionError {
    SubscriptionError::PresenceFull(app.config().max_presence_members)
}

/// Whether a presence channel with `members` (the joining user included) is over the app's limit.
fn over_limit(app: &App, members: usize) -> bool {
    let max = app.config().max_presence_members;
    max != 0 && members > max
}

impl Adapter for RedisAdapter {
    fn broadcast(&self, app: &Arc<App>, channel: &str, frame: &Utf8Bytes, except: Option<&str>) {
        self.inner.writer.cache(app, channel, frame);
        self.inner.writer.broadcast(app, channel, frame, except);
    }

    fn publish(
        &self,
        app: &Arc<App>,
        channel: &str,
        event: &Publish<'_>,
    ) -> BoxFuture<'static, ()> {
        let sent = self.inner.publish(app, channel, event);
        Box::pin(async move {
            if let Some(sent) = sent {
                let _ = tokio::time::timeout(OP_TIMEOUT, sent).await;
            }
        })
    }

    fn history(
        &self,
        app: &Arc<App>,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'static, Result<HistoryPage, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let channel = channel.to_owned();
        Box::pin(async move {
            if !app.history.applies_to(&channel) {
                return Ok(HistoryPage::none());
            }
            let read = ReadHistory {
                app: &app.config().id,
                channel: &channel,
                policy: &app.history.policy,
                from: None,
                limit,
            };
            let read = inner.scripts.read_history(read).await?;
            Ok(HistoryPage {
                position: Some(read.top),
                events: read.frames.unwrap_or_default(),
            })
        })
    }

    fn signin(
        &self,
        app: &Arc<App>,
        user_id: &str,
        conn: &ConnHandle,
        watchlist: &[String],
    ) -> BoxFuture<'static, ()> {
        let first = app.users.sign_in(user_id, conn, watchlist);
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let (user_id, conn, watchlist) = (user_id.to_owned(), conn.clone(), watchlist.to_vec());
        Box::pin(async move {
            let id = app.config().id.clone();
            if first && inner.scripts.user_delta(&id, &user_id, 1).await == Ok(1) {
                inner.writer.watch(&app, &user_id, true);
            }
            if watchlist.is_empty() {
                return;
            }
            match inner.scripts.users_online(&id, &watchlist).await {
                Ok(online) => {
                    let online: Vec<&str> = online.iter().map(String::as_str).collect();
                    Users::tell_online(&conn, &online);
                }
                // Degraded: this node's view is the best there is.
                Err(_) => Users::tell_online(&conn, &app.users.online_here(&watchlist)),
            }
        })
    }

    fn signout(
        &self,
        app: &Arc<App>,
        user_id: &str,
        conn: &ConnHandle,
        watchlist: &[String],
    ) -> BoxFuture<'static, ()> {
        let last = app.users.sign_out(user_id, conn, watchlist);
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let user_id = user_id.to_owned();
        Box::pin(async move {
            let id = app.config().id.clone();
            if last && inner.scripts.user_delta(&id, &user_id, -1).await == Ok(-1) {
                inner.writer.watch(&app, &user_id, false);
            }
        })
    }

    fn terminate_user(&self, app: &Arc<App>, user_id: &str) {
        app.users.terminate(user_id);
        self.inner.writer.terminate(app, user_id);
    }

    fn subscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<PresenceMember>,
        recover: Option<Recover>,
    ) -> BoxFuture<'static, Result<(), SubscriptionError>> {
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let channel = channel.to_owned();
        let conn = conn.clone();
        Box::pin(async move {
            let plain = member.is_none()
                && !app.history.applies_to(&channel)
                && !is_cache_channel(&channel);
            if plain {
                inner
                    .subscribe_plain(&app, &channel, kind, &conn, recover.as_ref())
                    .await
            } else {
                inner
                    .subscribe_deferred(
                        &app,
                        &channel,
                        kind,
                        &conn,
                        member.as_ref(),
                        recover.as_ref(),
                    )
                    .await
            }
        })
    }

    fn unsubscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        socket_id: &str,
    ) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let channel = channel.to_owned();
        let left = app.channels.unsubscribe(&channel, socket_id, false);
        Box::pin(async move {
            if let Some(left) = left {
                inner.unsubscribe(&app, &channel, left).await;
            }
        })
    }

    fn channel_info(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<ChannelInfo, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app_id = app.config().id.clone();
        let channel = channel.to_owned();
        Box::pin(async move { inner.scripts.channel_info(&app_id, &channel).await })
    }

    fn channels(
        &self,
        app: &Arc<App>,
        prefix: &str,
    ) -> BoxFuture<'static, Result<Vec<(String, ChannelInfo)>, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app_id = app.config().id.clone();
        let prefix = prefix.to_owned();
        Box::pin(async move { inner.scripts.channels(&app_id, &prefix).await })
    }

    fn user_ids(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<Vec<String>, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app_id = app.config().id.clone();
        let channel = channel.to_owned();
        Box::pin(async move { inner.scripts.users(&app_id, &channel).await })
    }

    fn health(&self) -> Health {
        self.inner.scripts.health().health()
    }

    fn node(&self) -> Option<NodeStats> {
        Some(NodeStats {
            id: self.inner.scripts.node().to_owned(),
            write_queue: self.inner.writer.queued(),
            writes_dropped: self.inner.writer.dropped(),
            round_trip: self.inner.scripts.health().round_trip(),
            nodes: self.inner.scripts.health().nodes(),
            messages_received: self.inner.scripts.health().messages_received(),
        })
    }
}
