//! The protocol's numeric error codes, used both as WebSocket close codes and in `pusher:error`.
//!
//! Ranges tell clients what to do after a close: 4000-4099 do not reconnect, 4100-4199 reconnect
//! after backing off, 4200-4299 reconnect at once, 4300-4399 other errors.

/// A Pusher protocol error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// 4001: no app with this key.
    AppNotFound = 4001,
    /// 4003: the app exists but is disabled.
    AppDisabled = 4003,
    /// 4004: the app has as many connections as its quota allows.
    OverConnectionQuota = 4004,
    /// 4005: the WebSocket path is not `/app/{key}`.
    PathNotFound = 4005,
    /// 4006: the `protocol` query parameter is not a number.
    InvalidVersionString = 4006,
    /// 4007: the protocol version is not supported.
    UnsupportedProtocolVersion = 4007,
    /// 4008: no `protocol` query parameter.
    NoProtocolVersion = 4008,
    /// 4009: not authorized (origin not allowed, connection terminated by the app).
    Unauthorized = 4009,
    /// 4100: the server is over capacity, or this connection could not keep up with its messages.
    OverCapacity = 4100,
    /// 4200: generic "reconnect now", sent when the server shuts down.
    ReconnectImmediately = 4200,
    /// 4201: the client did not answer a ping in time.
    PongNotReceived = 4201,
    /// 4202: closed after inactivity.
    ClosedAfterInactivity = 4202,
    /// 4300: a malformed or unknown message (bad JSON, unknown event, invalid channel, too large).
    InvalidMessage = 4300,
    /// 4301: a client event was rejected (rate limit, not enabled, not subscribed, wrong channel kind).
    ClientEventRejected = 4301,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        self as u16
    }
}
