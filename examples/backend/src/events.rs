//! The broadcast events, named and shaped as a Laravel app's would be, so that Echo-style code
//! (`.listen('MessageSent', ...)`, `.notification(...)`) works unchanged.
//!
//! Publishing never fails a request: the message is already stored, and clients load what they
//! missed over HTTP when they (re)subscribe. Failures are logged.

use crate::chorus::Chorus;
use crate::db::{Message, User};
use serde_json::json;

async fn publish(
    chorus: &Chorus,
    channel: &str,
    event: &str,
    data: serde_json::Value,
    except: Option<&str>,
) {
    if let Err(e) = chorus.trigger(channel, event, &data, except).await {
        eprintln!("could not publish {event} on {channel}: {e}");
    }
}

/// `App\Events\MessageSent` on `private-chat.{chatId}`, to everyone but the sender's connection
/// (`toOthers()`: the sender's page already shows the message).
pub async fn message_sent(chorus: &Chorus, message: &Message, sender_socket: Option<&str>) {
    let channel = format!("private-chat.{}", message.chat_id);
    publish(
        chorus,
        &channel,
        "App\\Events\\MessageSent",
        json!({ "message": message }),
        sender_socket,
    )
    .await;
}

/// `App\Events\MessageRead` on `private-chat.{chatId}`: `user_id` has seen everything up to
/// `last_read_id`.
pub async fn message_read(
    chorus: &Chorus,
    chat_id: i64,
    user_id: i64,
    last_read_id: i64,
    reader_socket: Option<&str>,
) {
    let channel = format!("private-chat.{chat_id}");
    let data = json!({ "chat_id": chat_id, "user_id": user_id, "last_read_id": last_read_id });
    publish(
        chorus,
        &channel,
        "App\\Events\\MessageRead",
        data,
        reader_socket,
    )
    .await;
}

/// A Laravel broadcast notification (`NewMessage`) on the recipient's
/// `private-App.Models.User.{id}`: what `chorus.private('App.Models.User.1').notification(cb)` gets.
pub async fn notify_new_message(
    chorus: &Chorus,
    recipient_id: i64,
    sender: &User,
    message: &Message,
) {
    let channel = format!("private-App.Models.User.{recipient_id}");
    let preview: String = message.body.chars().take(120).collect();
    let data = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "App\\Notifications\\NewMessage",
        "chat_id": message.chat_id,
        "message_id": message.id,
        "from": { "id": sender.id, "name": sender.name },
        "preview": preview,
        "attachment": message.attachment.as_ref().map(|a| &a.name),
        "created_at": message.created_at,
    });
    publish(
        chorus,
        &channel,
        "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated",
        data,
        None,
    )
    .await;
}
