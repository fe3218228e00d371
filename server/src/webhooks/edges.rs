//! Count changes to transitions: the single-node adapter's way of knowing a channel became
//! occupied or vacated, or a presence user joined or left, in the order the changes were applied
//! (two threads racing on one channel can never make "occupied" follow "vacated" wrongly: the
//! counter decides, not who returns first).

use dashmap::DashMap;

/// What a change did to its key's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// 0 -> 1.
    Up,
    /// 1 -> 0.
    Down,
}

/// Counts per key; keys at 0 are removed.
#[derive(Default)]
pub struct Edges {
    counts: DashMap<Box<str>, u64>,
}

impl Edges {
    /// One more (`up`) or one fewer under `key`.
    pub fn change(&self, key: &str, up: bool) -> Option<Edge> {
        if up {
            self.up(key)
        } else {
            self.down(key)
        }
    }

    /// One more under `key`.
    pub fn up(&self, key: &str) -> Option<Edge> {
        let mut n = self.counts.entry(key.into()).or_insert(0);
        *n += 1;
        (*n == 1).then_some(Edge::Up)
    }

    /// One fewer under `key`.
    pub fn down(&self, key: &str) -> Option<Edge> {
        let removed = self.counts.remove_if_mut(key, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
        removed.map(|_| Edge::Down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_up_and_the_last_down_are_edges() {
        let e = Edges::default();
        assert_eq!(e.up("c"), Some(Edge::Up));
        assert_eq!(e.up("c"), None);
        assert_eq!(e.down("c"), None);
        assert_eq!(e.down("c"), Some(Edge::Down));
        assert_eq!(e.down("c"), None);
        assert_eq!(e.up("c"), Some(Edge::Up));
    }
}
