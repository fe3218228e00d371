//! One WebSocket connection: admission, the read loop (protocol events, heartbeat) and the writer
//! task that drains the connection's bounded outbound queue.
//!
//! Reading and writing are split: the sink sits behind the connection's queue
//! ([`crate::outbound`]), written by a publisher's cork or by the writer task when the socket is
//! full, so a broadcast never waits on this client's socket; the writer task also writes the
//! goodbye (`pusher:error` and the close frame) when the connection is killed or the session ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chorus_protocol::channel::{server_to_user_id, validate_channel_name};
use chorus_protocol::frame::{
    ConnectionEstablished, Frame, SigninData, SubscribeData, UnsubscribeData,
};
use chorus_protocol::{events, sign, ChannelKind};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::time::{sleep_until, Instant};

use crate::app::App;
use crate::error::{ConnectionError, SubscriptionError};
use crate::outbound::{ConnHandle, Cork, WriterExit};
use crate::presence::PresenceMember;
use crate::state::ServerState;
use crate::wire;

/// How long the writer may take to flush the final frames before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// A close frame's payload is at most 125 bytes: the 2-byte code and the reason.
const MAX_CLOSE_REASON: usize = 123;

/// What the upgrade request said, checked once the socket is open (errors are sent on it).
pub struct ConnectRequest {
    pub key: String,
    pub protocol: Option<String>,
    pub origin: Option<String>,
    /// The path, when the upgrade came on another than `/app/{key}`: refused with 4005.
    pub wrong_path: Option<String>,
}

/// Serves one WebSocket until it closes.
pub async fn serve(socket: WebSocket, state: Arc<ServerState>, request: ConnectRequest) {
    let (sink, stream) = socket.split();
    let conn = ConnHandle::new(
        new_socket_id(),
        state.config.outbound_queue,
        Some(Box::pin(sink)),
    );
    let mut writer = tokio::spawn(write_loop(conn.clone()));

    // The slots are held until the writer is done, so graceful shutdown waits for the goodbyes.
    let (end, _slots) = match admit(&state, &request) {
        Err(e) => (Some(e), None),
        Ok((app, slots)) => {
            let mut session = Session::new(Arc::clone(&state), app, conn.clone());
            let end = session.run(stream).await;
            session.cleanup().await;
            (end, Some(slots))
        }
    };
    if let Some(err) = &end {
        tracing::debug!(socket_id = conn.socket_id(), error = %err, "closing connection");
    }
    conn.finish(end);
    drop(conn);
    // The writer bounds its own goodbye; this also bounds a write it was in the middle of.
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

type Slots = (
    crate::state::ServerConnectionSlot,
    crate::app::AppConnectionSlot,
);

fn admit(
    state: &Arc<ServerState>,
    req: &ConnectRequest,
) -> Result<(Arc<App>, Slots), ConnectionError> {
    if state.is_shutting_down() {
        return Err(ConnectionError::ShuttingDown);
    }
    if let Some(path) = &req.wrong_path {
        return Err(ConnectionError::PathNotFound(path.clone()));
    }
    let app = state
        .apps
        .by_key(&req.key)
        .ok_or_else(|| ConnectionError::AppNotFound(req.key.clone()))?;
    let protocol = req
        .protocol
        .as_deref()
        .ok_or(ConnectionError::NoProtocolVersion)?;
    let version: u32 = protocol
        .parse()
        .map_err(|_| ConnectionError::InvalidVersionString(protocol.to_owned()))?;
    if !(u32::from(chorus_protocol::MIN_PROTOCOL_VERSION)
        ..=u32::from(chorus_protocol::PROTOCOL_VERSION))
        .contains(&version)
    {
        return Err(ConnectionError::UnsupportedProtocolVersion(version));
    }
    if !app.config.origin_allowed(req.origin.as_deref()) {
        return Err(ConnectionError::OriginNotAllowed);
    }
    let server_slot = state
        .acquire_connection()
        .ok_or(ConnectionError::OverCapacity)?;
    let app_slot = app
        .acquire_connection()
        .ok_or(ConnectionError::OverConnectionQuota)?;
    Ok((Arc::clone(app), (server_slot, app_slot)))
}

fn new_socket_id() -> String {
    format!("{}.{}", rand::random::<u32>(), rand::random::<u32>())
}

/// Writes what is queued until the connection is killed or the session ends, then says goodbye
/// on the sink directly (never through the bounded queue).
async fn write_loop(conn: ConnHandle) {
    let (err, keep) = match std::future::poll_fn(|cx| conn.poll_writer(cx)).await {
        // Killed from outside (slow consumer, terminated): what is still queued is dropped and
        // the error goes out at once. A slow consumer's queue is full, so it could not carry it.
        WriterExit::Killed(reason) => (reason.error(), false),
        // The session ended (`None`: the client left) after its queue was written.
        WriterExit::Ended(err) => (err, true),
        WriterExit::Failed => {
            // Nothing more is queued for a dead socket.
            conn.take_sink(false);
            return;
        }
    };
    let (Some(mut sink), queued) = conn.take_sink(keep) else {
        return;
    };
    let farewell = async {
        for text in queued {
            if sink.feed(Message::Text(text)).await.is_err() {
                return;
            }
        }
        match err {
            Some(err) => {
                let _ = sink.feed(Message::Text(wire::error(&err))).await;
                let frame = CloseFrame {
                    code: close_code(&err),
                    reason: close_reason(&err).into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            // The client left: complete the close handshake if the socket still works.
            None => {
                let _ = sink.close().await;
            }
        }
    };
    // Bounded: a client that never reads again must not keep the task (and its buffers) alive.
    // Boxed: this runs once, at the end, and inline it would make every idle connection's task
    // as large as the goodbye (timer included) for its whole life.
    let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, farewell)).await;
}

/// Fatal errors close with their Pusher code; a too-large message closes with WebSocket's 1009.
fn close_code(err: &ConnectionError) -> u16 {
    if err.is_fatal() {
        err.code().code()
    } else {
        1009
    }
}

/// The error's message, cut to the 123 bytes a close frame can carry (it may quote client input).
fn close_reason(err: &ConnectionError) -> String {
    let mut reason = err.to_string();
    if reason.len() > MAX_CLOSE_REASON {
        let mut cut = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

/// Token bucket for client events: `rate` per second, bursts up to `rate`.
struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Session {
    state: Arc<ServerState>,
    app: Arc<App>,
    conn: ConnHandle,
    /// Subscribed channels; for presence, the user id joined as.
    subscriptions: HashMap<String, Option<String>>,
    /// User id after a successful `pusher:signin`.
    user_id: Option<String>,
    limiter: RateLimiter,
    /// When the client last sent anything but a heartbeat (for `inactivity_timeout`).
    last_activity: Instant,
}

static PONG: Utf8Bytes = Utf8Bytes::from_static(r#"{"event":"pusher:pong","data":{}}"#);
static PING: Utf8Bytes = Utf8Bytes::from_static(r#"{"event":"pusher:ping","data":{}}"#);

impl Session {
    fn new(state: Arc<ServerState>, app: Arc<App>, conn: ConnHandle) -> Self {
        let limiter = RateLimiter::new(app.config.max_client_events_per_second);
        Self {
            state,
            app,
            conn,
            subscriptions: HashMap::new(),
            user_id: None,
            limiter,
            last_activity: Instant::now(),
        }
    }

    /// Runs the read loop; returns the error that ended it, or `None` when the client left.
    async fn run(&mut self, mut stream: SplitStream<WebSocket>) -> Option<ConnectionError> {
        let established = ConnectionEstablished {
            socket_id: self.conn.socket_id().to_owned(),
            activity_timeout: self.state.config.activity_timeout,
        };
        let data = serde_json::to_string(&established).unwrap_or_default();
        self.conn.send(&wire::encode_string_data(
            events::CONNECTION_ESTABLISHED,
            None,
            &data,
        ));

        let activity = Duration::from_secs(self.state.config.activity_timeout);
        let pong_wait = Duration::from_secs(self.state.config.pong_timeout);
        let inactivity = self.state.config.inactivity_timeout;
        let idle_limit = (inactivity > 0).then(|| Duration::from_secs(inactivity));
        let mut deadline = Instant::now() + activity;
        let mut awaiting_pong = false;
        let mut shutdown = self.state.shutdown.clone();
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
                    self.conn.send(&PING);
                    awaiting_pong = true;
                    deadline = Instant::now() + pong_wait;
                    continue;
                }
                reason = &mut killed => return reason.error(),
                _ = shutdown.changed() => return Some(ConnectionError::ShuttingDown),
            };
            deadline = Instant::now() + activity;
            awaiting_pong = false;
            match msg {
                None | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    self.app.metrics.received(text.len());
                    // Boxed: subscribing nests the adapter's futures; inline they would size every idle
                    // connection's task for the rare moment it handles a message.
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
        let frame = serde_json::from_str::<Frame<&RawValue>>(text);
        // Anything but a heartbeat counts as activity, even a message that is then rejected.
        if !matches!(&frame, Ok(f) if f.event == events::PING || f.event == events::PONG) {
            self.last_activity = Instant::now();
        }
        let frame = frame.map_err(|e| ConnectionError::InvalidJson(e.to_string()))?;
        match frame.event.as_str() {
            events::PING => {
                self.conn.send(&PONG);
                Ok(())
            }
            events::PONG => Ok(()),
            events::SUBSCRIBE => {
                let data =
                    data_as(frame.data).ok_or(ConnectionError::InvalidData(events::SUBSCRIBE))?;
                self.subscribe(data).await
            }
            events::UNSUBSCRIBE => {
                let data: UnsubscribeData =
                    data_as(frame.data).ok_or(ConnectionError::InvalidData(events::UNSUBSCRIBE))?;
                self.unsubscribe(&data.channel).await;
                Ok(())
            }
            events::SIGNIN => self
                .signin(data_as(frame.data).ok_or(ConnectionError::InvalidData(events::SIGNIN))?),
            name if events::is_client_event(name) => {
                self.client_event(name, frame.channel, frame.data)
            }
            other => Err(ConnectionError::UnknownEvent(
                other.chars().take(64).collect(),
            )),
        }
    }

    async fn subscribe(&mut self, data: SubscribeData) -> Result<(), ConnectionError> {
        let kind = validate_channel_name(&data.channel)?;
        match self.authorize(kind, &data) {
            Ok(member) => {
                if let Some(user_id) = self.subscriptions.get(&data.channel) {
                    // Already subscribed: answer again, but as the user it joined as.
                    let member = match (member, user_id) {
                        (Some(mut m), Some(first)) => {
                            m.user_id = first.clone();
                            Some(m)
                        }
                        (m, _) => m,
                    };
                    self.state
                        .adapter
                        .subscribe(&self.app, &data.channel, kind, &self.conn, member, None)
                        .await;
                    return Ok(());
                }
                let user_id = member.as_ref().map(|m| m.user_id.clone());
                self.subscriptions.insert(data.channel.clone(), user_id);
                self.state
                    .adapter
                    .subscribe(
                        &self.app,
                        &data.channel,
                        kind,
                        &self.conn,
                        member,
                        data.recover.clone(),
                    )
                    .await;
            }
            Err(e) => {
                tracing::debug!(socket_id = self.conn.socket_id(), channel = %data.channel, error = %e, "subscription refused");
                self.conn.send(&wire::subscription_error(&data.channel, &e));
            }
        }
        Ok(())
    }

    /// Checks a subscription; for presence returns who joins.
    fn authorize(
        &self,
        kind: ChannelKind,
        data: &SubscribeData,
    ) -> Result<Option<PresenceMember>, SubscriptionError> {
        let cfg = &self.app.config;
        match kind {
            ChannelKind::Public => Ok(None),
            ChannelKind::ServerToUser => {
                let wanted = server_to_user_id(&data.channel);
                if wanted.is_some() && wanted == self.user_id.as_deref() {
                    Ok(None)
                } else {
                    Err(SubscriptionError::NotSignedInAsUser)
                }
            }
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence => {
                let auth = data.auth.as_deref().ok_or(SubscriptionError::MissingAuth)?;
                let channel_data = data.channel_data.as_deref();
                if kind == ChannelKind::Presence && channel_data.is_none() {
                    return Err(SubscriptionError::InvalidChannelData(
                        "presence channels need channel_data",
                    ));
                }
                let signed_data = if kind == ChannelKind::Presence {
                    channel_data
                } else {
                    None
                };
                if !sign::verify_channel(
                    &cfg.key,
                    &cfg.secret,
                    self.conn.socket_id(),
                    &data.channel,
                    signed_data,
                    auth,
                ) {
                    return Err(SubscriptionError::InvalidSignature);
                }
                match signed_data {
                    Some(cd) => PresenceMember::parse(cd).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    async fn unsubscribe(&mut self, channel: &str) {
        if self.subscriptions.remove(channel).is_some() {
            self.state
                .adapter
                .unsubscribe(&self.app, channel, self.conn.socket_id())
                .await;
        }
    }

    fn signin(&mut self, data: SigninData) -> Result<(), ConnectionError> {
        let cfg = &self.app.config;
        if !cfg.enable_user_authentication {
            return Err(ConnectionError::UserAuthenticationDisabled);
        }
        if !sign::verify_user(
            &cfg.key,
            &cfg.secret,
            self.conn.socket_id(),
            &data.user_data,
            &data.auth,
        ) {
            return Err(ConnectionError::SigninFailed("invalid signature"));
        }
        #[derive(serde::Deserialize)]
        struct UserData {
            id: String,
        }
        let user: UserData = serde_json::from_str(&data.user_data).map_err(|_| {
            ConnectionError::SigninFailed("user_data must be a JSON object with a string id")
        })?;
        if user.id.is_empty() {
            return Err(ConnectionError::SigninFailed("user id is empty"));
        }
        if let Some(old) = self.user_id.take() {
            self.app.users.remove(&old, &self.conn);
        }
        self.app.users.add(&user.id, &self.conn);
        self.user_id = Some(user.id);
        #[derive(serde::Serialize)]
        struct Success<'a> {
            user_data: &'a str,
        }
        self.conn.send(&wire::encode(
            events::SIGNIN_SUCCESS,
            None,
            Success {
                user_data: &data.user_data,
            },
            None,
        ));
        Ok(())
    }

    fn client_event(
        &mut self,
        event: &str,
        channel: Option<String>,
        data: Option<&RawValue>,
    ) -> Result<(), ConnectionError> {
        let cfg = &self.app.config;
        if !cfg.enable_client_events {
            return Err(ConnectionError::ClientEventsDisabled);
        }
        let channel = channel.ok_or(ConnectionError::InvalidData("client event (channel)"))?;
        if !ChannelKind::of(&channel).allows_client_events() {
            return Err(ConnectionError::ClientEventWrongChannel);
        }
        let Some(user_id) = self.subscriptions.get(&channel) else {
            return Err(ConnectionError::ClientEventNotSubscribed(channel));
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
            user_id.as_deref(),
        );
        // The other members' frames are written from here, not by waking their writers.
        let _cork = Cork::new();
        self.state
            .adapter
            .broadcast(&self.app, &channel, &frame, Some(self.conn.socket_id()));
        Ok(())
    }

    /// Leaves every channel and the user registry.
    async fn cleanup(&mut self) {
        for (channel, _) in std::mem::take(&mut self.subscriptions) {
            self.state
                .adapter
                .unsubscribe(&self.app, &channel, self.conn.socket_id())
                .await;
        }
        if let Some(user_id) = self.user_id.take() {
            self.app.users.remove(&user_id, &self.conn);
        }
    }
}

/// Parses `data`, given as an object or (as some clients do) as a JSON string holding one.
fn data_as<T: DeserializeOwned>(data: Option<&RawValue>) -> Option<T> {
    let raw = data?.get();
    serde_json::from_str(raw).ok().or_else(|| {
        let inner: String = serde_json::from_str(raw).ok()?;
        serde_json::from_str(&inner).ok()
    })
}

fn read_error(e: axum::Error, max_kb: usize) -> Option<ConnectionError> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => {
            Some(ConnectionError::MessageTooLarge(max_kb * 1024))
        }
        _ => {
            tracing::debug!(error = %inner, "socket read failed");
            None
        }
    }
}
