//! The channel registry of one app, and the fan-out path: [`Channels::broadcast`] is where an
//! encoded frame reaches every local subscriber of a channel.
//!
//! Concurrency: the registry is sharded (`DashMap`), and each channel has its own lock, so
//! broadcasts on different channels never contend, and a broadcast holds only its channel's read
//! lock while it pushes shared bytes into the subscribers' bounded queues (never waiting on I/O).
//! Membership changes of one channel (subscribe, unsubscribe, presence) are serialized by that
//! channel's write lock, which is also what orders `subscription_succeeded` before any event.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::{events, ChannelKind};
use dashmap::DashMap;
use parking_lot::RwLock;

use crate::outbound::ConnHandle;
use crate::presence::{member_added_data, member_removed_data, Members, PresenceMember};
use crate::wire;

struct Subscriber {
    conn: ConnHandle,
    /// Presence channels: the user this connection joined as.
    user_id: Option<String>,
}

#[derive(Default)]
struct State {
    subscribers: HashMap<Box<str>, Subscriber>,
    members: Members,
}

struct Channel {
    name: Box<str>,
    kind: ChannelKind,
    // Room for per-channel message positions and history: appended under this lock, in order.
    state: RwLock<State>,
}

impl Channel {
    /// Pushes `frame` to every subscriber but `except`; returns how many got it.
    fn fan_out(state: &State, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let mut delivered = 0;
        for (socket_id, sub) in &state.subscribers {
            if Some(&**socket_id) == except {
                continue;
            }
            if sub.conn.send(frame) {
                delivered += 1;
            }
        }
        delivered
    }
}

/// What a subscription did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    New,
    /// The connection was subscribed already; it was sent `subscription_succeeded` again.
    Already,
}

/// Counts reported by the HTTP API.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelInfo {
    pub subscription_count: usize,
    /// Presence channels only.
    pub user_count: Option<usize>,
}

/// The channels of one app that have at least one subscriber on this node.
#[derive(Default)]
pub struct Channels {
    map: DashMap<Box<str>, Arc<Channel>>,
}

impl Channels {
    /// Subscribes `conn` and sends it `pusher_internal:subscription_succeeded`; on presence
    /// channels `member` is required and the other subscribers get `member_added` if the user is new.
    pub fn subscribe(
        &self,
        name: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<&PresenceMember>,
    ) -> Subscribed {
        // Holding the shard entry while inserting keeps a concurrent "remove when empty" from
        // dropping the channel between lookup and insert.
        let entry = self.map.entry(name.into()).or_insert_with(|| {
            Arc::new(Channel {
                name: name.into(),
                kind,
                state: RwLock::default(),
            })
        });
        let channel = entry.value();
        let mut state = channel.state.write();
        let already = state.subscribers.contains_key(conn.socket_id());
        if !already {
            let user_id = member.map(|m| m.user_id.clone());
            state.subscribers.insert(
                conn.socket_id().into(),
                Subscriber {
                    conn: conn.clone(),
                    user_id,
                },
            );
        }
        match (kind, member) {
            (ChannelKind::Presence, Some(member)) => {
                let is_new_user = !already && state.members.join(member);
                conn.send(&wire::encode_string_data(
                    events::SUBSCRIPTION_SUCCEEDED,
                    Some(name),
                    &state.members.subscription_data(),
                ));
                if is_new_user {
                    let added = wire::encode_string_data(
                        events::MEMBER_ADDED,
                        Some(name),
                        &member_added_data(member),
                    );
                    Channel::fan_out(&state, &added, Some(conn.socket_id()));
                }
            }
            _ => {
                conn.send(&wire::encode_string_data(
                    events::SUBSCRIPTION_SUCCEEDED,
                    Some(name),
                    "{}",
                ));
            }
        }
        if already {
            Subscribed::Already
        } else {
            Subscribed::New
        }
    }

    /// Removes `socket_id` from the channel; on presence channels sends `member_removed` to the
    /// others when it was the user's last connection. Returns whether it was subscribed.
    pub fn unsubscribe(&self, name: &str, socket_id: &str) -> bool {
        let Some(channel) = self.map.get(name).map(|c| Arc::clone(c.value())) else {
            return false;
        };
        let removed = {
            let mut state = channel.state.write();
            match state.subscribers.remove(socket_id) {
                Some(sub) => {
                    if let Some(user_id) = sub.user_id {
                        if state.members.leave(&user_id) {
                            let frame = wire::encode_string_data(
                                events::MEMBER_REMOVED,
                                Some(&channel.name),
                                &member_removed_data(&user_id),
                            );
                            Channel::fan_out(&state, &frame, None);
                        }
                    }
                    true
                }
                None => false,
            }
        };
        if removed {
            self.map
                .remove_if(name, |_, c| c.state.read().subscribers.is_empty());
        }
        removed
    }

    /// THE fan-out path: delivers an already-encoded frame to every local subscriber of `name`
    /// except the connection `except` (Laravel's `toOthers()`); returns how many got it.
    pub fn broadcast(&self, name: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let Some(channel) = self.map.get(name).map(|c| Arc::clone(c.value())) else {
            return 0;
        };
        let state = channel.state.read();
        Channel::fan_out(&state, frame, except)
    }

    pub fn info(&self, name: &str) -> ChannelInfo {
        match self.map.get(name) {
            Some(c) => {
                let state = c.state.read();
                ChannelInfo {
                    subscription_count: state.subscribers.len(),
                    user_count: (c.kind == ChannelKind::Presence).then(|| state.members.len()),
                }
            }
            None => ChannelInfo {
                subscription_count: 0,
                user_count: (ChannelKind::of(name) == ChannelKind::Presence).then_some(0),
            },
        }
    }

    /// User ids of a presence channel's members.
    pub fn user_ids(&self, name: &str) -> Vec<String> {
        match self.map.get(name) {
            Some(c) => c
                .state
                .read()
                .members
                .user_ids()
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Occupied channels whose name starts with `prefix`, with their info.
    pub fn list(&self, prefix: &str) -> Vec<(String, ChannelInfo)> {
        let names: Vec<String> = self
            .map
            .iter()
            .filter(|e| e.key().starts_with(prefix))
            .map(|e| e.key().to_string())
            .collect();
        names
            .into_iter()
            .map(|n| {
                let info = self.info(&n);
                (n, info)
            })
            .filter(|(_, i)| i.subscription_count > 0)
            .collect()
    }

    /// Number of occupied channels.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Outbound;
    use tokio::sync::mpsc;

    fn conn(id: &str) -> (ConnHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(16);
        (ConnHandle::new(id.into(), tx), rx)
    }

    fn texts(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Outbound::Text(t)) = rx.try_recv() {
            out.push(t.as_str().to_owned());
        }
        out
    }

    #[test]
    fn broadcast_skips_excluded_and_empty_channels_are_dropped() {
        let chans = Channels::default();
        let (a, mut ra) = conn("1.1");
        let (b, mut rb) = conn("2.2");
        chans.subscribe("c", ChannelKind::Public, &a, None);
        chans.subscribe("c", ChannelKind::Public, &b, None);
        texts(&mut ra);
        texts(&mut rb);
        assert_eq!(
            chans.broadcast("c", &Utf8Bytes::from_static("m"), Some("1.1")),
            1
        );
        assert!(texts(&mut ra).is_empty());
        assert_eq!(texts(&mut rb), vec!["m"]);
        assert!(chans.unsubscribe("c", "1.1"));
        assert!(chans.unsubscribe("c", "2.2"));
        assert!(!chans.unsubscribe("c", "2.2"));
        assert!(chans.is_empty());
    }

    #[test]
    fn presence_events_per_user() {
        let chans = Channels::default();
        let m1 = PresenceMember::parse(r#"{"user_id":"1"}"#).unwrap();
        let m2 = PresenceMember::parse(r#"{"user_id":"2"}"#).unwrap();
        let (a1, mut ra1) = conn("1.1");
        let (a2, _ra2) = conn("1.2");
        let (b, mut rb) = conn("2.1");
        chans.subscribe("presence-r", ChannelKind::Presence, &b, Some(&m2));
        texts(&mut rb);
        chans.subscribe("presence-r", ChannelKind::Presence, &a1, Some(&m1));
        chans.subscribe("presence-r", ChannelKind::Presence, &a2, Some(&m1));
        let seen = texts(&mut rb);
        assert_eq!(
            seen.iter().filter(|s| s.contains("member_added")).count(),
            1
        );
        assert!(texts(&mut ra1)[0].contains("subscription_succeeded"));
        assert_eq!(chans.info("presence-r").user_count, Some(2));
        assert_eq!(chans.info("presence-r").subscription_count, 3);
        chans.unsubscribe("presence-r", "1.1");
        assert!(texts(&mut rb).is_empty());
        chans.unsubscribe("presence-r", "1.2");
        assert_eq!(
            texts(&mut rb)
                .iter()
                .filter(|s| s.contains("member_removed"))
                .count(),
            1
        );
    }
}
