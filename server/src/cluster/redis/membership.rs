//! This node's life in the cluster: the pub/sub subscription to the bus (resubscribing with
//! backoff), the heartbeat that keeps it on the list of live nodes (and notices that Redis lost
//! its state), and reaping nodes that stopped heartbeating, whose presence members are then
//! announced as removed. Both loops end when the adapter is dropped (`stop` closes).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::bus;
use super::link::Link;
use super::routes::Routes;
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
    let bus_channel = scripts.bus();
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
                    routes.connected(sink).await;
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
    loop {
        let beat = scripts.heartbeat().await;
        // Until a heartbeat lands the others count this node as dead (its members and
        // subscriptions left out of every answer): a failed one is tried again soon.
        let next = if beat.is_ok() {
            interval
        } else {
            interval.min(Duration::from_millis(200))
        };
        if let Ok(existed) = beat {
            if !existed && !first {
                tracing::warn!("this node's redis state is gone (redis restarted or node reaped): rewriting it");
                let _ = writer.enqueue(Op::Resync);
            }
            first = false;
            if let Ok(reaped) = scripts.reap().await {
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
                        let kind = WebhookKind::ChannelVacated;
                        app.webhooks().emit(Event::Channel {
                            kind,
                            channel: &channel,
                        });
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.changed() => return,
        }
    }
}
