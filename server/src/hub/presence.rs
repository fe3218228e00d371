//! Presence membership of one channel: members are users, not connections. A user with several
//! connections (tabs) is one member, added on its first connection and removed after its last.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::SubscriptionError;
use crate::wire;

/// Who a presence subscription says it is, taken from its signed `channel_data`.
#[derive(Debug, Clone)]
pub struct PresenceMember {
    pub user_id: String,
    pub user_info: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ChannelData<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    user_info: Option<Box<RawValue>>,
}

impl PresenceMember {
    /// Parses `channel_data` (`{"user_id": "1" | 1, "user_info": {...}}`).
    pub fn parse(channel_data: &str) -> Result<Self, SubscriptionError> {
        let data: ChannelData = serde_json::from_str(channel_data)
            .map_err(|_| SubscriptionError::InvalidChannelData("not a JSON object"))?;
        let raw = data
            .user_id
            .ok_or(SubscriptionError::InvalidChannelData("user_id is missing"))?;
        // Laravel sends numeric ids; Pusher's wire format carries them as strings.
        let user_id = match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::String(s)) if !s.is_empty() => s,
            Ok(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                return Err(SubscriptionError::InvalidChannelData(
                    "user_id must be a non-empty string or a number",
                ))
            }
        };
        Ok(Self {
            user_id,
            user_info: data.user_info,
        })
    }
}

struct Entry {
    info: Option<Box<RawValue>>,
    connections: usize,
}

/// Members of one presence channel.
#[derive(Default)]
pub struct Members {
    map: HashMap<String, Entry>,
}

impl Members {
    /// Records one more connection of the user; true if the user was not a member before.
    pub fn join(&mut self, member: &PresenceMember) -> bool {
        match self.map.get_mut(&member.user_id) {
            Some(e) => {
                e.connections += 1;
                false
            }
            None => {
                self.map.insert(
                    member.user_id.clone(),
                    Entry {
                        info: member.user_info.clone(),
                        connections: 1,
                    },
                );
                true
            }
        }
    }

    /// Records one connection of the user leaving; true if it was the user's last.
    pub fn leave(&mut self, user_id: &str) -> bool {
        match self.map.get_mut(user_id) {
            Some(e) if e.connections > 1 => {
                e.connections -= 1;
                false
            }
            Some(_) => {
                self.map.remove(user_id);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.map.contains_key(user_id)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Each member with its number of connections.
    pub fn entries(&self) -> impl Iterator<Item = (PresenceMember, usize)> + '_ {
        self.map.iter().map(|(id, e)| {
            (
                PresenceMember {
                    user_id: id.clone(),
                    user_info: e.info.clone(),
                },
                e.connections,
            )
        })
    }

    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// `data` of `pusher_internal:subscription_succeeded` on a presence channel.
    pub fn subscription_data(&self) -> String {
        wire::presence_data(
            self.map
                .iter()
                .map(|(id, e)| (id.as_str(), e.info.as_deref().unwrap_or(RawValue::NULL))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_string_ids() {
        assert_eq!(
            PresenceMember::parse(r#"{"user_id":5}"#).unwrap().user_id,
            "5"
        );
        assert_eq!(
            PresenceMember::parse(r#"{"user_id":"a","user_info":{"n":1}}"#)
                .unwrap()
                .user_id,
            "a"
        );
        assert!(PresenceMember::parse(r#"{"user_info":{}}"#).is_err());
        assert!(PresenceMember::parse(r#"{"user_id":""}"#).is_err());
        assert!(PresenceMember::parse(r#"{"user_id":[1]}"#).is_err());
        assert!(PresenceMember::parse("nope").is_err());
    }

    #[test]
    fn one_member_per_user() {
        let mut m = Members::default();
        let a = PresenceMember::parse(r#"{"user_id":"1","user_info":{"name":"A"}}"#).unwrap();
        assert!(m.join(&a));
        assert!(!m.join(&a));
        assert_eq!(m.len(), 1);
        assert!(!m.leave("1"));
        assert!(m.leave("1"));
        assert!(m.is_empty());
        assert!(!m.leave("1"));
    }

    #[test]
    fn subscription_data_shape() {
        let mut m = Members::default();
        m.join(&PresenceMember::parse(r#"{"user_id":"1","user_info":{"name":"A"}}"#).unwrap());
        let v: serde_json::Value = serde_json::from_str(&m.subscription_data()).unwrap();
        assert_eq!(v["presence"]["ids"][0], "1");
        assert_eq!(v["presence"]["hash"]["1"]["name"], "A");
        assert_eq!(v["presence"]["count"], 1);
    }
}
