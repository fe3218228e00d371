//! Event names used on the WebSocket.

pub const CONNECTION_ESTABLISHED: &str = "pusher:connection_established";
pub const ERROR: &str = "pusher:error";
pub const PING: &str = "pusher:ping";
pub const PONG: &str = "pusher:pong";
pub const SUBSCRIBE: &str = "pusher:subscribe";
pub const UNSUBSCRIBE: &str = "pusher:unsubscribe";
pub const SUBSCRIPTION_ERROR: &str = "pusher:subscription_error";
pub const SIGNIN: &str = "pusher:signin";
pub const SIGNIN_SUCCESS: &str = "pusher:signin_success";

pub const SUBSCRIPTION_SUCCEEDED: &str = "pusher_internal:subscription_succeeded";
pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
pub const MEMBER_REMOVED: &str = "pusher_internal:member_removed";
/// The signed-in user's watchlist: who came online or went offline (no channel).
pub const WATCHLIST_EVENTS: &str = "pusher_internal:watchlist_events";

/// Prefix of events that clients send to each other (whisper).
pub const CLIENT_EVENT_PREFIX: &str = "client-";

/// True for an event name a client may send to other clients.
pub fn is_client_event(name: &str) -> bool {
    name.starts_with(CLIENT_EVENT_PREFIX)
}
