//! Wire types of the Pusher Channels protocol v7, shared by the Chorus server and the browser SDK.
//!
//! Module map:
//! - [`events`]: event names that travel on the socket (`pusher:*`, `pusher_internal:*`, `client-*`).
//! - [`channel`]: channel name rules and the kind of channel a name denotes.
//! - [`error`]: the protocol's numeric error codes (close codes and `pusher:error` codes).
//! - [`frame`]: the JSON envelopes (`{"event","channel","data"}`) and their payloads.
//! - [`sign`] (feature `sign`): HMAC-SHA256 signatures for channel auth, user sign-in and the HTTP API.
//!
//! The crate has no I/O and no async runtime, so it compiles for `wasm32-unknown-unknown`; it does not
//! pull in `serde_json` either, so the SDK can use the browser's own JSON.

pub mod channel;
pub mod error;
pub mod events;
pub mod frame;
#[cfg(feature = "sign")]
pub mod sign;

pub use channel::{is_cache_channel, ChannelKind, ChannelNameError, MAX_CHANNEL_NAME_LEN};
pub use error::ErrorCode;

/// The only protocol version this implementation speaks (pusher-js 7/8 send `protocol=7`).
pub const PROTOCOL_VERSION: u8 = 7;
/// Oldest protocol version still accepted: 5 and 6 differ from 7 only in details we do not use.
pub const MIN_PROTOCOL_VERSION: u8 = 5;

/// `socket_id` as Pusher defines it: two runs of digits joined by a dot (`^\d+\.\d+$`).
pub fn is_valid_socket_id(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_id_format() {
        assert!(is_valid_socket_id("123.456"));
        assert!(!is_valid_socket_id("123."));
        assert!(!is_valid_socket_id(".1"));
        assert!(!is_valid_socket_id("12a.4"));
        assert!(!is_valid_socket_id("1234"));
        assert!(!is_valid_socket_id("1.2.3"));
    }
}
