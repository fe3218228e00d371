//! Channel names: which names are valid and what kind of channel each denotes.

/// Longest channel name accepted, prefix included.
pub const MAX_CHANNEL_NAME_LEN: usize = 200;

const PRIVATE_ENCRYPTED: &str = "private-encrypted-";
const PRIVATE: &str = "private-";
const PRESENCE: &str = "presence-";
/// Channel a signed-in user's connections subscribe to; the backend's `sendToUser` targets it.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel name means for authorization and fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Anyone with the app key may subscribe.
    Public,
    /// `private-…`: subscription needs a signature from the app's backend.
    Private,
    /// `private-encrypted-…`: authorized like private; payloads are end-to-end encrypted by clients.
    PrivateEncrypted,
    /// `presence-…`: authorized, and subscribers are tracked as members with `user_info`.
    Presence,
    /// `#server-to-user-{id}`: only connections signed in as user `{id}` may subscribe.
    ServerToUser,
}

impl ChannelKind {
    /// Kind of a (syntactically valid) channel name.
    pub fn of(name: &str) -> Self {
        if name.starts_with(PRIVATE_ENCRYPTED) {
            Self::PrivateEncrypted
        } else if name.starts_with(PRIVATE) {
            Self::Private
        } else if name.starts_with(PRESENCE) {
            Self::Presence
        } else if name.starts_with(SERVER_TO_USER_PREFIX) {
            Self::ServerToUser
        } else {
            Self::Public
        }
    }

    /// Whether subscribing needs an `auth` signature.
    pub fn requires_auth(self) -> bool {
        matches!(
            self,
            Self::Private | Self::PrivateEncrypted | Self::Presence
        )
    }

    /// Whether clients may send `client-*` events on it (Pusher: private and presence only).
    pub fn allows_client_events(self) -> bool {
        matches!(self, Self::Private | Self::Presence)
    }
}

/// Whether `name` is a cache channel (`cache-`, `private-cache-`, `private-encrypted-cache-`,
/// `presence-cache-`): its last event is kept and sent to each new subscriber.
pub fn is_cache_channel(name: &str) -> bool {
    let rest = name
        .strip_prefix(PRIVATE_ENCRYPTED)
        .or_else(|| name.strip_prefix(PRIVATE))
        .or_else(|| name.strip_prefix(PRESENCE))
        .unwrap_or(name);
    rest.starts_with("cache-")
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {MAX_CHANNEL_NAME_LEN} characters")]
    TooLong,
    #[error("channel name contains a character outside [A-Za-z0-9_-=@,.;]")]
    InvalidCharacter,
}

/// Checks a channel name against Pusher's rules: 1 to 200 characters from `[A-Za-z0-9_\-=@,.;]`,
/// except the `#` of the reserved `#server-to-user-` prefix.
pub fn validate_channel_name(name: &str) -> Result<ChannelKind, ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > MAX_CHANNEL_NAME_LEN {
        return Err(ChannelNameError::TooLong);
    }
    let rest = name.strip_prefix(SERVER_TO_USER_PREFIX).unwrap_or(name);
    if rest.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    let ok = rest.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
    });
    if !ok {
        return Err(ChannelNameError::InvalidCharacter);
    }
    Ok(ChannelKind::of(name))
}

/// The user id a `#server-to-user-{id}` channel belongs to.
pub fn server_to_user_id(name: &str) -> Option<&str> {
    name.strip_prefix(SERVER_TO_USER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_channels_of_every_kind() {
        for name in [
            "cache-a",
            "private-cache-a",
            "private-encrypted-cache-a",
            "presence-cache-a",
        ] {
            assert!(is_cache_channel(name), "{name}");
        }
        for name in [
            "a-cache-b",
            "private-a",
            "presence-cachex",
            "private-encrypted-a",
        ] {
            assert!(!is_cache_channel(name), "{name}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(ChannelKind::of("chat.1"), ChannelKind::Public);
        assert_eq!(ChannelKind::of("private-chat.1"), ChannelKind::Private);
        assert_eq!(
            ChannelKind::of("private-encrypted-x"),
            ChannelKind::PrivateEncrypted
        );
        assert_eq!(ChannelKind::of("presence-room"), ChannelKind::Presence);
        assert_eq!(
            ChannelKind::of("#server-to-user-7"),
            ChannelKind::ServerToUser
        );
    }

    #[test]
    fn names() {
        assert!(validate_channel_name("App.Models.User.1").is_ok());
        assert!(validate_channel_name("a-b_c=d@e,f.g;h").is_ok());
        assert_eq!(validate_channel_name(""), Err(ChannelNameError::Empty));
        assert_eq!(
            validate_channel_name("a b"),
            Err(ChannelNameError::InvalidCharacter)
        );
        assert_eq!(
            validate_channel_name("#x"),
            Err(ChannelNameError::InvalidCharacter)
        );
        assert_eq!(
            validate_channel_name("#server-to-user-"),
            Err(ChannelNameError::Empty)
        );
        assert!(validate_channel_name(&"a".repeat(200)).is_ok());
        assert_eq!(
            validate_channel_name(&"a".repeat(201)),
            Err(ChannelNameError::TooLong)
        );
        assert_eq!(
            validate_channel_name("é"),
            Err(ChannelNameError::InvalidCharacter)
        );
    }
}
