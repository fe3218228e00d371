//! The app's HTTP API: users, chats, messages, read markers and attachments.

use crate::auth::CurrentUser;
use crate::db::{Message, NewAttachment, User};
use crate::error::{ApiError, ApiResult};
use crate::{events, AppState};
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest message text, in characters (Chorus limits event data to 10 KB by default).
const MAX_BODY_CHARS: usize = 1000;

fn ensure_member(state: &AppState, chat_id: i64, user_id: i64) -> ApiResult<()> {
    if state.db.is_member(chat_id, user_id)? {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// The socket id the SDK's connection has (`X-Socket-ID`), for `toOthers()`.
fn sender_socket(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-socket-id").and_then(|v| v.to_str().ok())
}

/// `GET /api/users`: everyone, with `last_seen`.
pub async fn users(State(state): State<AppState>, _me: CurrentUser) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(state.db.users()?))
}

/// `GET /api/chats`: my chats with the other person, the last message and my unread count.
pub async fn chats(State(state): State<AppState>, me: CurrentUser) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.db.chats_of(me.user.id)?)))
}

/// `GET /api/chats/{id}/messages`: the history, and how far each member has read.
pub async fn messages(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(chat_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    ensure_member(&state, chat_id, me.user.id)?;
    let members = state.db.members(chat_id)?;
    let messages = state.db.messages(chat_id, 200)?;
    Ok(Json(
        json!({ "chat_id": chat_id, "members": members, "messages": messages }),
    ))
}

/// Keeps the last path component of an uploaded file's name, without control characters.
fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    if clean.trim().is_empty() {
        "file".into()
    } else {
        clean
    }
}

/// `POST /api/chats/{id}/messages` (multipart: `body`, optional `file`): stores the message, then
/// broadcasts it to the chat (except the sender's connection) and notifies the other member.
pub async fn send_message(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(chat_id): Path<i64>,
    headers: HeaderMap,
    mut form: Multipart,
) -> ApiResult<(StatusCode, Json<Message>)> {
    ensure_member(&state, chat_id, me.user.id)?;
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::bad_request(e.body_text());
    let mut body = String::new();
    let mut attachment = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("body") => body = field.text().await.map_err(bad)?,
            Some("file") => {
                let name = clean_file_name(field.file_name().unwrap_or("file"));
                let bytes = field.bytes().await.map_err(bad)?;
                if bytes.is_empty() {
                    continue;
                }
                let file = uuid::Uuid::new_v4().simple().to_string();
                tokio::fs::write(state.uploads.join(&file), &bytes)
                    .await
                    .map_err(|e| {
                        eprintln!("could not store an upload: {e}");
                        ApiError(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "could not store the file".into(),
                        )
                    })?;
                attachment = Some(NewAttachment {
                    name,
                    file,
                    size: bytes.len() as i64,
                });
            }
            _ => {}
        }
    }
    let body = body.trim();
    if body.is_empty() && attachment.is_none() {
        return Err(ApiError::bad_request("a message needs text or a file"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::bad_request(format!(
            "messages are at most {MAX_BODY_CHARS} characters"
        )));
    }

    let message = state
        .db
        .insert_message(chat_id, me.user.id, body, attachment)?;
    events::message_sent(&state.chorus, &message, sender_socket(&headers)).await;
    for member in state.db.members(chat_id)? {
        if member.id != me.user.id {
            events::notify_new_message(&state.chorus, member.id, &me.user, &message).await;
        }
    }
    Ok((StatusCode::CREATED, Json(message)))
}

#[derive(Deserialize)]
pub struct ReadRequest {
    message_id: i64,
}

/// `POST /api/chats/{id}/read {message_id}`: I have seen the chat up to `message_id`; the other
/// member's page shows "Read" under their messages.
pub async fn mark_read(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(chat_id): Path<i64>,
    headers: HeaderMap,
    Json(req): Json<ReadRequest>,
) -> ApiResult<StatusCode> {
    ensure_member(&state, chat_id, me.user.id)?;
    if let Some(last_read_id) = state.db.mark_read(chat_id, me.user.id, req.message_id)? {
        events::message_read(
            &state.chorus,
            chat_id,
            me.user.id,
            last_read_id,
            sender_socket(&headers),
        )
        .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `filename*=` needs percent-encoding of everything but a few ASCII characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/files/{file}`: an attachment, as a download under its original name, for the members
/// of the chat it was sent in (the app fetches it with its token, as every other request).
pub async fn file(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(file): Path<String>,
) -> ApiResult<impl IntoResponse> {
    if file.len() != 32 || !file.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found());
    }
    let (name, chat_id) = state
        .db
        .attachment(&file)?
        .ok_or_else(ApiError::not_found)?;
    ensure_member(&state, chat_id, me.user.id)?;
    let bytes = tokio::fs::read(state.uploads.join(&file))
        .await
        .map_err(|_| ApiError::not_found())?;
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        percent_encode(&name)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    ))
}
