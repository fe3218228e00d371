//! One admitted connection's session: the read loop with its heartbeat and inactivity timers,
//! and [`Session::apply`] of each parsed [`ClientMessage`]. Writing is not done here: frames go
//! into the connection's queue ([`crate::hub::outbound`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use chorus_protocol::channel::validate_channel_name;
use chorus_protocol::frame::{SigninData, SubscribeData};
use chorus_protocol::ChannelKind;
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;
use tokio::time::{sleep_until, Instant};

use super::auth;
use super::message::ClientMessage;
use crate::app::App;
use crate::error::{quoted, ConnectionError, SubscriptionError};
use crate::hub::history::{Recover, RecoveryFailure};
use crate::hub::outbound::{ConnHandle, Cork};
use crate::hub::presence::PresenceMember;
use crate::rate::RateLimiter;
use crate::state::ServerState;
use crate::webhooks::Event;
use crate::wire;

/// Recovering subscribes one connection may make per second once its burst (one per channel it
/// may hold) is spent.
const RECOVERIES_PER_SECOND: u32 = 1;

/// One of the connection's subscriptions.
struct Subscription {
    /// Presence channels: the user id it joined as (client events carry it as `user_id`).
    user_id: Option<String>,
}

pub struct Session {
    state: Arc<ServerState>,
    app: Arc<App>,
    conn: ConnHandle,
    subscriptions: HashMap<String, Subscription>,
    /// User id after a successful `pusher:signin`.
    user_id: Option<String>,
    /// The user ids that sign-in watches.
    watchlist: Vec<String>,
    limiter: RateLimiter,
    /// Subscribes that ask to recover: a reconnect recovers every channel at once, a loop of
    /// recovering subscribes gets one a second.
    recoveries: RateLimiter,
    /// When the client last sent anything but a heartbeat (for `inactivity_timeout`).
    last_activity: Instant,
}

impl Session {
    pub fn new(state: Arc<ServerState>, app: Arc<App>, conn: ConnHandle) -> Self {
        let limiter = RateLimiter::new(app.config().max_client_events_per_second);
        let burst = match app.config().max_subscriptions_per_connection {
            0 => u32::MAX,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        let recoveries = RateLimiter::with_burst(RECOVERIES_PER_SECOND, burst);
        Self {
            state,
            app,
            conn,
            subscriptions: HashMap::new(),
            user_id: None,
            watchlist: Vec::new(),
            limiter,
            recoveries,
            last_activity: Instant::now(),
        }
    }

    /// Runs the read loop; returns the error that ended it, or `None` when the client left.
    pub async fn run<S>(&mut self, mut stream: S) -> Option<ConnectionError>
    where
        S: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        self.conn.send(&wire::connection_established(
            self.conn.socket_id(),
            self.state.config.activity_timeout,
        ));

        let activity = Duration::from_secs(self.state.config.activity_timeout);
        let pong_wait = Duration::from_secs(self.state.config.pong_timeout);
        let inactivity = self.state.config.inactivity_timeout;
        let idle_limit = (inactivity > 0).then(|| Duration::from_secs(inactivity));
        let mut deadline = Instant::now() + activity;
        let mut awaiting_pong = false;
        let mut shutdown = self.state.shutdown.clone();
        let mut closing = self.app.closing();
        let conn = self.conn.clone();
        let killed = conn.killed();
        tokio::pin!(killed);
        loop {
            // Inactivity only counts while nothing is subscribed; `None` also when too far away.
            let idle_at = idle_limit
                .filter(|_| self.subscriptions.is_empty())
                .and_then(|limit| self.last_activity.checked_add(limit));
            // One timer for both: heartbeats do not move `idle_at`.
            let wake = idle_at.map_or(deadline, |at| at.min(deadline));
            // Only decide here; the work happens below, once the other branches are dropped.
            let msg = tokio::select! {
                msg = stream.next() => msg,
                _ = sleep_until(wake) => {
                    if idle_at.is_some_and(|at| at <= Instant::now()) {
                        return Some(ConnectionError::Inactive(inactivity));
                    }
                    if Instant::now() < deadline {
                        continue;
                    }
                    if awaiting_pong {
                        return Some(ConnectionError::PongNotReceived);
                    }
                    self.conn.send(&wire::PING);
                    awaiting_pong = true;
                    deadline = Instant::now() + pong_wait;
                    continue;
                }
                reason = &mut killed => return Some(reason.error()),
                _ = shutdown.changed() => return Some(ConnectionError::ShuttingDown),
                Ok(()) = closing.changed() => {
                    if *closing.borrow_and_update() {
                        return Some(ConnectionError::AppDisabled);
                    }
                    continue;
                }
            };
            deadline = Instant::now() + activity;
            awaiting_pong = false;
            match msg {
                None | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    self.app.metrics.received(text.len());
                    // Boxed: subscribing nests the adapter's futures; inline they would size
                    // every idle connection's task for the rare moment it handles a message.
                    if let Err(e) = Box::pin(self.handle(text.as_str())).await {
                        if e.is_fatal() {
                            return Some(e);
                        }
                        tracing::debug!(socket_id = self.conn.socket_id(), error = %e, "rejected message");
                        self.conn.send(&wire::error(&e));
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    self.last_activity = Instant::now();
                    self.conn
                        .send(&wire::error(&ConnectionError::BinaryMessage));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(e)) => return read_error(e, self.state.config.max_message_kb),
            }
        }
    }

    async fn handle(&mut self, text: &str) -> Result<(), ConnectionError> {
        let msg = ClientMessage::parse(text);
        // Anything but a heartbeat counts as activity, even a message that is then rejected.
        if !msg.as_ref().is_ok_and(ClientMessage::is_heartbeat) {
            self.last_activity = Instant::now();
        }
        self.apply(msg?).await
    }

    async fn apply(&mut self, msg: ClientMessage<'_>) -> Result<(), ConnectionError> {
        match msg {
            ClientMessage::Ping => {
                self.conn.send(&wire::PONG);
                Ok(())
            }
            ClientMessage::Pong => Ok(()),
            ClientMessage::Subscribe(data) => self.subscribe(data).await,
            ClientMessage::Unsubscribe(data) => {
                self.unsubscribe(&data.channel).await;
                Ok(())
            }
            ClientMessage::Signin(data) => self.signin(&data).await,
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => self.client_event(&event, channel, data),
        }
    }

    async fn subscribe(&mut self, data: SubscribeData) -> Result<(), ConnectionError> {
        let kind = validate_channel_name(&data.channel)?;
        let socket_id = self.conn.socket_id();
        let authorized = auth::authorize(
            &self.app.config(),
            socket_id,
            self.user_id.as_deref(),
            kind,
            &data,
        );
        let member = match authorized {
            Ok(member) => member,
            Err(e) => {
                self.refuse(&data.channel, &e);
                return Ok(());
            }
        };
        let adapter = &self.state.adapter;
        if let Some(existing) = self.subscriptions.get(&data.channel) {
            // Already subscribed: answer again, but as the user it joined as.
            let member = match (member, &existing.user_id) {
                (Some(mut m), Some(first)) => {
                    m.user_id = first.clone();
                    Some(m)
                }
                (m, _) => m,
            };
            // A repeat is never refused for a limit it already counts against.
            let _ = adapter
                .subscribe(&self.app, &data.channel, kind, &self.conn, member, None)
                .await;
            return Ok(());
        }
        if let Err(e) = self.within_limits(&data.channel, member.as_ref()) {
            self.refuse(&data.channel, &e);
            return Ok(());
        }
        let user_id = member.as_ref().map(|m| m.user_id.clone());
        self.subscriptions
            .insert(data.channel.clone(), Subscription { user_id });
        let recover = data.recover.map(|from| {
            if self.recoveries.allow() {
                Recover::From(from)
            } else {
                Recover::Denied(RecoveryFailure::RateLimited)
            }
        });
        let subscribed = adapter
            .subscribe(&self.app, &data.channel, kind, &self.conn, member, recover)
            .await;
        if let Err(e) = subscribed {
            self.subscriptions.remove(&data.channel);
            self.refuse(&data.channel, &e);
        }
        Ok(())
    }

    /// The limits a new subscription must be within (the member limit is the adapter's).
    fn within_limits(
        &self,
        channel: &str,
        member: Option<&PresenceMember>,
    ) -> Result<(), SubscriptionError> {
        let cfg = &self.app.config();
        let max = cfg.max_subscriptions_per_connection;
        if max != 0 && self.subscriptions.len() >= max {
            return Err(SubscriptionError::TooManySubscriptions(max));
        }
        let max_info = cfg.max_presence_user_info_kb.saturating_mul(1024);
        let info_len = member
            .and_then(|m| m.user_info.as_ref())
            .map_or(0, |i| i.get().len());
        if info_len > max_info {
            return Err(SubscriptionError::UserInfoTooLarge(max_info));
        }
        let max = cfg.max_channels;
        if max != 0 && !self.app.channels.contains(channel) && self.app.channels.len() >= max {
            return Err(SubscriptionError::TooManyChannels(max));
        }
        Ok(())
    }

    fn refuse(&self, channel: &str, e: &SubscriptionError) {
        self.app.metrics.refused(e.kind());
        tracing::debug!(socket_id = self.conn.socket_id(), channel, error = %e, "subscription refused");
        self.conn.send(&wire::subscription_error(channel, e));
    }

    async fn unsubscribe(&mut self, channel: &str) {
        if self.subscriptions.remove(channel).is_some() {
            self.state
                .adapter
                .unsubscribe(&self.app, channel, self.conn.socket_id())
                .await;
        }
    }

    async fn signin(&mut self, data: &SigninData) -> Result<(), ConnectionError> {
        let signed = auth::verify_signin(&self.app.config(), self.conn.socket_id(), data)?;
        match &self.user_id {
            // A connection is one user: another id would keep the first one's user channel and
            // escape the first one's termination.
            Some(current) if *current != signed.user_id => {
                return Err(ConnectionError::SigninFailed(
                    "this connection is already signed in as another user",
                ))
            }
            // The same user again: answered again; the first sign-in's watchlist stays.
            Some(_) => {
                self.conn.send(&wire::signin_success(&data.user_data));
            }
            None => {
                self.conn.send(&wire::signin_success(&data.user_data));
                self.state
                    .adapter
                    .signin(&self.app, &signed.user_id, &self.conn, &signed.watchlist)
                    .await;
                self.user_id = Some(signed.user_id);
                self.watchlist = signed.watchlist;
            }
        }
        Ok(())
    }

    fn client_event(
        &mut self,
        event: &str,
        channel: Option<String>,
        data: Option<&RawValue>,
    ) -> Result<(), ConnectionError> {
        let cfg = &self.app.config();
        if !cfg.enable_client_events {
            return Err(ConnectionError::ClientEventsDisabled);
        }
        let channel = channel.ok_or(ConnectionError::InvalidData("client event (channel)"))?;
        if !ChannelKind::of(&channel).allows_client_events() {
            return Err(ConnectionError::ClientEventWrongChannel);
        }
        let Some(subscription) = self.subscriptions.get(&channel) else {
            return Err(ConnectionError::ClientEventNotSubscribed(quoted(&channel)));
        };
        // The limit is on the event's data, as on the HTTP API, not on the whole frame.
        if data.map_or(0, wire::data_len) > self.app.max_payload_bytes() {
            return Err(ConnectionError::MessageTooLarge(
                self.app.max_payload_bytes(),
            ));
        }
        if !self.limiter.allow() {
            return Err(ConnectionError::ClientEventRateLimited(
                cfg.max_client_events_per_second,
            ));
        }
        let frame = wire::encode(
            event,
            Some(&channel),
            data.unwrap_or(RawValue::NULL),
            subscription.user_id.as_deref(),
        );
        // The other members' frames are written from here, not by waking their writers.
        let _cork = Cork::new();
        self.state
            .adapter
            .broadcast(&self.app, &channel, &frame, Some(self.conn.socket_id()));
        self.app.webhooks().emit(Event::Client {
            channel: &channel,
            event,
            data: data.unwrap_or(RawValue::NULL),
            socket_id: self.conn.socket_id(),
            user_id: subscription.user_id.as_deref(),
        });
        Ok(())
    }

    /// Leaves every channel and the user registry.
    pub async fn cleanup(&mut self) {
        for channel in std::mem::take(&mut self.subscriptions).into_keys() {
            self.state
                .adapter
                .unsubscribe(&self.app, &channel, self.conn.socket_id())
                .await;
        }
        if let Some(user_id) = self.user_id.take() {
            let watchlist = std::mem::take(&mut self.watchlist);
            self.state
                .adapter
                .signout(&self.app, &user_id, &self.conn, &watchlist)
                .await;
        }
    }
}

fn read_error(e: axum::Error, max_kb: usize) -> Option<ConnectionError> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => {
            Some(ConnectionError::MessageTooLarge(max_kb * 1024))
        }
        Some(tungstenite::Error::Utf8(_)) => Some(ConnectionError::InvalidUtf8),
        // The client went away without a close frame: nothing to answer, nobody to answer to.
        Some(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )) => None,
        Some(tungstenite::Error::Protocol(e)) => {
            Some(ConnectionError::ProtocolViolation(quoted(&e.to_string())))
        }
        _ => {
            tracing::debug!(error = %inner, "socket read failed");
            None
        }
    }
}
