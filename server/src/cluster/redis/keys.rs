//! Every name Chorus uses in Redis, in one place. Keys carry a hash tag (`{…}`) so that what one
//! script touches is in one Redis Cluster slot (and on one node of it):
//!
//! | base | tag | keys under it |
//! |---|---|---|
//! | [`channel`] `{prefix}:{{app}:{channel}}` | the channel | `:s` subscriptions per node; `:mn`, `:m:{node}`, `:mc:{node}` presence members per node; `:h:…` history; `:cache` |
//! | [`app`] `{prefix}:{{app}}` | the app | `:un`, `:u:{node}` signed-in users per node; `:cn`, `:c:{node}` the channels each node serves (for listing) |
//! | [`nodes`] `{prefix}:{#nodes}` | the cluster | the heartbeat sorted set; `:dead` nodes being reaped, `:claim:{node}` who reaps them |
//! | [`genesis`] `{prefix}:{g{n}}:genesis` | a slot | the history genesis of the channels in that slot (at most 16,384 keys) |
//!
//! and the pub/sub channels: a channel's route [`route`] `{prefix}:c:{{app}:{channel}}` (in its
//! channel's slot, so that a Redis Cluster carries it on one shard) and the [`bus`]. App ids
//! and channel names cannot contain `:`, `{` or `}` (channel names are checked by the protocol,
//! the prefix by the config; an app id with a brace only moves its slot), so names never collide.
//! The Lua scripts build the keys under a base from the base they are given (`KEYS[1]`).

/// The keys of one channel (the script argument `KEYS[1]` of channel scripts).
pub fn channel(prefix: &str, app: &str, channel: &str) -> String {
    format!("{prefix}:{{{app}:{channel}}}")
}

/// The keys of one app.
pub fn app(prefix: &str, app: &str) -> String {
    format!("{prefix}:{{{app}}}")
}

/// The nodes' heartbeat sorted set (the base of the cluster-wide keys). `#` cannot be in an app
/// id, so this is no app's tag.
pub fn nodes(prefix: &str) -> String {
    format!("{prefix}:{{#nodes}}")
}

/// The set of a node's channels with local subscribers in an app, under [`app`].
pub fn app_channels_of(app_base: &str, node: &str) -> String {
    format!("{app_base}:c:{node}")
}

/// A cache channel's last event, under [`channel`].
pub fn cache(channel_base: &str) -> String {
    format!("{channel_base}:cache")
}

/// The history genesis of the channels in `channel_base`'s slot: the identity of that slot's
/// history (`hub/history.rs`), in the same slot, so a shard that restarts empty loses it with
/// the streams it identifies. One key per slot, not per channel: subscribing to many channel
/// names leaves at most 16,384 keys behind.
pub fn genesis(prefix: &str, channel_base: &str) -> String {
    format!(
        "{prefix}:{{g{}}}:genesis",
        slot_tags()[slot(tag(channel_base)) as usize]
    )
}

/// Redis Cluster's slot of a hash tag.
fn slot(tag: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % SLOTS
}

const SLOTS: u16 = 16_384;

/// For each slot, an `n` whose tag `g{n}` is in it (found once, in about 170,000 tries).
fn slot_tags() -> &'static [u32] {
    static TAGS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; SLOTS as usize];
        let mut missing = tags.len();
        let mut n = 0u32;
        while missing > 0 {
            let s = &mut tags[slot(&format!("g{n}")) as usize];
            if *s == u32::MAX {
                *s = n;
                missing -= 1;
            }
            n += 1;
        }
        tags
    })
}

/// The pub/sub channel every node listens to (messages about users).
pub fn bus(prefix: &str) -> String {
    format!("{prefix}:bus")
}

/// The pub/sub channel carrying `channel`'s events, which only nodes serving it listen to.
pub fn route(prefix: &str, app: &str, channel: &str) -> String {
    format!("{prefix}:c:{{{app}:{channel}}}")
}

/// The hash tag of a key or pub/sub channel name: the part Redis Cluster hashes to pick its slot.
/// Names with the same tag are in the same slot.
pub fn tag(name: &str) -> &str {
    if let Some(open) = name.find('{') {
        let rest = &name[open + 1..];
        if let Some(close) = rest.find('}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_its_route_and_its_keys_share_a_slot_apart_from_its_app() {
        let base = channel("chorus", "app-1", "presence-room.1");
        assert_eq!(base, "chorus:{app-1:presence-room.1}");
        assert_eq!(tag(&base), "app-1:presence-room.1");
        assert_eq!(tag(&cache(&base)), tag(&base));
        assert_eq!(
            tag(&route("chorus", "app-1", "presence-room.1")),
            tag(&base)
        );
        assert_eq!(tag(&app("chorus", "app-1")), "app-1");
        assert_eq!(
            tag(&app_channels_of(&app("chorus", "app-1"), "n1")),
            "app-1"
        );
        assert_eq!(tag(&nodes("chorus")), "#nodes");
        assert_eq!(tag(&bus("chorus")), "chorus:bus", "no tag: the whole name");
    }

    #[test]
    fn a_channels_genesis_is_in_its_slot() {
        for name in ["a", "news", "presence-room.1", "private-chat.42", "x;y=z@w"] {
            let base = channel("p", "app", name);
            let g = genesis("p", &base);
            assert!(g.starts_with("p:{g") && g.ends_with("}:genesis"), "{g}");
            assert_eq!(slot(tag(&g)), slot(tag(&base)), "{name}");
            // The redis crate routes by the same function.
            assert_eq!(
                redis::cluster_routing::Slot::for_key(&g),
                redis::cluster_routing::Slot::for_key(&base)
            );
        }
    }

    #[test]
    fn tags_follow_redis_rules() {
        assert_eq!(tag("a{}b"), "a{}b", "an empty tag is no tag");
        assert_eq!(tag("a{b"), "a{b");
        assert_eq!(tag("x{a}b}c"), "a");
    }
}
