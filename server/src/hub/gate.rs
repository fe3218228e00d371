//! The filter in front of a subscription that a cluster adapter completes (deferred): while the
//! adapter fetches the cluster's members and history, events wait (`Pending`) so that none
//! reaches the client before `subscription_succeeded`. After it, events at or before the position
//! the client was brought to (`After`) are dropped: the bus may still deliver events that the
//! replay already contained. The first newer event opens the gate for good.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::StreamPosition;
use parking_lot::Mutex;

use super::outbound::{ConnHandle, KillReason};

/// Events held for one pending subscriber before it counts as a slow consumer.
const MAX_PENDING: usize = 1024;

enum Gate {
    Pending(Vec<Utf8Bytes>),
    After(StreamPosition),
    Open,
}

/// A gate, with its open state readable without the lock (the fan-out's fast path).
pub struct GateCell {
    open: AtomicBool,
    gate: Mutex<Gate>,
}

impl GateCell {
    pub fn pending() -> Box<Self> {
        Box::new(Self {
            open: AtomicBool::new(false),
            gate: Mutex::new(Gate::Pending(Vec::new())),
        })
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub fn is_pending(&self) -> bool {
        matches!(*self.gate.lock(), Gate::Pending(_))
    }

    /// Passes `frame` to `conn` as the gate allows; false when `conn` did not take it.
    pub fn send(&self, conn: &ConnHandle, frame: &Utf8Bytes) -> bool {
        let mut gate = self.gate.lock();
        match &mut *gate {
            Gate::Pending(held) => {
                if held.len() >= MAX_PENDING {
                    conn.kill(KillReason::SlowConsumer);
                    return false;
                }
                held.push(frame.clone());
                true
            }
            Gate::After(through) => match position_of(frame) {
                Some(p) if p.epoch == through.epoch && p.offset <= through.offset => true,
                Some(_) => {
                    *gate = Gate::Open;
                    self.open.store(true, Ordering::Release);
                    conn.send(frame)
                }
                None => conn.send(frame),
            },
            Gate::Open => conn.send(frame),
        }
    }

    /// Ends the wait: returns the events held meanwhile (`None` if the gate was not pending) and
    /// from now on drops events at or before `through`.
    pub fn release(&self, through: Option<&StreamPosition>) -> Option<Vec<Utf8Bytes>> {
        let mut gate = self.gate.lock();
        let Gate::Pending(held) = &mut *gate else {
            return None;
        };
        let held = std::mem::take(held);
        *gate = match through {
            Some(p) => Gate::After(p.clone()),
            None => Gate::Open,
        };
        self.open.store(through.is_none(), Ordering::Release);
        Some(held)
    }
}

/// The history position a frame carries, if any.
fn position_of(frame: &Utf8Bytes) -> Option<StreamPosition> {
    #[derive(serde::Deserialize)]
    struct Positioned {
        position: Option<StreamPosition>,
    }
    if !frame.as_str().contains("\"position\"") {
        return None;
    }
    serde_json::from_str::<Positioned>(frame.as_str())
        .ok()?
        .position
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Utf8Bytes {
        Utf8Bytes::from(format!(
            r#"{{"event":"e","data":"x","position":{{"epoch":"ep","offset":{offset}}}}}"#
        ))
    }

    #[test]
    fn drops_what_the_replay_had_then_opens() {
        let limit = crate::hub::outbound::QueueLimit {
            frames: 16,
            bytes: 1 << 20,
        };
        let conn = ConnHandle::new("1.1".into(), limit, None);
        let gate = GateCell::pending();
        assert!(gate.send(&conn, &at(1)));
        assert!(conn.take_queued().is_empty());
        let through = StreamPosition {
            epoch: "ep".into(),
            offset: 2,
        };
        let held = gate.release(Some(&through)).unwrap();
        assert_eq!(held.len(), 1);
        assert!(gate.release(None).is_none());
        for frame in held.iter().chain([at(2), at(3), at(2)].iter()) {
            gate.send(&conn, frame);
        }
        // 1 and 2 were in the replay; 3 opens the gate, after which nothing is filtered.
        let got = conn.take_queued();
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("\"offset\":3") && got[1].contains("\"offset\":2"));
        assert!(gate.is_open());
    }
}
