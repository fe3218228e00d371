//! Single-node adapter: this node's state is the whole truth.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::ChannelKind;
use futures_util::future::{ready, BoxFuture};

use super::adapter::Adapter;
use crate::app::{App, HistoryPage, Publish};
use crate::error::{AdapterError, SubscriptionError};
use crate::hub::channels::{ChannelInfo, Subscribed};
use crate::hub::counts::COALESCE;
use crate::hub::history::Recover;
use crate::hub::outbound::ConnHandle;
use crate::hub::outbound::Cork;
use crate::hub::presence::PresenceMember;
use crate::hub::users::Users;

#[derive(Debug, Default)]
pub struct LocalAdapter;

/// Schedules the announcement of `channel`'s subscription count, coalesced.
fn count_changed(app: &Arc<App>, channel: &str) {
    if !app.counts_subscriptions(channel) || !app.dirty_counts.mark(channel) {
        return;
    }
    let app = Arc::clone(app);
    tokio::spawn(async move {
        tokio::time::sleep(COALESCE).await;
        let _cork = Cork::new();
        for channel in app.dirty_counts.take() {
            let count = app.channels.info(&channel).subscription_count;
            app.subscription_count(&channel, count, true);
        }
    });
}

impl Adapter for LocalAdapter {
    fn broadcast(&self, app: &Arc<App>, channel: &str, frame: &Utf8Bytes, except: Option<&str>) {
        app.cache_local(channel, frame);
        app.deliver_local(channel, frame, except);
    }

    fn publish(
        &self,
        app: &Arc<App>,
        channel: &str,
        event: &Publish<'_>,
    ) -> BoxFuture<'static, ()> {
        app.publish_local(channel, event);
        Box::pin(ready(()))
    }

    fn history(
        &self,
        app: &Arc<App>,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'static, Result<HistoryPage, AdapterError>> {
        Box::pin(ready(Ok(app.history_local(channel, limit))))
    }

    fn signin(
        &self,
        app: &Arc<App>,
        user_id: &str,
        conn: &ConnHandle,
        watchlist: &[String],
    ) -> BoxFuture<'static, ()> {
        let first = app.users.sign_in(user_id, conn, watchlist);
        Users::tell_online(conn, &app.users.online_here(watchlist));
        if first {
            app.users.announce(user_id, true);
        }
        Box::pin(ready(()))
    }

    fn signout(
        &self,
        app: &Arc<App>,
        user_id: &str,
        conn: &ConnHandle,
        watchlist: &[String],
    ) -> BoxFuture<'static, ()> {
        if app.users.sign_out(user_id, conn, watchlist) {
            app.users.announce(user_id, false);
        }
        Box::pin(ready(()))
    }

    fn terminate_user(&self, app: &Arc<App>, user_id: &str) {
        app.users.terminate(user_id);
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
        let outcome = app.subscribe_local(channel, kind, conn, member.as_ref(), recover.as_ref());
        let result = match outcome {
            Subscribed::Full => Err(SubscriptionError::PresenceFull(
                app.config().max_presence_members,
            )),
            Subscribed::New { new_local_user } => {
                app.occupancy_local(channel, true);
                count_changed(app, channel);
                if let (true, Some(m)) = (new_local_user, &member) {
                    app.membership_local(channel, &m.user_id, true);
                }
                Ok(())
            }
            Subscribed::Already => Ok(()),
        };
        Box::pin(ready(result))
    }

    fn unsubscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        socket_id: &str,
    ) -> BoxFuture<'static, ()> {
        if let Some(left) = app.channels.unsubscribe(channel, socket_id, true) {
            if let (true, Some(user_id)) = (left.last_local_connection, &left.user_id) {
                app.membership_local(channel, user_id, false);
            }
            app.occupancy_local(channel, false);
            count_changed(app, channel);
        }
        Box::pin(ready(()))
    }

    fn channel_info(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<ChannelInfo, AdapterError>> {
        Box::pin(ready(Ok(app.channels.info(channel))))
    }

    fn channels(
        &self,
        app: &Arc<App>,
        prefix: &str,
    ) -> BoxFuture<'static, Result<Vec<(String, ChannelInfo)>, AdapterError>> {
        Box::pin(ready(Ok(app.channels.list(prefix))))
    }

    fn user_ids(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<Vec<String>, AdapterError>> {
        Box::pin(ready(Ok(app.channels.user_ids(channel))))
    }
}
