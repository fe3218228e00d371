//! The bus codec: what nodes tell each other on the pub/sub channel `{prefix}:bus`, and its
//! delivery on the receiving node. An event's frame is already JSON, so it is embedded in the
//! envelope as is, never re-escaped, and handed to subscribers as the same bytes.

use std::borrow::Cow;

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::app::Apps;
use crate::wire;

/// What travels on the bus.
pub enum Body<'a> {
    Event {
        channel: &'a str,
        except: Option<&'a str>,
        frame: &'a Utf8Bytes,
    },
    Terminate {
        user_id: &'a str,
    },
    /// A signed-in user came online or went offline in the cluster (every node, the sender too,
    /// tells its watchers).
    Watch {
        user_id: &'a str,
        online: bool,
    },
}

/// A bus message about an event, up to (not including) its frame and closing brace. With `all`,
/// the sending node delivers it too (history events: everyone delivers in bus order).
pub fn envelope_prefix(
    node: &str,
    app: &str,
    channel: &str,
    except: Option<&str>,
    all: bool,
) -> String {
    let except = except.map_or_else(|| "null".into(), wire::json);
    format!(
        r#"{{"node":{},"all":{all},"app":{},"channel":{},"except":{except},"frame":"#,
        wire::json(node),
        wire::json(app),
        wire::json(channel)
    )
}

pub fn envelope(node: &str, app: &str, body: Body<'_>) -> String {
    match body {
        Body::Event {
            channel,
            except,
            frame,
        } => format!(
            "{}{}}}",
            envelope_prefix(node, app, channel, except, false),
            frame.as_str()
        ),
        Body::Terminate { user_id } => format!(
            r#"{{"node":{},"app":{},"terminate_user":{}}}"#,
            wire::json(node),
            wire::json(app),
            wire::json(user_id)
        ),
        Body::Watch { user_id, online } => format!(
            r#"{{"node":{},"all":true,"app":{},"watch":{},"online":{online}}}"#,
            wire::json(node),
            wire::json(app),
            wire::json(user_id)
        ),
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    node: Cow<'a, str>,
    #[serde(default)]
    all: bool,
    #[serde(borrow)]
    app: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    except: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    frame: Option<&'a RawValue>,
    #[serde(borrow, default)]
    terminate_user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    watch: Option<Cow<'a, str>>,
    #[serde(default)]
    online: bool,
}

/// Applies a bus message on this node (`me`): its own messages only when meant for all.
pub fn deliver(apps: &Apps, me: &str, payload: &[u8]) {
    let Ok(env) = serde_json::from_slice::<Envelope>(payload) else {
        tracing::warn!("ignoring malformed message on the redis bus");
        return;
    };
    if env.node == me && !env.all {
        return;
    }
    let Some(app) = apps.by_id(&env.app) else {
        return;
    };
    if let (Some(channel), Some(frame)) = (env.channel, env.frame) {
        let frame = Utf8Bytes::from(frame.get().to_owned());
        app.deliver_local(&channel, &frame, env.except.as_deref());
    } else if let Some(user_id) = env.terminate_user {
        app.users.terminate(&user_id);
    } else if let Some(user_id) = env.watch {
        app.users.announce(&user_id, env.online);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_envelope_embeds_the_frame_as_is() {
        let frame = Utf8Bytes::from_static(r#"{"event":"e","channel":"c","data":"\"q\""}"#);
        let body = Body::Event {
            channel: "c",
            except: Some("1.2"),
            frame: &frame,
        };
        let msg = envelope("n1", "app", body);
        let env: Envelope = serde_json::from_str(&msg).unwrap();
        assert_eq!(env.frame.unwrap().get(), frame.as_str());
        assert_eq!(env.except.as_deref(), Some("1.2"));
        assert!(!env.all);
        let prefix = envelope_prefix("n1", "app", "c", None, true);
        let msg = format!("{prefix}{}}}", frame.as_str());
        let env: Envelope = serde_json::from_str(&msg).unwrap();
        assert!(env.all && env.except.is_none());
    }
}
