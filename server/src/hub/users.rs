//! The connections signed in (`pusher:signin`) per user id, so that an app can close all of a
//! user's connections at once (`terminate_connections`), and the connections watching each user
//! id (the `watchlist` of their sign-in), told when it comes online or goes offline.

use dashmap::DashMap;

use super::outbound::{ConnHandle, KillReason};
use crate::wire;

#[derive(Default)]
pub struct Users {
    map: DashMap<String, Vec<ConnHandle>>,
    watchers: DashMap<String, Vec<ConnHandle>>,
}

impl Users {
    /// Returns whether it is the user's first connection on this node.
    fn add(&self, user_id: &str, conn: &ConnHandle) -> bool {
        let mut conns = self.map.entry(user_id.to_owned()).or_default();
        if !conns.iter().any(|c| c.same(conn)) {
            conns.push(conn.clone());
        }
        conns.len() == 1
    }

    /// Returns whether it was the user's last connection on this node.
    fn remove(&self, user_id: &str, conn: &ConnHandle) -> bool {
        if let Some(mut conns) = self.map.get_mut(user_id) {
            conns.retain(|c| !c.same(conn));
        }
        self.map
            .remove_if(user_id, |_, conns| conns.is_empty())
            .is_some()
    }

    /// `conn` signed in as `user_id`, watching `watchlist`; returns whether it is the user's
    /// first connection on this node.
    pub fn sign_in(&self, user_id: &str, conn: &ConnHandle, watchlist: &[String]) -> bool {
        self.watch(conn, watchlist);
        self.add(user_id, conn)
    }

    /// The signed-in `conn` is gone; returns whether it was the user's last on this node.
    pub fn sign_out(&self, user_id: &str, conn: &ConnHandle, watchlist: &[String]) -> bool {
        self.unwatch(conn, watchlist);
        self.remove(user_id, conn)
    }

    /// The ids of `user_ids` with a signed-in connection on this node.
    pub fn online_here<'a>(&self, user_ids: &'a [String]) -> Vec<&'a str> {
        user_ids
            .iter()
            .filter(|id| self.map.contains_key(id.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// Tells `conn` which watched users are online (nothing when none is).
    pub fn tell_online(conn: &ConnHandle, online: &[&str]) {
        if !online.is_empty() {
            conn.send(&wire::watchlist_event("online", online));
        }
    }

    /// Signed-in connections per user on this node (to rewrite a cluster's state).
    pub fn counts(&self) -> Vec<(String, usize)> {
        self.map
            .iter()
            .map(|e| (e.key().clone(), e.value().len()))
            .collect()
    }

    /// `conn` watches `user_ids` until [`Self::unwatch`].
    fn watch(&self, conn: &ConnHandle, user_ids: &[String]) {
        for id in user_ids {
            let mut conns = self.watchers.entry(id.clone()).or_default();
            if !conns.iter().any(|c| c.same(conn)) {
                conns.push(conn.clone());
            }
        }
    }

    fn unwatch(&self, conn: &ConnHandle, user_ids: &[String]) {
        for id in user_ids {
            if let Some(mut conns) = self.watchers.get_mut(id) {
                conns.retain(|c| !c.same(conn));
            }
            self.watchers.remove_if(id, |_, conns| conns.is_empty());
        }
    }

    /// Tells this node's watchers of `user_id` that it came online or went offline.
    pub fn announce(&self, user_id: &str, online: bool) {
        let Some(conns) = self.watchers.get(user_id) else {
            return;
        };
        let frame = wire::watchlist_event(if online { "online" } else { "offline" }, &[user_id]);
        for c in conns.iter() {
            c.send(&frame);
        }
    }

    /// Closes every connection signed in as `user_id` (4009); returns how many.
    pub fn terminate(&self, user_id: &str) -> usize {
        match self.map.get(user_id) {
            Some(conns) => {
                for c in conns.iter() {
                    c.kill(KillReason::Terminated);
                }
                conns.len()
            }
            None => 0,
        }
    }
}
