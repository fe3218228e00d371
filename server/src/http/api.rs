//! The Pusher HTTP API handlers (`/apps/{app_id}/...`): signed requests from backends (Laravel's
//! pusher driver, the `pusher` server SDKs) to publish events and query channels.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chorus_protocol::channel::validate_channel_name;
use chorus_protocol::{is_valid_socket_id, ChannelKind};
use futures_util::future::{join_all, BoxFuture};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::signed::{ApiPath, Signed};
use crate::app::{App, Publish};
use crate::error::{quoted, ApiError};
use crate::hub::channels::ChannelInfo;
use crate::hub::outbound::Cork;
use crate::state::ServerState;
use crate::wire;

/// Most channels one trigger may target.
pub const MAX_TRIGGER_CHANNELS: usize = 100;
/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10;
/// Longest event name.
pub const MAX_EVENT_NAME_LEN: usize = 200;
/// Most events one history request returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;

type AppState = State<Arc<ServerState>>;
type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/apps/{app_id}/events", post(trigger))
        .route("/apps/{app_id}/batch_events", post(batch))
        .route("/apps/{app_id}/channels", get(channels))
        .route("/apps/{app_id}/channels/{channel}", get(channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(users))
        .route("/apps/{app_id}/channels/{channel}/history", get(history))
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(terminate),
        )
}

/// A channel name from the path, checked.
fn channel_param(name: &str) -> Result<ChannelKind, ApiError> {
    validate_channel_name(name)
        .map_err(|e| ApiError::BadRequest(format!("channel {:?}: {e}", quoted(name))))
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Parses and validates an API event body as `POST /events` does (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub fn check_event_body(app: &App, body: &[u8]) -> Result<(), ApiError> {
    validate_event(app, parse_json(body)?).map(|_| ())
}

/// One event to publish, as in `POST /events` and each entry of `POST /batch_events`.
#[derive(Deserialize)]
struct EventBody<'a> {
    name: String,
    /// A string per the protocol; any other JSON value is sent as its JSON text.
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

/// Requested `info` attributes.
#[derive(Default, Clone, Copy)]
struct InfoWanted {
    subscription_count: bool,
    user_count: bool,
}

impl InfoWanted {
    fn parse(info: Option<&str>) -> Self {
        let mut w = Self::default();
        for attr in info.unwrap_or("").split(',').map(str::trim) {
            match attr {
                "subscription_count" => w.subscription_count = true,
                "user_count" => w.user_count = true,
                _ => {}
            }
        }
        w
    }

    fn any(self) -> bool {
        self.subscription_count || self.user_count
    }

    fn render(self, info: ChannelInfo) -> Map<String, Value> {
        let mut m = Map::new();
        if self.subscription_count {
            m.insert("subscription_count".into(), info.subscription_count.into());
        }
        if self.user_count {
            if let Some(u) = info.user_count {
                m.insert("user_count".into(), u.into());
            }
        }
        m
    }
}

/// A validated event, ready to encode.
struct Event<'a> {
    name: String,
    data: DataText<'a>,
    channels: Vec<String>,
    socket_id: Option<String>,
    info: InfoWanted,
}

/// `data` as it will be written: a JSON string literal taken verbatim, or a value re-encoded as one.
enum DataText<'a> {
    Literal(&'a RawValue),
    Encoded(Box<RawValue>),
}

impl DataText<'_> {
    fn raw(&self) -> &RawValue {
        match self {
            Self::Literal(raw) => raw,
            Self::Encoded(boxed) => boxed,
        }
    }
}

fn validate_event<'a>(app: &App, body: EventBody<'a>) -> Result<Event<'a>, ApiError> {
    if body.name.is_empty() || body.name.len() > MAX_EVENT_NAME_LEN {
        return Err(ApiError::BadRequest(format!(
            "event name must be 1 to {MAX_EVENT_NAME_LEN} characters"
        )));
    }
    let channels = match (body.channels, body.channel) {
        (Some(list), None) => list,
        (None, Some(one)) => vec![one],
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give either channel or channels, not both".into(),
            ))
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "channel or channels is required".into(),
            ))
        }
    };
    if channels.is_empty() || channels.len() > MAX_TRIGGER_CHANNELS {
        return Err(ApiError::BadRequest(format!(
            "an event goes to 1 to {MAX_TRIGGER_CHANNELS} channels"
        )));
    }
    for c in &channels {
        channel_param(c)?;
    }
    if let Some(s) = &body.socket_id {
        if !is_valid_socket_id(s) {
            return Err(ApiError::BadRequest(
                "socket_id must look like 123.456".into(),
            ));
        }
    }
    let raw = body.data.get();
    let len = wire::data_len(body.data);
    let data = if raw.starts_with('"') {
        DataText::Literal(body.data)
    } else {
        // Pusher's data is a string: a JSON value is sent as its text.
        let literal = wire::json(raw);
        let encoded =
            RawValue::from_string(literal).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        DataText::Encoded(encoded)
    };
    if len > app.max_payload_bytes() {
        return Err(ApiError::PayloadTooLarge(format!(
            "event data is {len} bytes, over the app's limit of {} bytes",
            app.max_payload_bytes()
        )));
    }
    let info = InfoWanted::parse(body.info.as_deref());
    if info.user_count
        && channels
            .iter()
            .any(|c| ChannelKind::of(c) != ChannelKind::Presence)
    {
        return Err(ApiError::BadRequest(
            "info=user_count is only for presence channels".into(),
        ));
    }
    Ok(Event {
        name: body.name,
        data,
        channels,
        socket_id: body.socket_id,
        info,
    })
}

/// Hands the event to the adapter once per channel (encoded once per channel there); the futures
/// resolve when the cluster has it, so the HTTP answer comes after that. Callers cork it
/// ([`Cork`]): this request's thread then writes the frames to the local subscribers itself.
fn queue_event(
    state: &ServerState,
    app: &Arc<App>,
    event: &Event<'_>,
) -> Vec<BoxFuture<'static, ()>> {
    event
        .channels
        .iter()
        .map(|channel| {
            let publish = Publish {
                event: &event.name,
                data: event.data.raw(),
                except: event.socket_id.as_deref(),
            };
            state.adapter.publish(app, channel, &publish)
        })
        .collect()
}

/// The requested `info` of each of the event's channels.
async fn channel_infos(
    state: &ServerState,
    app: &Arc<App>,
    event: &Event<'_>,
) -> Result<Map<String, Value>, ApiError> {
    let mut infos = Map::new();
    if event.info.any() {
        for channel in &event.channels {
            let info = state.adapter.channel_info(app, channel).await?;
            infos.insert(channel.clone(), Value::Object(event.info.render(info)));
        }
    }
    Ok(infos)
}

async fn trigger(State(state): AppState, req: Signed) -> ApiResult {
    let event = validate_event(&req.app, parse_json(&req.body)?)?;
    let queued = {
        let _cork = Cork::new();
        queue_event(&state, &req.app, &event)
    };
    join_all(queued).await;
    let infos = channel_infos(&state, &req.app, &event).await?;
    Ok(if event.info.any() {
        Json(json!({ "channels": infos }))
    } else {
        Json(json!({}))
    }
    .into_response())
}

async fn batch(State(state): AppState, req: Signed) -> ApiResult {
    #[derive(Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        batch: Vec<EventBody<'a>>,
    }
    let batch: Batch = parse_json(&req.body)?;
    if batch.batch.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "a batch holds at most {MAX_BATCH_EVENTS} events"
        )));
    }
    // Validate all before publishing any, so a bad entry never half-applies a batch.
    let events = batch
        .batch
        .into_iter()
        .map(|b| validate_event(&req.app, b))
        .collect::<Result<Vec<_>, _>>()?;
    let any_info = events.iter().any(|e| e.info.any());
    let sent: Vec<_> = {
        // A subscriber of several of the batch's events gets them in one write.
        let _cork = Cork::new();
        events
            .iter()
            .flat_map(|e| queue_event(&state, &req.app, e))
            .collect()
    };
    join_all(sent).await;
    let mut results = Vec::with_capacity(events.len());
    for e in &events {
        let infos = channel_infos(&state, &req.app, e).await?;
        // Pusher answers one object per event: that event's channel attributes.
        results.push(
            infos
                .into_iter()
                .next()
                .map_or_else(|| json!({}), |(_, v)| v),
        );
    }
    Ok(if any_info {
        Json(json!({ "batch": results }))
    } else {
        Json(json!({}))
    }
    .into_response())
}

async fn channels(State(state): AppState, req: Signed) -> ApiResult {
    let prefix = req
        .params
        .get("filter_by_prefix")
        .map_or("", String::as_str);
    let info = InfoWanted::parse(req.params.get("info").map(String::as_str));
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "info=user_count needs filter_by_prefix=presence-".into(),
        ));
    }
    let list: Map<String, Value> = state
        .adapter
        .channels(&req.app, prefix)
        .await?
        .into_iter()
        .map(|(name, i)| (name, Value::Object(info.render(i))))
        .collect();
    Ok(Json(json!({ "channels": list })).into_response())
}

async fn channel(
    State(state): AppState,
    ApiPath((_, name)): ApiPath<(String, String)>,
    req: Signed,
) -> ApiResult {
    let kind = channel_param(&name)?;
    let info = InfoWanted::parse(req.params.get("info").map(String::as_str));
    if info.user_count && kind != ChannelKind::Presence {
        return Err(ApiError::BadRequest(
            "info=user_count is only for presence channels".into(),
        ));
    }
    let i = state.adapter.channel_info(&req.app, &name).await?;
    let mut body = info.render(i);
    body.insert("occupied".into(), (i.subscription_count > 0).into());
    Ok(Json(Value::Object(body)).into_response())
}

async fn users(
    State(state): AppState,
    ApiPath((_, name)): ApiPath<(String, String)>,
    req: Signed,
) -> ApiResult {
    if channel_param(&name)? != ChannelKind::Presence {
        return Err(ApiError::BadRequest(
            "users can only be listed for presence channels".into(),
        ));
    }
    let users: Vec<Value> = state
        .adapter
        .user_ids(&req.app, &name)
        .await?
        .into_iter()
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(Json(json!({ "users": users })).into_response())
}

async fn terminate(
    State(state): AppState,
    ApiPath((_, user_id)): ApiPath<(String, String)>,
    req: Signed,
) -> ApiResult {
    if user_id.is_empty() {
        return Err(ApiError::BadRequest("user id is empty".into()));
    }
    state.adapter.terminate_user(&req.app, &user_id);
    Ok(Json(json!({})).into_response())
}

async fn history(
    State(state): AppState,
    ApiPath((_, name)): ApiPath<(String, String)>,
    req: Signed,
) -> ApiResult {
    channel_param(&name)?;
    if !req.app.history.applies_to(&name) {
        return Err(ApiError::BadRequest(format!(
            "channel {name:?} keeps no history (see history_size and history_channels)"
        )));
    }
    let limit = match req.params.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_HISTORY_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be 1 to {MAX_HISTORY_LIMIT}"))
            })?,
        None => 100,
    };
    let page = state.adapter.history(&req.app, &name, limit).await?;
    let events: Vec<&RawValue> = page
        .events
        .iter()
        .filter_map(|f| serde_json::from_str::<&RawValue>(f.as_str()).ok())
        .collect();
    Ok(
        Json(json!({ "channel": name, "position": page.position, "events": events }))
            .into_response(),
    )
}
