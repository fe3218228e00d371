//! The channels the app subscribed to and the members of presence channels, as plain data: no
//! socket, no events. The engine applies what the server said and emits what comes back.

use chorus_protocol::channel::ChannelKind;
use wasm_bindgen::JsValue;

pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// The server confirmed the subscription on the current socket.
    pub subscribed: bool,
    /// Presence only.
    pub members: Members,
}

/// The app's channels, in the order it subscribed; they outlive sockets (resubscribed after
/// every reconnect) until it unsubscribes.
#[derive(Default)]
pub struct Channels(Vec<Channel>);

// Names are compared as `str` (`*a == *b`): that comparison inlines, `String == &str` is one
// more function in the wasm.
impl Channels {
    pub fn find(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|c| *c.name == *name)
    }

    pub fn get(&self, name: &str) -> Option<&Channel> {
        self.0.iter().find(|c| *c.name == *name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Channel> {
        self.0.iter_mut().find(|c| *c.name == *name)
    }

    pub fn at(&self, i: usize) -> &Channel {
        &self.0[i]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds `name` unless it is there; returns its index when it is new.
    pub fn add(&mut self, name: &str) -> Option<usize> {
        if self.find(name).is_some() {
            return None;
        }
        self.0.push(Channel {
            name: name.to_owned(),
            kind: ChannelKind::of(name),
            subscribed: false,
            members: Members::default(),
        });
        Some(self.0.len() - 1)
    }

    /// Whether `name` was there.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.find(name) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    /// The socket is gone, and every subscription with it.
    pub fn unsubscribed(&mut self) {
        for c in &mut self.0 {
            c.subscribed = false;
        }
    }
}

/// Members of a presence channel: `(user_id, user_info)` in arrival order. Generic over the info
/// (a browser value in the SDK) so that the bookkeeping is tested natively.
pub struct Members<I = JsValue> {
    list: Vec<(String, I)>,
    /// Our own user id, from the `channel_data` the auth endpoint returned.
    pub me: Option<String>,
}

impl<I> Default for Members<I> {
    fn default() -> Self {
        Members {
            list: Vec::new(),
            me: None,
        }
    }
}

impl<I> Members<I> {
    pub fn list(&self) -> &[(String, I)] {
        &self.list
    }

    /// `subscription_succeeded`: the server's list replaces ours; the caller fills it in (the
    /// empty list returned) in the server's order.
    pub fn succeeded(&mut self) -> &mut Vec<(String, I)> {
        self.list.clear();
        &mut self.list
    }

    /// `member_added`: a new member, or new info of a known one (the user's next connection).
    pub fn added(&mut self, id: String, info: I) {
        match self.list.iter_mut().find(|m| m.0 == id) {
            Some(m) => m.1 = info,
            None => self.list.push((id, info)),
        }
    }

    /// `member_removed`: the member to announce, if it was known.
    pub fn removed(&mut self, id: &str) -> Option<(String, I)> {
        let pos = self.list.iter().position(|m| *m.0 == *id)?;
        Some(self.list.remove(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<I>(m: &Members<I>) -> Vec<&str> {
        m.list().iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn channels_are_added_once_and_keep_their_order() {
        let mut c = Channels::default();
        assert_eq!(c.add("a"), Some(0));
        assert_eq!(c.add("presence-b"), Some(1));
        assert_eq!(c.add("a"), None);
        assert_eq!(c.len(), 2);
        assert_eq!(c.find("presence-b"), Some(1));
        assert_eq!(c.at(1).kind, ChannelKind::Presence);
        assert_eq!(c.find("zz"), None);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert_eq!(c.find("presence-b"), Some(0));
    }

    #[test]
    fn a_lost_socket_unsubscribes_every_channel() {
        let mut c = Channels::default();
        c.add("a");
        c.add("b");
        for name in ["a", "b"] {
            if let Some(ch) = c.get_mut(name) {
                ch.subscribed = true;
            }
        }
        c.unsubscribed();
        assert!(["a", "b"]
            .iter()
            .all(|name| c.get(name).is_some_and(|ch| !ch.subscribed)));
    }

    #[test]
    fn members_added_replaced_and_removed() {
        let mut m: Members<u32> = Members::default();
        m.succeeded().extend([("1".into(), 10), ("2".into(), 20)]);
        m.added("3".into(), 30);
        // A known member keeps its place and takes the new info.
        m.added("1".into(), 11);
        assert_eq!(ids(&m), ["1", "2", "3"]);
        assert_eq!(m.removed("2"), Some(("2".to_owned(), 20)));
        assert_eq!(m.removed("2"), None);
        assert_eq!(m.list(), [("1".to_owned(), 11), ("3".to_owned(), 30)]);
        // A new subscription's list replaces the members; our own id stays.
        m.me = Some("1".into());
        m.succeeded().push(("9".into(), 90));
        assert_eq!(m.list(), [("9".to_owned(), 90)]);
        assert_eq!(m.me.as_deref(), Some("1"));
    }
}
