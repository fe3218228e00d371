//! This node's life in the cluster: the pub/sub subscription to the bus (resubscribing with
//! backoff; on a Redis Cluster, one RESP3 connection per shard whose messages arrive as pushes),
//! the heartbeat that keeps it on the list of live nodes (and notices that Redis lost its state),
//! and reaping nodes that stopped heartbeating, whose presence members are then announced as
//! removed. The loops end when the adapter is dropped (`stop` closes).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch};

use super::bus;
use super::keys;
use super::link::Link;
use super::routes::{Routes, Sink};
use super::scripts::Scripts;
use super::writer::{Op, Writer};
use crate::app::Apps;
use crate::config::WebhookKind;
use crate::hub::outbound::Cork;
use crate::webhooks::Event;
use crate::wire;

/// Keeps a pub/sub subscription to the bus on the primary, reconnecting with backoff, and
/// resubscribing when the primary moves (`primary` changes).
pub async fn subscribe_loop(
    link: Arc<Link>,
    mut primary: watch::Receiver<u64>,
    routes: Routes,
    scripts: Arc<Scripts>,
    apps: Arc<Apps>,
    writer: Writer,
    mut stop: watch::Receiver<()>,
) {
    if link.is_cluster() {
        return cluster_subscribe_loop(link, routes, scripts, apps, writer, stop).await;
    }
    let bus_channel = keys::bus(scripts.prefix());
    let health = scripts.health();
    let mut delay = Duration::from_millis(100);
    loop {
        primary.borrow_and_update();
        let pubsub = match link.client().await {
            Ok(client) => client.get_async_pubsub().await,
            Err(e) => Err(e),
        };
        match pubsub.map(|p| p.split()) {
            Ok((mut sink, mut stream)) => match sink.subscribe(&bus_channel).await {
                Ok(()) => {
                    // The channels this node serves, subscribed again on this connection.
                    routes.connected(Sink::Plain(sink)).await;
                    health.set_subscribed(true);
                    tracing::info!(channel = %bus_channel, "subscribed to the redis bus");
                    delay = Duration::from_millis(100);
                    // Redis may have restarted empty: write our state again.
                    let _ = writer.enqueue(Op::Resync);
                    loop {
                        let msg = tokio::select! {
                            msg = stream.next() => msg,
                            () = moved(&mut primary) => {
                                tracing::info!("redis primary moved: resubscribing to the bus");
                                None
                            }
                            () = routes.broken() => None,
                            _ = stop.changed() => return,
                        };
                        let Some(msg) = msg else {
                            routes.disconnected().await;
                            break;
                        };
                        health.message_received();
                        // The bus message's subscribers are written by this task (see `Cork`).
                        let _cork = Cork::new();
                        bus::deliver(&apps, scripts.node(), msg.get_payload_bytes());
                    }
                    health.set_subscribed(false);
                    health.failed("redis bus", &"connection lost");
                }
                Err(e) => health.failed("redis subscribe", &e),
            },
            Err(e) => health.failed("redis connect", &e),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Resolves when the primary moves; never for a link without Sentinels (whose sender is gone).
async fn moved(primary: &mut watch::Receiver<u64>) {
    if primary.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Pushed pub/sub messages waiting for this task; beyond this they are dropped (and counted as a
/// Redis failure): the client's reader must never block.
const PUSH_QUEUE: usize = 65_536;

/// The same on a Redis Cluster: the client keeps a connection per shard and pushes the messages
/// here. When a shard's connection is lost, all of it is made again (every route subscribed on
/// the shards as they are then) and the state rewritten (the shard may have restarted empty).
async fn cluster_subscribe_loop(
    link: Arc<Link>,
    routes: Routes,
    scripts: Arc<Scripts>,
    apps: Arc<Apps>,
    writer: Writer,
    mut stop: watch::Receiver<()>,
) {
    let bus_channel = keys::bus(scripts.prefix());
    let health = scripts.health();
    let mut delay = Duration::from_millis(100);
    loop {
        let (tx, mut rx) = mpsc::channel::<PushInfo>(PUSH_QUEUE);
        let push = move |info: PushInfo| tx.try_send(info);
        let conn = match link.cluster_client(push) {
            Some(Ok(client)) => client.get_async_connection().await,
            Some(Err(e)) => Err(e),
            None => return,
        };
        match conn {
            Ok(mut conn) => match conn.subscribe(&bus_channel).await {
                Ok(()) => {
                    routes.connected(Sink::Cluster(conn)).await;
                    health.set_subscribed(true);
                    tracing::info!(channel = %bus_channel, "subscribed to the redis cluster bus");
                    delay = Duration::from_millis(100);
                    let _ = writer.enqueue(Op::Resync);
                    loop {
                        let info = tokio::select! {
                            info = rx.recv() => info,
                            () = routes.broken() => None,
                            _ = stop.changed() => return,
                        };
                        let Some(info) = info else { break };
                        match info.kind {
                            PushKind::Message | PushKind::SMessage => {
                                if let Some(Value::BulkString(payload)) = info.data.get(1) {
                                    health.message_received();
                                    let _cork = Cork::new();
                                    bus::deliver(&apps, scripts.node(), payload);
                                }
                            }
                            // A shard went away (a failover may follow, which the client does
                            // not carry sharded subscriptions over): connect again from scratch
                            // and subscribe to every route on the cluster as it is then.
                            PushKind::Disconnection => break,
                            _ => {}
                        }
                    }
                    routes.disconnected().await;
                    health.set_subscribed(false);
                    health.failed("redis cluster bus", &"connection lost");
                }
                Err(e) => health.failed("redis subscribe", &e),
            },
            Err(e) => health.failed("redis cluster connect", &e),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Heartbeats, asks for lost state to be rewritten, and reaps dead nodes.
pub async fn heartbeat_loop(
    scripts: Arc<Scripts>,
    apps: Arc<Apps>,
    writer: Writer,
    node_timeout: Duration,
    mut stop: watch::Receiver<()>,
) {
    let interval = (node_timeout / 4).max(Duration::from_millis(250));
    let mut first = true;
    let mut reaped_alive = false;
    loop {
        let beat = scripts.heartbeat().await;
        // Until a heartbeat lands the others count this node as dead (its members and
        // subscriptions reaped): a failed one is tried again soon, the very first sooner (the
        // node is not ready before it: see `LinkHealth::health`).
        let next = match beat {
            Ok(_) => interval,
            Err(_) if first => Duration::from_millis(25),
            Err(_) => interval.min(Duration::from_millis(200)),
        };
        match beat {
            Ok(0) if !first => {
                tracing::warn!("this node's redis state is gone (redis restarted or node reaped): rewriting it");
                let _ = writer.enqueue(Op::Resync);
            }
            Ok(-1) if !reaped_alive => {
                tracing::warn!(
                    "this node was taken for dead and is being reaped: waiting to rejoin"
                );
            }
            _ => {}
        }
        reaped_alive = matches!(beat, Ok(-1));
        if beat.is_ok() {
            first = false;
            reap(&scripts, &apps, &writer).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reaps the dead nodes this node claimed: announces the members, users and channels only they
/// had.
async fn reap(scripts: &Scripts, apps: &Apps, writer: &Writer) {
    let dead = match scripts.reap().await {
        Ok(dead) => dead,
        Err(e) => return tracing::warn!(error = %e, "could not look for dead nodes"),
    };
    let ids: Vec<String> = apps.iter().map(|a| a.config().id.clone()).collect();
    for node in dead {
        tracing::info!(node = %node, "reaping a dead node");
        let reaped = match scripts.reap_node(&node, &ids).await {
            Ok(reaped) => reaped,
            Err(e) => {
                // Claimed for a while: this node or another tries again after it.
                tracing::warn!(node = %node, error = %e, "could not reap a dead node");
                continue;
            }
        };
        for o in reaped.members {
            let Some(app) = apps.by_id(&o.app) else {
                continue;
            };
            tracing::info!(app = %o.app, channel = %o.channel, user = %o.user_id, "removing member of a dead node");
            let frame = wire::member_removed(&o.channel, &o.user_id);
            writer.broadcast(&app, &o.channel, &frame, None);
            app.webhooks().emit(Event::Member {
                kind: WebhookKind::MemberRemoved,
                channel: &o.channel,
                user_id: &o.user_id,
            });
        }
        for (app_id, user_id) in reaped.offline {
            if let Some(app) = apps.by_id(&app_id) {
                writer.watch(&app, &user_id, false);
            }
        }
        for (app_id, channel) in reaped.vacated {
            if let Some(app) = apps.by_id(&app_id) {
                app.webhooks().emit(Event::Channel {
                    kind: WebhookKind::ChannelVacated,
                    channel: &channel,
                });
            }
        }
    }
}
