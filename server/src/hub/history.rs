//! Recent history per channel, so a client that reconnects gets exactly the events it missed.
//!
//! Each channel with history has a stream: an epoch (random, new whenever the stream starts over)
//! and increasing offsets. Every event published to the channel gets the next offset, is encoded
//! once with its position, kept (bounded by count and age) and delivered, all while the stream is
//! locked, so offsets, history and delivery order agree. A subscriber asking to recover from a
//! position is registered under the same lock after being sent what came after it: no gap, no
//! duplicate.
//!
//! A stream starts with the channel's first event, not with a subscriber (subscribing to channels
//! in a loop must not leave streams behind). A subscriber to a channel with no stream gets an
//! *origin* position, `{genesis}.{ms}` at offset 0: this history's identity (random per process
//! here; per Redis Cluster slot in Redis, kept in that slot) and the time it was given. Recovering from it replays the channel's
//! stream from its first event, which is exact as long as the origin is younger than `ttl`: a
//! stream started after it and already dropped again would have had to sit unused for `ttl`.
//! An older origin gets `expired`, one of another history `epoch_changed`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::{RecoverFrom, Recovery, StreamPosition};
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::config::AppConfig;

/// Which channels keep history, how much and how long (per app).
#[derive(Debug, Clone)]
pub struct HistoryPolicy {
    /// Events kept per channel; 0 disables history.
    pub size: usize,
    pub ttl: Duration,
    /// Channel name prefixes that keep history; `*` means all.
    pub channels: Vec<String>,
}

impl HistoryPolicy {
    pub fn of(config: &AppConfig) -> Self {
        Self {
            size: config.history_size,
            ttl: Duration::from_secs(config.history_ttl),
            channels: config.history_channels.clone(),
        }
    }

    pub fn applies_to(&self, channel: &str) -> bool {
        self.size > 0
            && self
                .channels
                .iter()
                .any(|p| p == "*" || channel.starts_with(p.as_str()))
    }
}

struct Entry {
    offset: u64,
    at: Instant,
    frame: Utf8Bytes,
    /// The connection the event was not for (`toOthers()`): not replayed to it either.
    except: Option<Box<str>>,
}

/// One channel's stream.
pub struct Stream {
    epoch: String,
    /// Offset the next event gets; the newest kept event has `next - 1`.
    next: u64,
    entries: VecDeque<Entry>,
    last_used: Instant,
}

/// Why a recovery is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryFailure {
    /// The stream started over (restart, expiry): offsets of the old epoch mean nothing now.
    EpochChanged,
    /// Events after the position are no longer kept.
    Expired,
    /// The connection asked for more recoveries than its rate allows.
    RateLimited,
}

/// A subscription's recovery request, as the session passes it on.
#[derive(Debug, Clone)]
pub enum Recover {
    /// Replay what came after this position.
    From(RecoverFrom),
    /// Asked for, but not served (the outcome says why).
    Denied(RecoveryFailure),
}

impl Recover {
    pub fn from(&self) -> Option<&RecoverFrom> {
        match self {
            Self::From(from) => Some(from),
            Self::Denied(_) => None,
        }
    }
}

impl RecoveryFailure {
    /// The reason as clients see it in `recovery.reason` (and the Redis scripts report it).
    pub fn reason(self) -> &'static str {
        match self {
            Self::EpochChanged => "epoch_changed",
            Self::Expired => "expired",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn from_reason(reason: &str) -> Option<Self> {
        match reason {
            "epoch_changed" => Some(Self::EpochChanged),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// A new epoch: 48 random bits, in hex.
pub fn new_epoch() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

impl Stream {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            next: 1,
            entries: VecDeque::new(),
            last_used: Instant::now(),
        }
    }

    /// Position of the newest event (offset 0 before the first one).
    pub fn top(&self) -> StreamPosition {
        StreamPosition {
            epoch: self.epoch.clone(),
            offset: self.next - 1,
        }
    }

    /// Gives the next event its position, lets `encode` build the frame, keeps it, returns it.
    pub fn append(
        &mut self,
        policy: &HistoryPolicy,
        except: Option<&str>,
        encode: impl FnOnce(&StreamPosition) -> Utf8Bytes,
    ) -> Utf8Bytes {
        let now = Instant::now();
        let position = StreamPosition {
            epoch: self.epoch.clone(),
            offset: self.next,
        };
        let frame = encode(&position);
        self.entries.push_back(Entry {
            offset: self.next,
            at: now,
            frame: frame.clone(),
            except: except.map(Into::into),
        });
        self.next += 1;
        while self.entries.len() > policy.size {
            self.entries.pop_front();
        }
        self.prune(policy, now);
        frame
    }

    fn prune(&mut self, policy: &HistoryPolicy, now: Instant) {
        while self
            .entries
            .front()
            .is_some_and(|e| now.duration_since(e.at) > policy.ttl)
        {
            self.entries.pop_front();
        }
        self.last_used = now;
    }

    /// The kept events after `from`, oldest first, but those published for others than `socket_id`.
    pub fn since(
        &mut self,
        policy: &HistoryPolicy,
        from: &StreamPosition,
        socket_id: Option<&str>,
    ) -> Result<Vec<Utf8Bytes>, RecoveryFailure> {
        self.prune(policy, Instant::now());
        if from.epoch != self.epoch || from.offset >= self.next {
            return Err(RecoveryFailure::EpochChanged);
        }
        // The first offset still kept; with nothing kept, only "already up to date" recovers.
        let oldest = self.entries.front().map_or(self.next, |e| e.offset);
        if from.offset + 1 < oldest {
            return Err(RecoveryFailure::Expired);
        }
        Ok(self
            .entries
            .iter()
            .filter(|e| {
                e.offset > from.offset && (socket_id.is_none() || e.except.as_deref() != socket_id)
            })
            .map(|e| e.frame.clone())
            .collect())
    }

    /// The newest `limit` kept events, oldest first.
    pub fn recent(&mut self, policy: &HistoryPolicy, limit: usize) -> Vec<Utf8Bytes> {
        self.prune(policy, Instant::now());
        let skip = self.entries.len().saturating_sub(limit);
        self.entries
            .iter()
            .skip(skip)
            .map(|e| e.frame.clone())
            .collect()
    }
}

/// Outcome of a recovery, for `subscription_succeeded`.
pub fn recovery_outcome(result: &Result<Vec<Utf8Bytes>, RecoveryFailure>) -> Recovery {
    match result {
        Ok(missed) => Recovery {
            recovered: true,
            replayed: missed.len() as u64,
            reason: None,
        },
        Err(f) => Recovery {
            recovered: false,
            replayed: 0,
            reason: Some(f.reason().into()),
        },
    }
}

/// Outcome of a recovery asked where no history can answer it (the channel keeps none, or the
/// cluster's history cannot be reached).
pub fn recovery_unavailable() -> Recovery {
    Recovery {
        recovered: false,
        replayed: 0,
        reason: Some("unavailable".into()),
    }
}

/// An origin position's epoch, `{genesis}.{ms}`: the genesis and the time.
pub fn parse_origin(epoch: &str) -> Option<(&str, u64)> {
    let (genesis, ms) = epoch.split_once('.')?;
    Some((genesis, ms.parse().ok()?))
}

/// The streams of one app.
pub struct History {
    pub policy: HistoryPolicy,
    streams: DashMap<Box<str>, Arc<Mutex<Stream>>>,
    /// This history's identity in origin positions, and the clock they are read on.
    genesis: String,
    started: Instant,
}

/// A channel's stream, or the proof that it has none yet: while a [`Vacant`] is held, no stream
/// can start (the first publish waits for it), so a subscriber registered meanwhile misses nothing.
pub enum StreamSlot<'a> {
    Started(Arc<Mutex<Stream>>),
    Vacant(dashmap::mapref::entry::VacantEntry<'a, Box<str>, Arc<Mutex<Stream>>>),
}

impl History {
    pub fn new(policy: HistoryPolicy) -> Self {
        Self {
            policy,
            streams: DashMap::new(),
            genesis: new_epoch(),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The position of a channel that has no stream yet.
    pub fn origin(&self) -> StreamPosition {
        StreamPosition {
            epoch: format!("{}.{}", self.genesis, self.now_ms()),
            offset: 0,
        }
    }

    /// The channel's stream if it has started, else a hold on its absence.
    pub fn slot(&self, channel: &str) -> StreamSlot<'_> {
        if let Some(s) = self.streams.get(channel) {
            return StreamSlot::Started(Arc::clone(s.value()));
        }
        match self.streams.entry(channel.into()) {
            dashmap::mapref::entry::Entry::Occupied(s) => StreamSlot::Started(Arc::clone(s.get())),
            dashmap::mapref::entry::Entry::Vacant(v) => StreamSlot::Vacant(v),
        }
    }

    /// Whether `from` is an origin position of this history that a recovery may start from:
    /// `Ok(true)` for one, `Ok(false)` for an ordinary position, `Err` for one that cannot.
    pub fn check_origin(&self, from: &StreamPosition) -> Result<bool, RecoveryFailure> {
        let Some((genesis, ms)) = parse_origin(&from.epoch) else {
            return Ok(false);
        };
        if genesis != self.genesis {
            return Err(RecoveryFailure::EpochChanged);
        }
        if self.now_ms().saturating_sub(ms) > self.policy.ttl.as_millis() as u64 {
            return Err(RecoveryFailure::Expired);
        }
        Ok(true)
    }

    /// What a subscriber missed since `from`, on the channel's stream (`None`: it has none yet).
    pub fn missed(
        &self,
        stream: Option<&mut Stream>,
        from: &StreamPosition,
        socket_id: Option<&str>,
    ) -> Result<Vec<Utf8Bytes>, RecoveryFailure> {
        let origin = self.check_origin(from)?;
        match (stream, origin) {
            (None, true) => Ok(Vec::new()),
            (None, false) => Err(RecoveryFailure::EpochChanged),
            (Some(s), true) => {
                let first = StreamPosition {
                    epoch: s.epoch.clone(),
                    offset: 0,
                };
                s.since(&self.policy, &first, socket_id)
            }
            (Some(s), false) => s.since(&self.policy, from, socket_id),
        }
    }

    /// Streams kept.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// The channel's stream if it has started.
    pub fn started(&self, channel: &str) -> Option<Arc<Mutex<Stream>>> {
        self.streams.get(channel).map(|s| Arc::clone(s.value()))
    }

    pub fn applies_to(&self, channel: &str) -> bool {
        self.policy.applies_to(channel)
    }

    /// The channel's stream, started if there is none.
    pub fn stream(&self, channel: &str) -> Arc<Mutex<Stream>> {
        if let Some(s) = self.streams.get(channel) {
            return Arc::clone(s.value());
        }
        Arc::clone(
            self.streams
                .entry(channel.into())
                .or_insert_with(|| Arc::new(Mutex::new(Stream::new())))
                .value(),
        )
    }

    /// Drops streams unused for longer than the ttl (their events have expired anyway). A client
    /// recovering from such a stream gets `epoch_changed`.
    pub fn sweep(&self) {
        let now = Instant::now();
        let ttl = self.policy.ttl;
        self.streams.retain(|_, s| {
            let s = s.lock();
            now.duration_since(s.last_used) <= ttl
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(size: usize, ttl_ms: u64) -> HistoryPolicy {
        HistoryPolicy {
            size,
            ttl: Duration::from_millis(ttl_ms),
            channels: vec!["*".into()],
        }
    }

    fn push(s: &mut Stream, p: &HistoryPolicy, n: u64) {
        for i in 0..n {
            s.append(p, None, |pos| {
                Utf8Bytes::from(format!("{i}@{}", pos.offset))
            });
        }
    }

    #[test]
    fn recovers_exactly_what_was_missed() {
        let p = policy(10, 60_000);
        let mut s = Stream::new();
        let start = s.top();
        assert_eq!(start.offset, 0);
        push(&mut s, &p, 3);
        let got = s.since(&p, &start, None).unwrap();
        assert_eq!(got, ["0@1", "1@2", "2@3"]);
        let mid = StreamPosition {
            epoch: start.epoch.clone(),
            offset: 2,
        };
        assert_eq!(s.since(&p, &mid, None).unwrap(), ["2@3"]);
        assert!(s.since(&p, &s.top(), None).unwrap().is_empty());
    }

    #[test]
    fn fails_when_truncated_expired_or_other_epoch() {
        let p = policy(2, 60_000);
        let mut s = Stream::new();
        let start = s.top();
        push(&mut s, &p, 3);
        assert_eq!(s.since(&p, &start, None), Err(RecoveryFailure::Expired));
        let other = StreamPosition {
            epoch: "other".into(),
            offset: 1,
        };
        assert_eq!(
            s.since(&p, &other, None),
            Err(RecoveryFailure::EpochChanged)
        );
        let future = StreamPosition {
            epoch: start.epoch.clone(),
            offset: 99,
        };
        assert_eq!(
            s.since(&p, &future, None),
            Err(RecoveryFailure::EpochChanged)
        );

        let p = policy(10, 0);
        let mut s = Stream::new();
        let start = s.top();
        push(&mut s, &p, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.since(&p, &start, None), Err(RecoveryFailure::Expired));
    }

    #[test]
    fn events_for_others_are_not_replayed_to_the_excluded_connection() {
        let p = policy(10, 60_000);
        let mut s = Stream::new();
        let start = s.top();
        s.append(&p, None, |_| Utf8Bytes::from_static("all"));
        s.append(&p, Some("1.1"), |_| Utf8Bytes::from_static("others"));
        assert_eq!(s.since(&p, &start, Some("1.1")).unwrap(), ["all"]);
        assert_eq!(s.since(&p, &start, Some("2.2")).unwrap(), ["all", "others"]);
    }

    #[test]
    fn a_stream_starts_with_its_first_event_and_origins_recover_from_it() {
        let h = History::new(policy(10, 60_000));
        let origin = h.origin();
        assert_eq!(origin.offset, 0);
        assert!(matches!(h.slot("c"), StreamSlot::Vacant(_)));
        // Nothing published since the origin: recovered, nothing to replay; no stream started.
        assert_eq!(h.missed(None, &origin, None), Ok(vec![]));
        assert!(h.started("c").is_none());
        let stream = h.stream("c");
        let mut s = stream.lock();
        push(&mut s, &h.policy, 2);
        assert_eq!(
            h.missed(Some(&mut s), &origin, None).unwrap(),
            ["0@1", "1@2"]
        );
        // A position of a stream that is gone, or another history's origin.
        let other = History::new(policy(10, 60_000)).origin();
        assert_eq!(
            h.missed(None, &s.top(), None),
            Err(RecoveryFailure::EpochChanged)
        );
        assert_eq!(
            h.missed(Some(&mut s), &other, None),
            Err(RecoveryFailure::EpochChanged)
        );
        drop(s);
        // An origin older than the ttl: a stream may have come and gone since.
        let h = History::new(policy(10, 0));
        let old = h.origin();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(h.missed(None, &old, None), Err(RecoveryFailure::Expired));
        assert_eq!(parse_origin("abc.12"), Some(("abc", 12)));
        assert_eq!(parse_origin("abcdef"), None);
    }

    #[test]
    fn failure_reasons_read_back() {
        for f in [RecoveryFailure::EpochChanged, RecoveryFailure::Expired] {
            assert_eq!(RecoveryFailure::from_reason(f.reason()), Some(f));
        }
        assert_eq!(RecoveryFailure::from_reason("ok"), None);
    }

    #[test]
    fn policy_prefixes() {
        let mut p = policy(10, 1000);
        assert!(p.applies_to("anything"));
        p.channels = vec!["private-chat.".into()];
        assert!(p.applies_to("private-chat.1"));
        assert!(!p.applies_to("presence-x"));
        p.size = 0;
        assert!(!p.applies_to("private-chat.1"));
    }
}
