//! The connections signed in (`pusher:signin`) per user id, so that an app can close all of a
//! user's connections at once (`terminate_connections`).

use dashmap::DashMap;

use super::outbound::{ConnHandle, KillReason};

#[derive(Default)]
pub struct Users {
    map: DashMap<String, Vec<ConnHandle>>,
}

impl Users {
    pub fn add(&self, user_id: &str, conn: &ConnHandle) {
        let mut conns = self.map.entry(user_id.to_owned()).or_default();
        if !conns.iter().any(|c| c.same(conn)) {
            conns.push(conn.clone());
        }
    }

    pub fn remove(&self, user_id: &str, conn: &ConnHandle) {
        if let Some(mut conns) = self.map.get_mut(user_id) {
            conns.retain(|c| !c.same(conn));
        }
        self.map.remove_if(user_id, |_, conns| conns.is_empty());
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
