//! Who is signed in, and who may subscribe to which channel.
//!
//! Signing in is "sign in as one of the demo users": `POST /api/login {user_id}` returns a random
//! token that the app sends as `Authorization: Bearer <token>` (also to `/broadcasting/auth`).
//! `channel_access` is this app's `routes/channels.php`.

use crate::db::User;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// The signed-in user of a request; answers 401 when there is none.
pub struct CurrentUser {
    pub user: User,
    pub token: String,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<CurrentUser> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError(StatusCode::UNAUTHORIZED, "sign in first".into()))?;
        let user = state
            .db
            .session_user(token)?
            .ok_or(ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()))?;
        // Every request counts as activity (like a Laravel "last seen" middleware).
        state.db.touch(&[user.id])?;
        Ok(CurrentUser {
            user,
            token: token.to_string(),
        })
    }
}

#[derive(Deserialize)]
pub struct LoginRequest {
    user_id: i64,
}

/// `POST /api/login {user_id}` → `{token, user}`.
pub async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<Value>> {
    let user = state
        .db
        .user(req.user_id)?
        .ok_or_else(ApiError::not_found)?;
    let token = state.db.create_session(user.id)?;
    state.db.touch(&[user.id])?;
    Ok(Json(json!({ "token": token, "user": user })))
}

/// `POST /api/logout`.
pub async fn logout(State(state): State<AppState>, me: CurrentUser) -> ApiResult<StatusCode> {
    state.db.delete_session(&me.token)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/me`.
pub async fn me(me: CurrentUser) -> Json<User> {
    Json(me.user)
}

/// What a user may do with a channel.
enum Access {
    Private,
    /// A presence channel, with the `user_info` the other members see.
    Presence(Value),
    Denied,
}

/// The authorization rules, one line per channel pattern.
fn channel_access(state: &AppState, user: &User, channel: &str) -> ApiResult<Access> {
    let is_member = |chat: &str| -> ApiResult<bool> {
        match chat.parse::<i64>() {
            Ok(chat_id) => Ok(state.db.is_member(chat_id, user.id)?),
            Err(_) => Ok(false),
        }
    };
    let allow = |allowed: bool, access: Access| if allowed { access } else { Access::Denied };
    let me = json!({ "id": user.id, "name": user.name });

    Ok(
        if let Some(id) = channel.strip_prefix("private-App.Models.User.") {
            allow(id == user.id.to_string(), Access::Private) // notifications: that user only
        } else if let Some(chat) = channel.strip_prefix("private-chat.") {
            allow(is_member(chat)?, Access::Private)
        } else if channel == crate::last_seen::ONLINE {
            Access::Presence(me) // anyone signed in
        } else if let Some(chat) = channel.strip_prefix("presence-chat.") {
            allow(is_member(chat)?, Access::Presence(me))
        } else {
            Access::Denied
        },
    )
}

#[derive(Deserialize)]
pub struct ChannelAuthRequest {
    socket_id: String,
    channel_name: String,
}

/// Reads a form-encoded body (what the SDK and pusher-js send) or a JSON one.
async fn form_or_json<T: serde::de::DeserializeOwned + 'static>(request: Request) -> ApiResult<T> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bad = |e: String| ApiError::bad_request(e);
    if is_json {
        Ok(Json::<T>::from_request(request, &())
            .await
            .map_err(|e| bad(e.body_text()))?
            .0)
    } else {
        Ok(Form::<T>::from_request(request, &())
            .await
            .map_err(|e| bad(e.body_text()))?
            .0)
    }
}

/// `POST /broadcasting/auth` (the SDK's `authEndpoint`): `{auth}` for private channels,
/// `{auth, channel_data}` for presence channels, 403 when the user may not subscribe.
pub async fn broadcasting_auth(
    State(state): State<AppState>,
    me: CurrentUser,
    request: Request,
) -> ApiResult<Json<Value>> {
    let req: ChannelAuthRequest = form_or_json(request).await?;
    if !crate::chorus::valid_socket_id(&req.socket_id) {
        return Err(ApiError::bad_request("invalid socket_id"));
    }
    match channel_access(&state, &me.user, &req.channel_name)? {
        Access::Private => {
            let auth = state
                .chorus
                .authorize_channel(&req.socket_id, &req.channel_name, None);
            Ok(Json(json!({ "auth": auth })))
        }
        Access::Presence(user_info) => {
            let channel_data =
                json!({ "user_id": me.user.id.to_string(), "user_info": user_info }).to_string();
            let auth = state.chorus.authorize_channel(
                &req.socket_id,
                &req.channel_name,
                Some(&channel_data),
            );
            Ok(Json(json!({ "auth": auth, "channel_data": channel_data })))
        }
        Access::Denied => Err(ApiError::forbidden()),
    }
}

#[derive(Deserialize)]
pub struct UserAuthRequest {
    socket_id: String,
}

/// `POST /broadcasting/user-auth` (the SDK's `signin()`): `{auth, user_data}`.
pub async fn user_auth(
    State(state): State<AppState>,
    me: CurrentUser,
    request: Request,
) -> ApiResult<Json<Value>> {
    let req: UserAuthRequest = form_or_json(request).await?;
    if !crate::chorus::valid_socket_id(&req.socket_id) {
        return Err(ApiError::bad_request("invalid socket_id"));
    }
    let user_data = json!({ "id": me.user.id.to_string(), "name": me.user.name }).to_string();
    let auth = state.chorus.authenticate_user(&req.socket_id, &user_data);
    Ok(Json(json!({ "auth": auth, "user_data": user_data })))
}
