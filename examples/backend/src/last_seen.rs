//! "Last seen": every API request marks the user as seen (see `auth::CurrentUser`), and Chorus
//! tells this backend when someone opens or closes the app: it POSTs `member_added` /
//! `member_removed` webhooks for `presence-online` (configure `[[apps.webhooks]]` with this
//! route's URL, see examples/chorus.toml), signed with the app secret. A member removed is
//! marked as seen at that moment, even if the browser crashed (Chorus notices the socket is gone).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::AppState;

/// The presence channel every signed-in tab joins.
pub const ONLINE: &str = "presence-online";

#[derive(Deserialize)]
struct Webhook {
    events: Vec<WebhookEvent>,
}

#[derive(Deserialize)]
struct WebhookEvent {
    name: String,
    channel: String,
    #[serde(default)]
    user_id: Option<String>,
}

/// `POST /pusher/webhook`: 401 unless Chorus signed it; 200 once recorded.
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !state
        .chorus
        .webhook_is_valid(header("x-pusher-key"), header("x-pusher-signature"), &body)
    {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(hook) = serde_json::from_slice::<Webhook>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let seen: Vec<i64> = hook
        .events
        .iter()
        .filter(|e| {
            e.channel == ONLINE && matches!(e.name.as_str(), "member_added" | "member_removed")
        })
        .filter_map(|e| e.user_id.as_deref()?.parse().ok())
        .collect();
    match state.db.touch(&seen) {
        Ok(()) => StatusCode::OK,
        // Chorus retries a failed delivery.
        Err(e) => {
            eprintln!("could not record last seen: {e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
