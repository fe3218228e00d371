//! The Pusher HTTP API (`/apps/{app_id}/...`): signed requests from backends (Laravel's pusher
//! driver, the `pusher` server SDKs) to publish events and query channels.
//!
//! Every request is checked by [`authenticate`]: app id, `auth_key`, `auth_timestamp` within
//! 600 s, `body_md5` of a non-empty body, and `auth_signature` (HMAC-SHA256 of
//! `METHOD\nPATH\nsorted-query`), compared in constant time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{
    FromRequest, FromRequestParts, OriginalUri, Path, RawPathParams, Request, State,
};
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chorus_protocol::channel::validate_channel_name;
use chorus_protocol::{is_valid_socket_id, sign, ChannelKind};
use futures_util::future::{join_all, BoxFuture};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::adapter::Publish;
use crate::app::App;
use crate::channels::ChannelInfo;
use crate::error::ApiError;
use crate::outbound::Cork;
use crate::state::ServerState;
use crate::wire;

/// How far `auth_timestamp` may be from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;
/// Most channels one trigger may target.
pub const MAX_TRIGGER_CHANNELS: usize = 100;
/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10;
/// Longest event name.
pub const MAX_EVENT_NAME_LEN: usize = 200;

type AppState = State<Arc<ServerState>>;
type ApiResult = Result<Response, ApiError>;

/// [`Path`] whose rejection (e.g. a parameter that is not UTF-8) is a JSON [`ApiError`].
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Self(Path::<T>::from_request_parts(parts, state).await?.0))
    }
}

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

/// A request that passed [`authenticate`]: the app, the decoded query parameters and the body.
/// Taking it as a handler argument is what makes an endpoint signed.
struct Signed {
    app: Arc<App>,
    params: HashMap<String, String>,
    body: Bytes,
}

impl FromRequest<Arc<ServerState>> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let path_params = RawPathParams::from_request_parts(&mut parts, state).await?;
        let app_id = path_params
            .iter()
            .find(|(k, _)| *k == "app_id")
            .map(|(_, v)| v.to_owned())
            .ok_or(ApiError::NotFound)?;
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let method = parts.method.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state).await?;
        let (app, params) = authenticate(state, &app_id, &method, &uri, &body)?;
        Ok(Self { app, params, body })
    }
}

fn authenticate(
    state: &ServerState,
    app_id: &str,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<(Arc<App>, HashMap<String, String>), ApiError> {
    let app = state
        .apps
        .by_id(app_id)
        .ok_or_else(|| ApiError::AppNotFound(app_id.to_owned()))?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    let get = |k: &str| params.get(k).map(String::as_str);
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());

    if get("auth_key") != Some(app.config.key.as_str()) {
        return Err(unauthorized(
            "auth_key is missing or does not match the app",
        ));
    }
    let ts: u64 = get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| unauthorized("auth_timestamp is missing or not a number"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.abs_diff(ts) > MAX_CLOCK_SKEW_SECS {
        return Err(unauthorized(
            "auth_timestamp is more than 600 seconds from the server's clock",
        ));
    }
    if get("auth_version").is_some_and(|v| v != "1.0") {
        return Err(unauthorized("auth_version must be 1.0"));
    }
    if !body.is_empty() {
        match get("body_md5") {
            Some(md5) if md5.eq_ignore_ascii_case(&sign::md5_hex(body)) => {}
            Some(_) => return Err(unauthorized("body_md5 does not match the body")),
            None => return Err(unauthorized("body_md5 is missing")),
        }
    }
    let signature =
        get("auth_signature").ok_or_else(|| unauthorized("auth_signature is missing"))?;
    let to_sign = sign::api_string_to_sign(
        method.as_str(),
        uri.path(),
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if !sign::verify_hex(&app.config.secret, &to_sign, signature) {
        return Err(unauthorized("invalid auth_signature"));
    }
    Ok((Arc::clone(app), params))
}

/// A channel name from the path, checked.
fn channel_param(name: &str) -> Result<ChannelKind, ApiError> {
    validate_channel_name(name).map_err(|e| ApiError::BadRequest(format!("channel {name:?}: {e}")))
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
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
        validate_channel_name(c)
            .map_err(|e| ApiError::BadRequest(format!("channel {c:?}: {e}")))?;
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
        let literal = serde_json::to_string(raw).unwrap_or_default();
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

/// Most events one history request returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;

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
