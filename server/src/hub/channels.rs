//! The channel registry of one app, and the fan-out: [`Channels::broadcast`] is where an encoded
//! frame reaches every local subscriber of a channel (the whole path is in [`super`]).
//!
//! Concurrency: the registry is sharded (`DashMap`), and each channel has its own lock, so
//! broadcasts on different channels never contend, and a broadcast holds only its channel's read
//! lock while it pushes shared bytes into the subscribers' bounded queues (never waiting on I/O).
//! Membership changes of one channel (subscribe, unsubscribe, presence) are serialized by that
//! channel's write lock, which is also what orders `subscription_succeeded` before any event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::{Recovery, StreamPosition};
use chorus_protocol::ChannelKind;
use dashmap::DashMap;
use parking_lot::RwLock;

use super::gate::GateCell;
use super::outbound::ConnHandle;
use super::presence::{Members, PresenceMember};
use crate::wire;

struct Subscriber {
    conn: ConnHandle,
    /// Presence channels: the user this connection joined as.
    user_id: Option<String>,
    /// Only for subscriptions a cluster adapter completes (see [`super::gate`]); `None` is the
    /// fast path.
    gate: Option<Box<GateCell>>,
}

impl Subscriber {
    fn send(&self, frame: &Utf8Bytes) -> bool {
        match self.gate.as_deref().filter(|g| !g.is_open()) {
            Some(gate) => gate.send(&self.conn, frame),
            None => self.conn.send(frame),
        }
    }
}

#[derive(Default)]
struct State {
    subscribers: HashMap<Box<str>, Subscriber>,
    members: Members,
}

struct Channel {
    name: Box<str>,
    kind: ChannelKind,
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
            if sub.send(frame) {
                delivered += 1;
            }
        }
        delivered
    }
}

/// Who announces a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// This node is the whole truth: send `succeeded` and presence events now.
    Local,
    /// A cluster adapter learns the cluster-wide members first, then calls [`Channels::activate`].
    Deferred,
}

/// What a subscription did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// `new_local_user`: on a presence channel, the user had no other connection here.
    New { new_local_user: bool },
    /// The connection was subscribed already; it was sent `subscription_succeeded` again (not on
    /// presence channels: the member list is not rebuilt and resent for a repeated request).
    Already,
    /// A presence channel at its member limit refused a new user; nothing changed.
    Full,
}

/// What an unsubscription removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// Presence channels: the user the connection had joined as.
    pub user_id: Option<String>,
    /// Presence channels: it was that user's last connection on this node.
    pub last_local_connection: bool,
}

/// `pusher_internal:subscription_succeeded`; presence channels carry `members`.
fn succeeded_frame(
    name: &str,
    members: Option<&Members>,
    extras: SucceededExtras<'_>,
) -> Utf8Bytes {
    match members {
        Some(m) => extras.frame(name, &m.subscription_data()),
        None => extras.frame(name, "{}"),
    }
}

/// Chorus's additions to `subscription_succeeded`: the channel's history position and the
/// outcome of a requested recovery.
#[derive(Debug, Clone, Copy, Default)]
pub struct SucceededExtras<'a> {
    pub position: Option<&'a StreamPosition>,
    pub recovery: Option<&'a Recovery>,
    /// Sent right after `subscription_succeeded` of a new subscription, under the channel lock (a
    /// cache channel's last event or `pusher:cache_miss`).
    pub follow: Option<&'a Utf8Bytes>,
}

impl SucceededExtras<'_> {
    /// `subscription_succeeded` on `channel` with the given `data` JSON and these extras.
    pub fn frame(self, channel: &str, data_json: &str) -> Utf8Bytes {
        wire::succeeded(channel, data_json, self.position, self.recovery)
    }
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
    /// Members a presence channel may have here (0 = unlimited).
    max_members: AtomicUsize,
}

impl Channels {
    pub fn new(max_members: usize) -> Self {
        Self {
            map: DashMap::new(),
            max_members: AtomicUsize::new(max_members),
        }
    }

    /// A new member limit for joins from now on.
    pub fn set_max_members(&self, max: usize) {
        self.max_members.store(max, Ordering::Relaxed);
    }

    /// Whether `name` has subscribers on this node.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Subscribes `conn`. With [`Announce::Local`] it is sent `subscription_succeeded` (presence:
    /// this node's members) and, for a user new on a presence channel, the other subscribers get
    /// `member_added`, all under the channel lock so no event can overtake them. With
    /// [`Announce::Deferred`] nothing is sent: events are held until [`Self::activate`].
    pub fn subscribe(
        &self,
        name: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<&PresenceMember>,
        announce: Announce,
        extras: SucceededExtras<'_>,
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
        if let Some(existing) = state.subscribers.get(conn.socket_id()) {
            let pending = existing.gate.as_ref().is_some_and(|g| g.is_pending());
            if !pending && member.is_none() {
                conn.send(&succeeded_frame(
                    name,
                    member.map(|_| &state.members),
                    extras,
                ));
            }
            return Subscribed::Already;
        }
        if let Some(m) = member {
            let max = self.max_members.load(Ordering::Relaxed);
            let full = max != 0 && state.members.len() >= max;
            if full && !state.members.contains(&m.user_id) {
                return Subscribed::Full;
            }
        }
        let new_local_user = member.is_some_and(|m| state.members.join(m));
        let deferred = announce == Announce::Deferred;
        state.subscribers.insert(
            conn.socket_id().into(),
            Subscriber {
                conn: conn.clone(),
                user_id: member.map(|m| m.user_id.clone()),
                gate: deferred.then(GateCell::pending),
            },
        );
        if !deferred {
            conn.send(&succeeded_frame(
                name,
                member.map(|_| &state.members),
                extras,
            ));
            if let Some(frame) = extras.follow {
                conn.send(frame);
            }
            if let (true, Some(member)) = (new_local_user, member) {
                let added = wire::member_added(name, &member.user_id, member.user_info.as_deref());
                Channel::fan_out(&state, &added, Some(conn.socket_id()));
            }
        }
        Subscribed::New { new_local_user }
    }

    /// Ends a deferred subscription: sends `succeeded`, then `replay` (recovered history), then the
    /// events held meanwhile; from then on, events at or before `through` (already in `replay`, or
    /// older than the subscription) are dropped until a newer one arrives.
    pub fn activate(
        &self,
        name: &str,
        socket_id: &str,
        succeeded: &Utf8Bytes,
        replay: &[Utf8Bytes],
        through: Option<&StreamPosition>,
    ) {
        let Some(channel) = self.map.get(name).map(|c| Arc::clone(c.value())) else {
            return;
        };
        let state = channel.state.write();
        let Some(sub) = state.subscribers.get(socket_id) else {
            return;
        };
        let Some(held) = sub.gate.as_deref().and_then(|g| g.release(through)) else {
            return;
        };
        sub.conn.send(succeeded);
        for frame in replay {
            sub.conn.send(frame);
        }
        for frame in &held {
            sub.send(frame);
        }
    }

    /// This node's members of a presence channel, as `subscription_succeeded` data.
    pub fn local_presence_data(&self, name: &str) -> String {
        match self.map.get(name) {
            Some(c) => c.state.read().members.subscription_data(),
            None => Members::default().subscription_data(),
        }
    }

    /// Every local presence membership: (channel, member, connections of that user here).
    pub fn presence_snapshot(&self) -> Vec<(String, PresenceMember, usize)> {
        let channels: Vec<Arc<Channel>> = self
            .map
            .iter()
            .filter(|e| e.value().kind == ChannelKind::Presence)
            .map(|e| Arc::clone(e.value()))
            .collect();
        let mut out = Vec::new();
        for c in channels {
            let state = c.state.read();
            for (member, count) in state.members.entries() {
                out.push((c.name.to_string(), member, count));
            }
        }
        out
    }

    /// Subscriptions on this node, all channels together (for `/metrics`).
    pub fn subscriptions(&self) -> usize {
        self.map
            .iter()
            .map(|e| e.value().state.read().subscribers.len())
            .sum()
    }

    /// Local subscription count of every channel.
    pub fn subscription_counts(&self) -> Vec<(String, usize)> {
        let channels: Vec<Arc<Channel>> = self.map.iter().map(|e| Arc::clone(e.value())).collect();
        channels
            .into_iter()
            .map(|c| {
                let n = c.state.read().subscribers.len();
                (c.name.to_string(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Removes `socket_id` from the channel. With `announce`, a presence user's last connection
    /// leaving sends `member_removed` to the others. Returns what left, if it was subscribed.
    pub fn unsubscribe(&self, name: &str, socket_id: &str, announce: bool) -> Option<Left> {
        let channel = self.map.get(name).map(|c| Arc::clone(c.value()))?;
        let left = {
            let mut state = channel.state.write();
            let sub = state.subscribers.remove(socket_id)?;
            let mut left = Left {
                user_id: None,
                last_local_connection: false,
            };
            if let Some(user_id) = sub.user_id {
                left.last_local_connection = state.members.leave(&user_id);
                if announce && left.last_local_connection {
                    let frame = wire::member_removed(&channel.name, &user_id);
                    Channel::fan_out(&state, &frame, None);
                }
                left.user_id = Some(user_id);
            }
            left
        };
        self.map
            .remove_if(name, |_, c| c.state.read().subscribers.is_empty());
        Some(left)
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

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle without a socket: what is sent to it stays queued, for `take_queued` to read.
    fn conn(id: &str) -> ConnHandle {
        let limit = crate::hub::outbound::QueueLimit {
            frames: 16,
            bytes: 1 << 20,
        };
        ConnHandle::new(id.into(), limit, None)
    }

    #[test]
    fn broadcast_skips_excluded_and_empty_channels_are_dropped() {
        let chans = Channels::default();
        let a = conn("1.1");
        let b = conn("2.2");
        chans.subscribe(
            "c",
            ChannelKind::Public,
            &a,
            None,
            Announce::Local,
            SucceededExtras::default(),
        );
        chans.subscribe(
            "c",
            ChannelKind::Public,
            &b,
            None,
            Announce::Local,
            SucceededExtras::default(),
        );
        a.take_queued();
        b.take_queued();
        assert_eq!(
            chans.broadcast("c", &Utf8Bytes::from_static("m"), Some("1.1")),
            1
        );
        assert!(a.take_queued().is_empty());
        assert_eq!(b.take_queued(), vec!["m"]);
        assert!(chans.unsubscribe("c", "1.1", true).is_some());
        assert!(chans.unsubscribe("c", "2.2", true).is_some());
        assert!(chans.unsubscribe("c", "2.2", true).is_none());
        assert!(chans.is_empty());
    }

    #[test]
    fn presence_events_per_user() {
        let chans = Channels::default();
        let m1 = PresenceMember::parse(r#"{"user_id":"1"}"#).unwrap();
        let m2 = PresenceMember::parse(r#"{"user_id":"2"}"#).unwrap();
        let a1 = conn("1.1");
        let a2 = conn("1.2");
        let b = conn("2.1");
        chans.subscribe(
            "presence-r",
            ChannelKind::Presence,
            &b,
            Some(&m2),
            Announce::Local,
            SucceededExtras::default(),
        );
        b.take_queued();
        chans.subscribe(
            "presence-r",
            ChannelKind::Presence,
            &a1,
            Some(&m1),
            Announce::Local,
            SucceededExtras::default(),
        );
        chans.subscribe(
            "presence-r",
            ChannelKind::Presence,
            &a2,
            Some(&m1),
            Announce::Local,
            SucceededExtras::default(),
        );
        let seen = b.take_queued();
        assert_eq!(
            seen.iter().filter(|s| s.contains("member_added")).count(),
            1
        );
        assert!(a1.take_queued()[0].contains("subscription_succeeded"));
        assert_eq!(chans.info("presence-r").user_count, Some(2));
        assert_eq!(chans.info("presence-r").subscription_count, 3);
        chans.unsubscribe("presence-r", "1.1", true);
        assert!(b.take_queued().is_empty());
        chans.unsubscribe("presence-r", "1.2", true);
        assert_eq!(
            b.take_queued()
                .iter()
                .filter(|s| s.contains("member_removed"))
                .count(),
            1
        );
    }

    #[test]
    fn deferred_subscription_holds_events_until_activated() {
        let chans = Channels::default();
        let a = conn("1.1");
        chans.subscribe(
            "c",
            ChannelKind::Public,
            &a,
            None,
            Announce::Deferred,
            SucceededExtras::default(),
        );
        chans.broadcast("c", &Utf8Bytes::from_static("early"), None);
        assert!(a.take_queued().is_empty());
        chans.activate(
            "c",
            "1.1",
            &SucceededExtras::default().frame("c", "{}"),
            &[],
            None,
        );
        chans.broadcast("c", &Utf8Bytes::from_static("late"), None);
        let got = a.take_queued();
        assert!(got[0].contains("subscription_succeeded"));
        assert_eq!(&got[1..], ["early", "late"]);
    }
}
