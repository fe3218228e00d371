//! Every error the server reports, and the one place each is mapped to its Pusher code or HTTP status.

use axum::extract::rejection::{
    BytesRejection, PathRejection, QueryRejection, RawPathParamsRejection,
};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chorus_protocol::{ChannelNameError, ErrorCode};

/// Client input quoted in an error: at most [`QUOTE_CHARS`] characters (then `…`), so that an
/// error never costs more than its input's first bytes, however much was sent.
pub fn quoted(input: &str) -> String {
    match input.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

pub const QUOTE_CHARS: usize = 64;

/// An error on a WebSocket connection: sent as `pusher:error`; fatal ones also close with the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("App key {0:?} does not exist")]
    AppNotFound(String),
    #[error("This app is disabled")]
    AppDisabled,
    #[error("No WebSocket endpoint at {0:?}: connect to /app/{{key}}")]
    PathNotFound(String),
    #[error("No protocol version given (pass ?protocol=7)")]
    NoProtocolVersion,
    #[error("Invalid protocol version {0:?}")]
    InvalidVersionString(String),
    #[error("Unsupported protocol version {0} (supported: 5 to 7)")]
    UnsupportedProtocolVersion(u32),
    #[error("Origin not allowed")]
    OriginNotAllowed,
    #[error("App is over its connection quota")]
    OverConnectionQuota,
    #[error("Server is over capacity")]
    OverCapacity,
    #[error("Over capacity: this address already holds {0} connections")]
    TooManyFromAddress(usize),
    #[error("Over capacity: this address connected more than {0} times in a minute")]
    ConnectingTooOften(u32),
    #[error("Connection could not keep up with its messages")]
    SlowConsumer,
    #[error("Server is shutting down, reconnect")]
    ShuttingDown,
    #[error("Pong reply not received in time")]
    PongNotReceived,
    #[error("Closed after inactivity: no subscription and nothing but heartbeats for {0} s")]
    Inactive(u64),
    #[error("Connection terminated by the app")]
    Terminated,
    #[error("Invalid JSON: {0}")]
    InvalidJson(String),
    #[error("Unknown event {0:?}")]
    UnknownEvent(String),
    #[error("Missing or invalid data for {0}")]
    InvalidData(&'static str),
    #[error("Invalid channel name: {0}")]
    InvalidChannel(#[from] ChannelNameError),
    #[error("Message is larger than the {0} bytes allowed")]
    MessageTooLarge(usize),
    #[error("Binary messages are not supported")]
    BinaryMessage,
    #[error("A text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("WebSocket protocol violation: {0}")]
    ProtocolViolation(String),
    #[error("Client events are not enabled for this app")]
    ClientEventsDisabled,
    #[error("Client events are only allowed on private and presence channels")]
    ClientEventWrongChannel,
    #[error("Client event rejected: not subscribed to {0:?}")]
    ClientEventNotSubscribed(String),
    #[error("Client event rejected: over the rate limit of {0} per second")]
    ClientEventRateLimited(u32),
    #[error("User authentication is not enabled for this app")]
    UserAuthenticationDisabled,
    #[error("Sign-in failed: {0}")]
    SigninFailed(&'static str),
}

impl ConnectionError {
    /// The Pusher code for this error.
    pub fn code(&self) -> ErrorCode {
        use ConnectionError::*;
        match self {
            AppNotFound(_) => ErrorCode::AppNotFound,
            AppDisabled => ErrorCode::AppDisabled,
            PathNotFound(_) => ErrorCode::PathNotFound,
            NoProtocolVersion => ErrorCode::NoProtocolVersion,
            InvalidVersionString(_) => ErrorCode::InvalidVersionString,
            UnsupportedProtocolVersion(_) => ErrorCode::UnsupportedProtocolVersion,
            OriginNotAllowed | Terminated | SigninFailed(_) | UserAuthenticationDisabled => {
                ErrorCode::Unauthorized
            }
            OverConnectionQuota => ErrorCode::OverConnectionQuota,
            OverCapacity | TooManyFromAddress(_) | ConnectingTooOften(_) | SlowConsumer => {
                ErrorCode::OverCapacity
            }
            ShuttingDown => ErrorCode::ReconnectImmediately,
            PongNotReceived => ErrorCode::PongNotReceived,
            Inactive(_) => ErrorCode::ClosedAfterInactivity,
            InvalidJson(_) | UnknownEvent(_) | InvalidData(_) | InvalidChannel(_)
            | MessageTooLarge(_) | BinaryMessage | InvalidUtf8 | ProtocolViolation(_) => {
                ErrorCode::InvalidMessage
            }
            ClientEventsDisabled
            | ClientEventWrongChannel
            | ClientEventNotSubscribed(_)
            | ClientEventRateLimited(_) => ErrorCode::ClientEventRejected,
        }
    }

    /// The close code when this error ends a connection: the Pusher code of a fatal error, else
    /// what RFC 6455 says for the WebSocket-level ones.
    pub fn close_code(&self) -> u16 {
        match self {
            _ if self.is_fatal() => self.code().code(),
            Self::InvalidUtf8 => 1007,
            Self::ProtocolViolation(_) => 1002,
            Self::MessageTooLarge(_) => 1009,
            // Not one that ends a connection; "policy violation" if it ever does.
            _ => 1008,
        }
    }

    /// Whether the connection is closed (with [`Self::code`] as close code) after reporting it.
    pub fn is_fatal(&self) -> bool {
        use ConnectionError::*;
        matches!(
            self,
            AppNotFound(_)
                | AppDisabled
                | PathNotFound(_)
                | NoProtocolVersion
                | InvalidVersionString(_)
                | UnsupportedProtocolVersion(_)
                | OriginNotAllowed
                | OverConnectionQuota
                | OverCapacity
                | TooManyFromAddress(_)
                | ConnectingTooOften(_)
                | SlowConsumer
                | ShuttingDown
                | PongNotReceived
                | Inactive(_)
                | Terminated
        )
    }
}

/// Why the cluster adapter cannot answer for the cluster right now (an HTTP API query answers 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster state unavailable: {0}")]
pub struct AdapterError(pub String);

/// Why a `pusher:subscribe` was refused: answered with `pusher:subscription_error` on that channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("Missing auth signature for channel")]
    MissingAuth,
    #[error("Invalid signature")]
    InvalidSignature,
    #[error("Invalid channel_data: {0}")]
    InvalidChannelData(&'static str),
    #[error("Connection is not signed in as this channel's user")]
    NotSignedInAsUser,
    #[error("Connection is at its limit of {0} subscriptions")]
    TooManySubscriptions(usize),
    #[error("App is at its limit of {0} channels")]
    TooManyChannels(usize),
    #[error("Presence channel is full ({0} members)")]
    PresenceFull(usize),
    #[error("user_info is larger than the {0} bytes allowed")]
    UserInfoTooLarge(usize),
}

impl SubscriptionError {
    /// HTTP-like status carried in the error (what pusher-js and Echo show the app).
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingAuth | Self::InvalidSignature => 401,
            Self::InvalidChannelData(_) => 400,
            Self::NotSignedInAsUser => 403,
            Self::UserInfoTooLarge(_) => 413,
            Self::TooManySubscriptions(_) | Self::TooManyChannels(_) | Self::PresenceFull(_) => 429,
        }
    }

    /// The error's `type`: `AuthError` for refused authorization, `LimitReached` for a limit.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingAuth
            | Self::InvalidSignature
            | Self::InvalidChannelData(_)
            | Self::NotSignedInAsUser => "AuthError",
            Self::TooManySubscriptions(_)
            | Self::TooManyChannels(_)
            | Self::PresenceFull(_)
            | Self::UserInfoTooLarge(_) => "LimitReached",
        }
    }
}

/// An HTTP API error; the response is `{"error": "<message>"}` with the status below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("Unknown app id {0:?}")]
    AppNotFound(String),
    #[error("App {0:?} is disabled")]
    AppDisabled(String),
    #[error("Authentication failed: {0}")]
    Unauthorized(String),
    #[error("Bad request: {0}")]
    BadRequest(String),
    #[error("Payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("Request body not received within {0} s")]
    RequestTimeout(u64),
    #[error("Too many requests: over the app's limit of {limit} per second")]
    TooManyRequests { limit: u32, retry_after: u64 },
    #[error("Not found")]
    NotFound,
    #[error("Method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    /// A request one of axum's extractors refused (bad path parameter, not a WebSocket upgrade…),
    /// with the status axum chose for it.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{0}")]
    Unavailable(#[from] AdapterError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AppNotFound(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::AppDisabled(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Rejected { status, .. } => *status,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// axum's extractor rejections answer in plain text; these make them JSON like every API error.
macro_rules! rejections_are_api_errors {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(r: $rejection) -> Self {
                Self::Rejected { status: r.status(), message: r.body_text() }
            }
        }
    )*};
}
rejections_are_api_errors!(
    PathRejection,
    RawPathParamsRejection,
    QueryRejection,
    WebSocketUpgradeRejection
);

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("request body is over the server's limit".into())
            }
            _ => Self::BadRequest(e.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        let mut res = (self.status(), axum::Json(body)).into_response();
        if let Self::TooManyRequests { retry_after, .. } = self {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        res
    }
}
