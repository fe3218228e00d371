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
/// The most user ids a sign-in may watch (Pusher's limit).
pub const MAX_WATCHLIST: usize = 100;

/// Who signed in, and whom they watch.
#[derive(Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub user_id: String,
    pub watchlist: Vec<String>,
}

pub fn verify_signin(
    cfg: &AppConfig,
    socket_id: &str,
    data: &SigninData,
) -> Result<SignedIn, ConnectionError> {
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
        #[serde(default)]
        watchlist: Vec<String>,
    }
    let user: UserData = serde_json::from_str(&data.user_data).map_err(|_| {
        ConnectionError::SigninFailed(
            "user_data must be a JSON object with a string id (and a watchlist of string ids)",
        )
    })?;
    if user.id.is_empty() {
        return Err(ConnectionError::SigninFailed("user id is empty"));
    }
    if user.watchlist.len() > MAX_WATCHLIST {
        return Err(ConnectionError::SigninFailed(
            "the watchlist has more than 100 user ids",
        ));
    }
    let mut watchlist = user.watchlist;
    watchlist.sort_unstable();
    watchlist.dedup();
    Ok(SignedIn {
        user_id: user.id,
        watchlist,
    })
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

    #[test]
    fn a_signin_carries_its_watchlist_deduplicated_and_bounded() {
        let cfg = AppConfig::development();
        let sock = "1.2";
        let signin = |user_data: String| {
            let auth = sign::sign_user(&cfg.key, &cfg.secret, sock, &user_data);
            verify_signin(&cfg, sock, &SigninData { auth, user_data })
        };
        let signed = signin(r#"{"id":"a","watchlist":["c","b","c"]}"#.into()).unwrap();
        assert_eq!(signed.user_id, "a");
        assert_eq!(signed.watchlist, ["b", "c"]);
        assert!(signin(r#"{"id":"a"}"#.into()).unwrap().watchlist.is_empty());
        let ids: Vec<String> = (0..=MAX_WATCHLIST).map(|i| i.to_string()).collect();
        let many = format!(
            r#"{{"id":"a","watchlist":{}}}"#,
            serde_json::to_string(&ids).unwrap()
        );
        assert!(matches!(
            signin(many),
            Err(ConnectionError::SigninFailed(_))
        ));
        assert!(signin(r#"{"id":"a","watchlist":[1]}"#.into()).is_err());
    }
}
