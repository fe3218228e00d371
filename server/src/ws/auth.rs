//! Who may subscribe where and sign in as whom: pure checks of the signatures an app's backend
//! made (Pusher's `auth` and `user_data` signing), over the app's config and the socket id.

use chorus_protocol::channel::server_to_user_id;
use chorus_protocol::frame::{SigninData, SubscribeData};
use chorus_protocol::{sign, ChannelKind};

use crate::config::AppConfig;
use crate::error::{ConnectionError, SubscriptionError};
use crate::hub::presence::PresenceMember;

/// Checks a subscription of `socket_id` (signed in as `user_id`, if it is); for presence returns
/// who joins.
pub fn authorize(
    cfg: &AppConfig,
    socket_id: &str,
    user_id: Option<&str>,
    kind: ChannelKind,
    data: &SubscribeData,
) -> Result<Option<PresenceMember>, SubscriptionError> {
    match kind {
        ChannelKind::Public => Ok(None),
        ChannelKind::ServerToUser => {
            let wanted = server_to_user_id(&data.channel);
            if wanted.is_some() && wanted == user_id {
                Ok(None)
            } else {
                Err(SubscriptionError::NotSignedInAsUser)
            }
        }
        ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence => {
            let auth = data.auth.as_deref().ok_or(SubscriptionError::MissingAuth)?;
            let channel_data = data.channel_data.as_deref();
            if kind == ChannelKind::Presence && channel_data.is_none() {
                return Err(SubscriptionError::InvalidChannelData(
                    "presence channels need channel_data",
                ));
            }
            let signed_data = if kind == ChannelKind::Presence {
                channel_data
            } else {
                None
            };
            if !sign::verify_channel(
                &cfg.key,
                &cfg.secret,
                socket_id,
                &data.channel,
                signed_data,
                auth,
            ) {
                return Err(SubscriptionError::InvalidSignature);
            }
            match signed_data {
                Some(cd) => PresenceMember::parse(cd).map(Some),
                None => Ok(None),
            }
        }
    }
}

/// Checks a `pusher:signin`; returns the user id it signs in as.
pub fn verify_signin(
    cfg: &AppConfig,
    socket_id: &str,
    data: &SigninData,
) -> Result<String, ConnectionError> {
    if !cfg.enable_user_authentication {
        return Err(ConnectionError::UserAuthenticationDisabled);
    }
    if !sign::verify_user(
        &cfg.key,
        &cfg.secret,
        socket_id,
        &data.user_data,
        &data.auth,
    ) {
        return Err(ConnectionError::SigninFailed("invalid signature"));
    }
    #[derive(serde::Deserialize)]
    struct UserData {
        id: String,
    }
    let user: UserData = serde_json::from_str(&data.user_data).map_err(|_| {
        ConnectionError::SigninFailed("user_data must be a JSON object with a string id")
    })?;
    if user.id.is_empty() {
        return Err(ConnectionError::SigninFailed("user id is empty"));
    }
    Ok(user.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribe(channel: &str, auth: Option<String>, channel_data: Option<&str>) -> SubscribeData {
        SubscribeData {
            channel: channel.into(),
            auth,
            channel_data: channel_data.map(Into::into),
            recover: None,
        }
    }

    #[test]
    fn private_and_presence_need_the_backends_signature() {
        let cfg = AppConfig::development();
        let sock = "1.2";
        let sig = |channel: &str, cd: Option<&str>| {
            Some(sign::sign_channel(&cfg.key, &cfg.secret, sock, channel, cd))
        };
        let private = subscribe("private-a", sig("private-a", None), None);
        assert!(matches!(
            authorize(&cfg, sock, None, ChannelKind::Private, &private),
            Ok(None)
        ));
        assert!(matches!(
            authorize(&cfg, "9.9", None, ChannelKind::Private, &private),
            Err(SubscriptionError::InvalidSignature)
        ));
        let cd = r#"{"user_id":7}"#;
        let presence = subscribe("presence-r", sig("presence-r", Some(cd)), Some(cd));
        let member = authorize(&cfg, sock, None, ChannelKind::Presence, &presence).unwrap();
        assert_eq!(member.unwrap().user_id, "7");
        let user = subscribe("#server-to-user-7", None, None);
        assert!(authorize(&cfg, sock, Some("7"), ChannelKind::ServerToUser, &user).is_ok());
        assert!(matches!(
            authorize(&cfg, sock, Some("8"), ChannelKind::ServerToUser, &user),
            Err(SubscriptionError::NotSignedInAsUser)
        ));
    }
}
