//! Cluster adapter: several nodes share one Redis and behave as one server.
//!
//! - **Broadcasts** are delivered locally at once and published on the pub/sub channel
//!   `{prefix}:bus`, in order, by one writer task per node; every other node delivers them to its
//!   own subscribers. Terminations travel the same way.
//! - **State** (subscription counts, presence members) is written per node, under
//!   `{prefix}:n:{node}:…`, and merged over the nodes that are alive when read. Nodes heartbeat
//!   into the sorted set `{prefix}:nodes`; a node silent for `node_timeout` is reaped by whichever
//!   node sees it first (the `ZREM` decides), which sends `member_removed` for the members that
//!   were only there. So a node killed with `kill -9` leaves no ghost.
//! - **Presence** joins and leaves run as Lua scripts, so "first connection of this user in the
//!   cluster" and "last one gone" are decided atomically.
//! - **Redis down**: local subscribers keep being served, publishes are dropped (logged), presence
//!   falls back to this node's view, `/up` says `degraded`. On reconnection the node rewrites its
//!   own state (Redis may have lost it) and cross-node delivery resumes.
//!
//! Keys hold only app ids and channel names, which cannot contain `:` or newlines (checked).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::{RecoverFrom, Recovery, StreamPosition};
use chorus_protocol::{events, ChannelKind};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::{Adapter, AdapterError, Health, HistoryPage, Publish};
use crate::app::{App, Apps};
use crate::channels::{succeeded_with, Announce, ChannelInfo, Extras, Subscribed};
use crate::outbound::{ConnHandle, Cork};
use crate::presence::{member_added_data, member_removed_data, PresenceMember};
use crate::wire;

/// Settings of the Redis adapter.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key and of the pub/sub channel, so several deployments can share a Redis.
    pub prefix: String,
    /// A node that has not heartbeated for this long is dead; its members are removed.
    pub node_timeout: Duration,
}

/// How long one Redis operation may take before the node treats Redis as unavailable.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Queued writes (publishes, count updates) before new ones are dropped while Redis is slow or down.
const QUEUE: usize = 65_536;
/// Writes sent in one pipeline.
const BATCH: usize = 256;

/// Returns the alive nodes and the time in ms. ARGV[1] = prefix, ARGV[2] = node timeout in ms.
const PRELUDE: &str = r#"
local P = ARGV[1]
local function alive()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZRANGEBYSCORE', P .. ':nodes', now - tonumber(ARGV[2]), '+inf'), now
end
local function elsewhere(nodes, me, suffix, uid)
  for _, n in ipairs(nodes) do
    if n ~= me and redis.call('HEXISTS', P .. ':n:' .. n .. suffix, uid) == 1 then return true end
  end
  return false
end
"#;

/// ARGV: prefix, timeout, node, app, channel, user id, user info, [connection count to set].
/// Returns {1 if the user is new in the cluster, members as flat id/info pairs}.
const JOIN: &str = r#"
local me, app, ch, uid, info = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local nodes = alive()
local suffix = ':p:' .. app .. ':' .. ch
local own = P .. ':n:' .. me
local had = redis.call('HEXISTS', own .. suffix, uid)
local counts = own .. ':pc:' .. app .. ':' .. ch
if ARGV[8] then redis.call('HSET', counts, uid, ARGV[8]) else redis.call('HINCRBY', counts, uid, 1) end
redis.call('HSET', own .. suffix, uid, info)
redis.call('SADD', own .. ':pch', app .. '\n' .. ch)
redis.call('SADD', own .. ':keys', own .. suffix, counts)
local is_new = (had == 0 and not elsewhere(nodes, me, suffix, uid)) and 1 or 0
local members = {}
if not ARGV[8] then
  local seen = {}
  table.insert(nodes, me)
  for _, n in ipairs(nodes) do
    local h = redis.call('HGETALL', P .. ':n:' .. n .. suffix)
    for i = 1, #h, 2 do
      if not seen[h[i]] then
        seen[h[i]] = true
        table.insert(members, h[i]); table.insert(members, h[i + 1])
      end
    end
  end
end
return {is_new, members}
"#;

/// ARGV: prefix, timeout, node, app, channel, user id. Returns 1 if the user left the cluster.
const LEAVE: &str = r#"
local me, app, ch, uid = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local own = P .. ':n:' .. me
local suffix = ':p:' .. app .. ':' .. ch
local counts = own .. ':pc:' .. app .. ':' .. ch
if redis.call('HINCRBY', counts, uid, -1) > 0 then return 0 end
redis.call('HDEL', counts, uid)
redis.call('HDEL', own .. suffix, uid)
local nodes = alive()
if elsewhere(nodes, me, suffix, uid) then return 0 end
return 1
"#;

/// ARGV: prefix, timeout, node, app, channel, delta.
const SUBS: &str = r#"
local key = P .. ':n:' .. ARGV[3] .. ':subs:' .. ARGV[4]
if redis.call('HINCRBY', key, ARGV[5], ARGV[6]) <= 0 then redis.call('HDEL', key, ARGV[5]) end
redis.call('SADD', P .. ':n:' .. ARGV[3] .. ':keys', key)
return 1
"#;

/// ARGV: prefix, timeout, app, prefix filter. Returns flat {channel, subscriptions, users (-1 if not presence)}.
const CHANNELS: &str = r#"
local app, filter = ARGV[3], ARGV[4]
local nodes = alive()
local subs, order = {}, {}
for _, n in ipairs(nodes) do
  local h = redis.call('HGETALL', P .. ':n:' .. n .. ':subs:' .. app)
  for i = 1, #h, 2 do
    local ch = h[i]
    if string.sub(ch, 1, #filter) == filter then
      if not subs[ch] then subs[ch] = 0; table.insert(order, ch) end
      subs[ch] = subs[ch] + tonumber(h[i + 1])
    end
  end
end
local out = {}
for _, ch in ipairs(order) do
  local users = -1
  if string.sub(ch, 1, 9) == 'presence-' then
    local seen, count = {}, 0
    for _, n in ipairs(nodes) do
      for _, uid in ipairs(redis.call('HKEYS', P .. ':n:' .. n .. ':p:' .. app .. ':' .. ch)) do
        if not seen[uid] then seen[uid] = true; count = count + 1 end
      end
    end
    users = count
  end
  if subs[ch] > 0 then
    table.insert(out, ch); table.insert(out, subs[ch]); table.insert(out, users)
  end
end
return out
"#;

/// ARGV: prefix, timeout, app, channel. Returns the channel's user ids.
const USERS: &str = r#"
local nodes = alive()
local seen, out = {}, {}
for _, n in ipairs(nodes) do
  for _, uid in ipairs(redis.call('HKEYS', P .. ':n:' .. n .. ':p:' .. ARGV[3] .. ':' .. ARGV[4])) do
    if not seen[uid] then seen[uid] = true; table.insert(out, uid) end
  end
end
return out
"#;

/// ARGV: prefix, timeout, node. Returns 1 if the node's state was still there (0: Redis lost it
/// or the node was reaped, so it must write it again).
const HEARTBEAT: &str = r#"
local _, now = alive()
local own = P .. ':n:' .. ARGV[3]
local existed = redis.call('EXISTS', own .. ':alive')
redis.call('SET', own .. ':alive', '1')
redis.call('ZADD', P .. ':nodes', now, ARGV[3])
return existed
"#;

/// ARGV: prefix, timeout. Removes dead nodes; returns flat {app, channel, user id} of members that
/// were on dead nodes only.
const REAP: &str = r#"
local nodes, now = alive()
local dead = redis.call('ZRANGEBYSCORE', P .. ':nodes', '-inf', '(' .. (now - tonumber(ARGV[2])))
local removed = {}
for _, d in ipairs(dead) do
  if redis.call('ZREM', P .. ':nodes', d) == 1 then
    local own = P .. ':n:' .. d
    for _, entry in ipairs(redis.call('SMEMBERS', own .. ':pch')) do
      local sep = string.find(entry, '\n', 1, true)
      local app, ch = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
      local suffix = ':p:' .. app .. ':' .. ch
      for _, uid in ipairs(redis.call('HKEYS', own .. suffix)) do
        if not elsewhere(nodes, d, suffix, uid) then
          table.insert(removed, app); table.insert(removed, ch); table.insert(removed, uid)
        end
      end
    end
    for _, k in ipairs(redis.call('SMEMBERS', own .. ':keys')) do redis.call('DEL', k) end
    redis.call('DEL', own .. ':keys', own .. ':pch', own .. ':alive')
  end
end
return removed
"#;

/// ARGV: prefix, timeout, node. Deletes the node's own state (before rewriting it, or on shutdown).
const CLEAR: &str = r#"
local own = P .. ':n:' .. ARGV[3]
for _, k in ipairs(redis.call('SMEMBERS', own .. ':keys')) do redis.call('DEL', k) end
redis.call('DEL', own .. ':keys', own .. ':pch')
return 1
"#;

/// ARGV: prefix, timeout, app, channel, ttl ms, size, epoch to start with, frame without its final
/// `}`, bus envelope up to its frame, the excluded socket id ('' = none). Gives the event the channel's next offset, keeps it in the
/// channel's stream and publishes it on the bus, atomically: bus order is offset order.
const PUBLISH_HISTORY: &str = r#"
local base = P .. ':h:' .. ARGV[3] .. ':' .. ARGV[4]
local ttl = tonumber(ARGV[5])
local epoch = redis.call('GET', base .. ':epoch')
if not epoch then
  epoch = ARGV[7]
  redis.call('SET', base .. ':epoch', epoch)
  redis.call('SET', base .. ':offset', 0)
  redis.call('DEL', base .. ':stream')
end
local offset = redis.call('INCR', base .. ':offset')
local frame = ARGV[8] .. ',"position":{"epoch":"' .. epoch .. '","offset":' .. offset .. '}}'
redis.call('XADD', base .. ':stream', 'MAXLEN', ARGV[6], '*', 'o', offset, 'f', frame, 'x', ARGV[10])
redis.call('PEXPIRE', base .. ':epoch', ttl)
redis.call('PEXPIRE', base .. ':offset', ttl)
redis.call('PEXPIRE', base .. ':stream', ttl)
redis.call('PUBLISH', P .. ':bus', ARGV[9] .. frame .. '}')
return offset
"#;

/// ARGV: prefix, timeout, app, channel, ttl ms, epoch to start with, from epoch ('' = none), from
/// offset, limit (0 = all after `from`), the recovering client's previous socket id ('' = none: its
/// `toOthers()` events are skipped). Returns {epoch, top offset, status, frames}: status is
/// `none` (no recovery asked), `ok`, `epoch_changed` or `expired`.
const READ_HISTORY: &str = r#"
local base = P .. ':h:' .. ARGV[3] .. ':' .. ARGV[4]
local ttl = tonumber(ARGV[5])
local epoch = redis.call('GET', base .. ':epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', base .. ':epoch', epoch, 'PX', ttl)
  redis.call('SET', base .. ':offset', 0, 'PX', ttl)
  redis.call('DEL', base .. ':stream')
end
local top = tonumber(redis.call('GET', base .. ':offset') or '0')
local _, now = alive()
redis.call('XTRIM', base .. ':stream', 'MINID', now - ttl)
local entries = redis.call('XRANGE', base .. ':stream', '-', '+')
local out = {}
if ARGV[7] == '' then
  local limit = tonumber(ARGV[9])
  local first = math.max(1, #entries - limit + 1)
  for i = first, #entries do table.insert(out, entries[i][2][4]) end
  return {epoch, top, 'none', out}
end
local from = tonumber(ARGV[8])
if ARGV[7] ~= epoch or from > top then return {epoch, top, 'epoch_changed', out} end
local oldest = top + 1
if #entries > 0 then oldest = tonumber(entries[1][2][2]) end
if from + 1 < oldest then return {epoch, top, 'expired', out} end
for _, e in ipairs(entries) do
  if tonumber(e[2][2]) > from and (ARGV[10] == '' or e[2][6] ~= ARGV[10]) then table.insert(out, e[2][4]) end
end
return {epoch, top, 'ok', out}
"#;

struct Scripts {
    join: Script,
    leave: Script,
    /// Also sent as plain EVAL in pipelines ([`SUBS_FULL`]).
    subs: Script,
    channels: Script,
    users: Script,
    heartbeat: Script,
    reap: Script,
    clear: Script,
    read_history: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            join: s(JOIN),
            leave: s(LEAVE),
            subs: s(SUBS),
            channels: s(CHANNELS),
            users: s(USERS),
            heartbeat: s(HEARTBEAT),
            reap: s(REAP),
            clear: s(CLEAR),
            read_history: s(READ_HISTORY),
        }
    }
}

/// Writes that must reach Redis in order; none is awaited by the caller.
enum Op {
    Publish(String),
    /// An event on a channel with history: positioned and published by Redis (see PUBLISH_HISTORY).
    PublishHistory {
        app: Arc<App>,
        channel: String,
        /// The frame without its final `}`.
        frame_prefix: String,
        except: Option<String>,
    },
    Subs {
        app: String,
        channel: String,
        delta: i64,
    },
    /// Rewrite this node's state from local state (after Redis lost it).
    Resync,
    /// Fired once every write queued before it has been sent (or has failed).
    Ack(oneshot::Sender<()>),
}

struct Inner {
    node: String,
    settings: RedisSettings,
    apps: Arc<Apps>,
    client: redis::Client,
    conn: ConnectionManager,
    scripts: Scripts,
    ops: mpsc::Sender<Op>,
    /// Whether the pub/sub subscription and the last Redis operation worked.
    subscribed: AtomicBool,
    commands_ok: AtomicBool,
    last_error: Mutex<String>,
    dropped_warned: AtomicBool,
}

/// The Redis cluster adapter. See the module documentation.
pub struct RedisAdapter {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid redis_url: {0}")]
    Url(#[source] redis::RedisError),
}

impl RedisAdapter {
    /// Starts the adapter's background tasks. Redis need not be up yet: the node serves local
    /// subscribers (degraded) until it is.
    pub fn start(settings: RedisSettings, apps: Arc<Apps>) -> Result<Self, RedisSetupError> {
        let client = redis::Client::open(settings.url.as_str()).map_err(RedisSetupError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(RedisSetupError::Url)?;
        let (ops, ops_rx) = mpsc::channel(QUEUE);
        let inner = Arc::new(Inner {
            node: format!("{:016x}", rand::random::<u64>()),
            settings,
            apps,
            client,
            conn,
            scripts: Scripts::new(),
            ops,
            subscribed: AtomicBool::new(false),
            commands_ok: AtomicBool::new(false),
            last_error: Mutex::new("connecting to Redis".into()),
            dropped_warned: AtomicBool::new(false),
        });
        tracing::info!(node = %inner.node, url = %inner.settings.url, prefix = %inner.settings.prefix, "redis adapter starting");
        tokio::spawn(write_loop(Arc::clone(&inner), ops_rx));
        tokio::spawn(subscribe_loop(Arc::clone(&inner)));
        tokio::spawn(heartbeat_loop(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// This node's id in Redis.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }
}

impl Inner {
    fn bus(&self) -> String {
        format!("{}:bus", self.settings.prefix)
    }

    fn timeout_ms(&self) -> u64 {
        self.settings.node_timeout.as_millis() as u64
    }

    /// Queues a write; gives it back when the queue is full.
    fn enqueue(&self, op: Op) -> Result<(), Op> {
        self.ops.try_send(op).map_err(|e| {
            if !self.dropped_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "redis write queue full: dropping cross-node messages until it drains"
                );
            }
            e.into_inner()
        })
    }

    /// Publishes a server event; on channels with history Redis positions it (see PUBLISH_HISTORY).
    /// The receiver fires once Redis has it, so that an HTTP API caller that goes on to publish
    /// through another node cannot overtake it.
    fn publish(
        &self,
        app: &Arc<App>,
        channel: &str,
        event: &Publish<'_>,
    ) -> Option<oneshot::Receiver<()>> {
        self.queue_publish(app, channel, event);
        let (done, wait) = oneshot::channel();
        self.enqueue(Op::Ack(done)).ok().map(|()| wait)
    }

    fn queue_publish(&self, app: &Arc<App>, channel: &str, event: &Publish<'_>) {
        let frame = wire::encode(event.event, Some(channel), event.data, None);
        if !app.history.applies_to(channel) {
            self.broadcast(app, channel, &frame, event.except);
            return;
        }
        let mut frame_prefix = frame.as_str().to_owned();
        frame_prefix.pop();
        let op = Op::PublishHistory {
            app: Arc::clone(app),
            channel: channel.to_owned(),
            frame_prefix,
            except: event.except.map(str::to_owned),
        };
        if self.enqueue(op).is_err() {
            app.deliver_local(channel, &frame, event.except);
        }
    }

    /// The channel's stream position and, for a recovery, the frames after `from` (status `ok`,
    /// `epoch_changed`, `expired`); without `from`, the newest `limit` frames (status `none`).
    async fn read_history(
        &self,
        app: &App,
        channel: &str,
        from: Option<&RecoverFrom>,
        limit: usize,
    ) -> Result<(StreamPosition, String, Vec<Utf8Bytes>), AdapterError> {
        let ttl = (app.history.policy.ttl.as_millis() as u64).to_string();
        let epoch = new_epoch();
        let (from_epoch, from_offset, skip) = match from {
            Some(f) => (
                f.position.epoch.as_str(),
                f.position.offset.to_string(),
                f.socket_id.as_deref().unwrap_or(""),
            ),
            None => ("", "0".to_owned(), ""),
        };
        let limit = limit.to_string();
        let (epoch, top, status, frames): (String, u64, String, Vec<String>) = self
            .run(
                &self.scripts.read_history,
                &[
                    &app.config.id,
                    channel,
                    &ttl,
                    &epoch,
                    from_epoch,
                    &from_offset,
                    &limit,
                    skip,
                ],
            )
            .await?;
        Ok((
            StreamPosition { epoch, offset: top },
            status,
            frames.into_iter().map(Utf8Bytes::from).collect(),
        ))
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        let was_ok = self.commands_ok.swap(false, Ordering::AcqRel);
        let msg = format!("{what}: {e}");
        if was_ok {
            tracing::error!(error = %msg, "redis unavailable: serving local subscribers only");
        } else {
            tracing::debug!(error = %msg, "redis still unavailable");
        }
        *self.last_error.lock() = msg;
    }

    fn succeeded(&self) {
        if !self.commands_ok.swap(true, Ordering::AcqRel) {
            tracing::info!("redis commands working");
        }
    }

    /// Runs a script with the common arguments (prefix, timeout) followed by `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, AdapterError> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.settings.prefix).arg(self.timeout_ms());
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(OP_TIMEOUT, inv.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed("redis command", &e);
                Err(AdapterError(format!("redis: {e}")))
            }
            Err(_) => {
                self.failed("redis command", &"timed out");
                Err(AdapterError("redis: timed out".into()))
            }
        }
    }

    /// Delivers locally and publishes to the other nodes.
    fn broadcast(&self, app: &App, channel: &str, frame: &Utf8Bytes, except: Option<&str>) {
        app.deliver_local(channel, frame, except);
        let _ = self.enqueue(Op::Publish(envelope(
            &self.node,
            &app.config.id,
            Body::Event {
                channel,
                except,
                frame,
            },
        )));
    }

    async fn join(
        &self,
        app: &App,
        channel: &str,
        member: &PresenceMember,
        set_count: Option<usize>,
    ) -> Result<(bool, String), AdapterError> {
        let info = member.user_info.as_ref().map(|r| r.get()).unwrap_or("null");
        let count = set_count.map(|c| c.to_string());
        let mut args = vec![
            self.node.as_str(),
            app.config.id.as_str(),
            channel,
            member.user_id.as_str(),
            info,
        ];
        if let Some(c) = &count {
            args.push(c);
        }
        let (is_new, flat): (i64, Vec<String>) = self.run(&self.scripts.join, &args).await?;
        Ok((is_new == 1, presence_data(&flat)))
    }

    async fn leave(&self, app: &App, channel: &str, user_id: &str) -> Result<bool, AdapterError> {
        let gone: i64 = self
            .run(
                &self.scripts.leave,
                &[&self.node, &app.config.id, channel, user_id],
            )
            .await?;
        Ok(gone == 1)
    }

    /// Rewrites this node's state from local state, announcing members that are new again.
    async fn resync(&self) -> Result<(), AdapterError> {
        let _: i64 = self.run(&self.scripts.clear, &[&self.node]).await?;
        for app in self.apps.iter() {
            for (channel, count) in app.channels.subscription_counts() {
                let _: i64 = self
                    .run(
                        &self.scripts.subs,
                        &[&self.node, &app.config.id, &channel, &count.to_string()],
                    )
                    .await?;
            }
            for (channel, member, count) in app.channels.presence_snapshot() {
                let (is_new, _) = self.join(app, &channel, &member, Some(count)).await?;
                if is_new {
                    let frame = wire::encode_string_data(
                        events::MEMBER_ADDED,
                        Some(&channel),
                        &member_added_data(&member),
                    );
                    self.broadcast(app, &channel, &frame, None);
                }
            }
        }
        tracing::info!("redis state of this node rewritten");
        Ok(())
    }
}

/// What travels on the bus.
enum Body<'a> {
    Event {
        channel: &'a str,
        except: Option<&'a str>,
        frame: &'a Utf8Bytes,
    },
    Terminate {
        user_id: &'a str,
    },
}

/// Encodes a bus message. The frame is already JSON, so it is embedded as is, not re-escaped.
/// A new history epoch.
fn new_epoch() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

/// A bus message about an event, up to (not including) its frame and closing brace. With `all`,
/// the sending node delivers it too (history events: everyone delivers in bus order).
fn envelope_prefix(
    node: &str,
    app: &str,
    channel: &str,
    except: Option<&str>,
    all: bool,
) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let except = except.map(s).unwrap_or_else(|| "null".into());
    format!(
        r#"{{"node":{},"all":{all},"app":{},"channel":{},"except":{except},"frame":"#,
        s(node),
        s(app),
        s(channel)
    )
}

fn envelope(node: &str, app: &str, body: Body<'_>) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_default();
    match body {
        Body::Event {
            channel,
            except,
            frame,
        } => format!(
            "{}{}}}",
            envelope_prefix(node, app, channel, except, false),
            frame.as_str()
        ),
        Body::Terminate { user_id } => format!(
            r#"{{"node":{},"app":{},"terminate_user":{}}}"#,
            s(node),
            s(app),
            s(user_id)
        ),
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    node: Cow<'a, str>,
    #[serde(default)]
    all: bool,
    #[serde(borrow)]
    app: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    except: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    frame: Option<&'a RawValue>,
    #[serde(borrow, default)]
    terminate_user: Option<Cow<'a, str>>,
}

fn deliver(inner: &Inner, payload: &[u8]) {
    let Ok(env) = serde_json::from_slice::<Envelope>(payload) else {
        tracing::warn!("ignoring malformed message on the redis bus");
        return;
    };
    if env.node == inner.node && !env.all {
        return;
    }
    let Some(app) = inner.apps.by_id(&env.app) else {
        return;
    };
    if let (Some(channel), Some(frame)) = (env.channel, env.frame) {
        let frame = Utf8Bytes::from(frame.get().to_owned());
        app.deliver_local(&channel, &frame, env.except.as_deref());
    } else if let Some(user_id) = env.terminate_user {
        app.users.terminate(&user_id);
    }
}

/// `subscription_succeeded` data from flat id/info pairs.
fn presence_data(flat: &[String]) -> String {
    let mut ids = Vec::new();
    let mut hash = serde_json::Map::new();
    for pair in flat.chunks(2) {
        if let [id, info] = pair {
            ids.push(serde_json::Value::String(id.clone()));
            let info = serde_json::from_str(info).unwrap_or(serde_json::Value::Null);
            hash.insert(id.clone(), info);
        }
    }
    serde_json::json!({"presence": {"count": ids.len(), "ids": ids, "hash": hash}}).to_string()
}

/// Sends queued writes in order, a pipeline at a time.
async fn write_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<Op>) {
    let bus = inner.bus();
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut resync = false;
        // History events of this batch, delivered locally (without position) if Redis fails.
        let mut fallback = Vec::new();
        let mut acks = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Publish(msg) => {
                    pipe.publish(&bus, msg).ignore();
                }
                Op::Subs {
                    app,
                    channel,
                    delta,
                } => {
                    // EVAL (not EVALSHA) inside a pipeline: the script may not be cached yet.
                    pipe.cmd("EVAL")
                        .arg(SUBS_FULL.as_str())
                        .arg(0)
                        .arg(&inner.settings.prefix)
                        .arg(inner.timeout_ms())
                        .arg(&inner.node)
                        .arg(&app)
                        .arg(&channel)
                        .arg(delta)
                        .ignore();
                }
                Op::PublishHistory {
                    app,
                    channel,
                    frame_prefix,
                    except,
                } => {
                    let policy = &app.history.policy;
                    let env_prefix = envelope_prefix(
                        &inner.node,
                        &app.config.id,
                        &channel,
                        except.as_deref(),
                        true,
                    );
                    pipe.cmd("EVAL")
                        .arg(PUBLISH_HISTORY_FULL.as_str())
                        .arg(0)
                        .arg(&inner.settings.prefix)
                        .arg(inner.timeout_ms())
                        .arg(&app.config.id)
                        .arg(&channel)
                        .arg(policy.ttl.as_millis() as u64)
                        .arg(policy.size)
                        .arg(new_epoch())
                        .arg(&frame_prefix)
                        .arg(env_prefix)
                        .arg(except.as_deref().unwrap_or(""))
                        .ignore();
                    fallback.push((app, channel, frame_prefix, except));
                }
                Op::Resync => resync = true,
                Op::Ack(done) => acks.push(done),
            }
        }
        let mut conn = inner.conn.clone();
        match tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                inner.succeeded();
                inner.dropped_warned.store(false, Ordering::Relaxed);
            }
            Ok(Err(e)) => inner.failed("redis publish", &e),
            Err(_) => inner.failed("redis publish", &"timed out"),
        }
        if !inner.commands_ok.load(Ordering::Acquire) {
            // Redis did not take them: local subscribers still get them live, unpositioned,
            // written by this task as a bus message's are (see `Cork`).
            let _cork = Cork::new();
            for (app, channel, mut frame, except) in fallback.drain(..) {
                frame.push('}');
                app.deliver_local(&channel, &Utf8Bytes::from(frame), except.as_deref());
            }
        }
        for done in acks.drain(..) {
            let _ = done.send(());
        }
        if resync {
            if let Err(e) = inner.resync().await {
                tracing::warn!(error = %e, "could not rewrite this node's redis state; will retry");
                // The next heartbeat sees the state missing and asks again.
            }
        }
    }
}

static SUBS_FULL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{PRELUDE}{SUBS}"));
static PUBLISH_HISTORY_FULL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{PRELUDE}{PUBLISH_HISTORY}"));

/// Keeps a pub/sub subscription to the bus, reconnecting with backoff.
async fn subscribe_loop(inner: Arc<Inner>) {
    let bus = inner.bus();
    let mut delay = Duration::from_millis(100);
    loop {
        match inner.client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&bus).await {
                Ok(()) => {
                    inner.subscribed.store(true, Ordering::Release);
                    tracing::info!(channel = %bus, "subscribed to the redis bus");
                    delay = Duration::from_millis(100);
                    // Redis may have restarted empty: write our state again.
                    let _ = inner.enqueue(Op::Resync);
                    let mut stream = pubsub.on_message();
                    while let Some(msg) = stream.next().await {
                        let _cork = Cork::new();
                        deliver(&inner, msg.get_payload_bytes());
                    }
                    inner.subscribed.store(false, Ordering::Release);
                    inner.failed("redis bus", &"connection lost");
                }
                Err(e) => inner.failed("redis subscribe", &e),
            },
            Err(e) => inner.failed("redis connect", &e),
        }
        if Arc::strong_count(&inner) == 1 {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Heartbeats, rewrites lost state, and reaps dead nodes.
async fn heartbeat_loop(weak: std::sync::Weak<Inner>) {
    let mut first = true;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let interval = (inner.settings.node_timeout / 4).max(Duration::from_millis(250));
        if let Ok(existed) = inner
            .run::<i64>(&inner.scripts.heartbeat, &[&inner.node])
            .await
        {
            if existed == 0 && !first {
                tracing::warn!("this node's redis state is gone (redis restarted or node reaped): rewriting it");
                let _ = inner.enqueue(Op::Resync);
            }
            first = false;
            if let Ok(flat) = inner.run::<Vec<String>>(&inner.scripts.reap, &[]).await {
                let mut seen = HashSet::new();
                for triple in flat.chunks(3) {
                    if let [app_id, channel, user_id] = triple {
                        if !seen.insert((app_id.clone(), channel.clone(), user_id.clone())) {
                            continue;
                        }
                        if let Some(app) = inner.apps.by_id(app_id) {
                            tracing::info!(app = %app_id, channel = %channel, user = %user_id, "removing member of a dead node");
                            let frame = wire::encode_string_data(
                                events::MEMBER_REMOVED,
                                Some(channel),
                                &member_removed_data(user_id),
                            );
                            inner.broadcast(app, channel, &frame, None);
                        }
                    }
                }
            }
        }
        drop(inner);
        tokio::time::sleep(interval).await;
    }
}

impl Adapter for RedisAdapter {
    fn broadcast(&self, app: &Arc<App>, channel: &str, frame: &Utf8Bytes, except: Option<&str>) {
        self.inner.broadcast(app, channel, frame, except);
    }

    fn terminate_user(&self, app: &Arc<App>, user_id: &str) {
        app.users.terminate(user_id);
        let inner = &self.inner;
        let _ = inner.enqueue(Op::Publish(envelope(
            &inner.node,
            &app.config.id,
            Body::Terminate { user_id },
        )));
    }

    fn subscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        kind: ChannelKind,
        conn: &ConnHandle,
        member: Option<PresenceMember>,
        recover: Option<RecoverFrom>,
    ) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let channel = channel.to_owned();
        let conn = conn.clone();
        Box::pin(async move {
            let history = app.history.applies_to(&channel);
            let unavailable = || {
                recover.as_ref().map(|_| Recovery {
                    recovered: false,
                    replayed: 0,
                    reason: Some("unavailable".into()),
                })
            };
            let subs_changed = |delta| Op::Subs {
                app: app.config.id.clone(),
                channel: channel.clone(),
                delta,
            };
            if member.is_none() && !history {
                let recovery = unavailable();
                let extras = Extras {
                    position: None,
                    recovery: recovery.as_ref(),
                };
                if let Subscribed::New { .. } =
                    app.channels
                        .subscribe(&channel, kind, &conn, None, Announce::Local, extras)
                {
                    let _ = inner.enqueue(subs_changed(1));
                }
                return;
            }
            // Cluster-wide members and history come from Redis; events wait until they are sent.
            let outcome = app.channels.subscribe(
                &channel,
                kind,
                &conn,
                member.as_ref(),
                Announce::Deferred,
                Extras::default(),
            );
            let Subscribed::New { new_local_user } = outcome else {
                return;
            };
            let _ = inner.enqueue(subs_changed(1));
            let (announce, data) = match &member {
                Some(m) => match inner.join(&app, &channel, m, None).await {
                    Ok(result) => result,
                    // Degraded: this node's view is the best there is.
                    Err(_) => (new_local_user, app.channels.local_presence_data(&channel)),
                },
                None => (false, "{}".to_owned()),
            };
            let (top, recovery, replay) = if history {
                match inner
                    .read_history(&app, &channel, recover.as_ref(), 0)
                    .await
                {
                    Ok((top, status, frames)) => {
                        let recovery = recover.as_ref().map(|_| match status.as_str() {
                            "ok" => Recovery {
                                recovered: true,
                                replayed: frames.len() as u64,
                                reason: None,
                            },
                            other => Recovery {
                                recovered: false,
                                replayed: 0,
                                reason: Some(other.to_owned()),
                            },
                        });
                        let replay = if status == "ok" { frames } else { Vec::new() };
                        (Some(top), recovery, replay)
                    }
                    Err(_) => (None, unavailable(), Vec::new()),
                }
            } else {
                (None, unavailable(), Vec::new())
            };
            let extras = Extras {
                position: top.as_ref(),
                recovery: recovery.as_ref(),
            };
            app.channels.activate(
                &channel,
                conn.socket_id(),
                &succeeded_with(&channel, &data, extras),
                &replay,
                top.as_ref(),
            );
            if let (true, Some(member)) = (announce, &member) {
                let frame = wire::encode_string_data(
                    events::MEMBER_ADDED,
                    Some(&channel),
                    &member_added_data(member),
                );
                inner.broadcast(&app, &channel, &frame, Some(conn.socket_id()));
            }
        })
    }

    fn publish(
        &self,
        app: &Arc<App>,
        channel: &str,
        event: &Publish<'_>,
    ) -> BoxFuture<'static, ()> {
        let sent = self.inner.publish(app, channel, event);
        Box::pin(async move {
            if let Some(sent) = sent {
                let _ = tokio::time::timeout(OP_TIMEOUT, sent).await;
            }
        })
    }

    fn history(
        &self,
        app: &Arc<App>,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'static, Result<HistoryPage, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let channel = channel.to_owned();
        Box::pin(async move {
            if !app.history.applies_to(&channel) {
                return Ok(HistoryPage::none());
            }
            let (top, _, events) = inner.read_history(&app, &channel, None, limit).await?;
            Ok(HistoryPage {
                position: Some(top),
                events,
            })
        })
    }

    fn unsubscribe(
        &self,
        app: &Arc<App>,
        channel: &str,
        socket_id: &str,
    ) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        let app = Arc::clone(app);
        let channel = channel.to_owned();
        let left = app.channels.unsubscribe(&channel, socket_id, false);
        Box::pin(async move {
            let Some(left) = left else { return };
            let _ = inner.enqueue(Op::Subs {
                app: app.config.id.clone(),
                channel: channel.clone(),
                delta: -1,
            });
            let Some(user_id) = left.user_id else { return };
            if !left.last_local_connection {
                return;
            }
            let gone = inner.leave(&app, &channel, &user_id).await.unwrap_or(true);
            if gone {
                let frame = wire::encode_string_data(
                    events::MEMBER_REMOVED,
                    Some(&channel),
                    &member_removed_data(&user_id),
                );
                inner.broadcast(&app, &channel, &frame, None);
            }
        })
    }

    fn channel_info(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<ChannelInfo, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app_id = app.config.id.clone();
        let channel = channel.to_owned();
        Box::pin(async move {
            let flat: Vec<redis::Value> = inner
                .run(&inner.scripts.channels, &[&app_id, &channel])
                .await?;
            let list = parse_channels(flat);
            let presence = ChannelKind::of(&channel) == ChannelKind::Presence;
            Ok(list
                .into_iter()
                .find(|(name, _)| *name == channel)
                .map(|(_, info)| info)
                .unwrap_or(ChannelInfo {
                    subscription_count: 0,
                    user_count: presence.then_some(0),
                }))
        })
    }

    fn channels(
        &self,
        app: &Arc<App>,
        prefix: &str,
    ) -> BoxFuture<'static, Result<Vec<(String, ChannelInfo)>, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app_id = app.config.id.clone();
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let flat: Vec<redis::Value> = inner
                .run(&inner.scripts.channels, &[&app_id, &prefix])
                .await?;
            Ok(parse_channels(flat))
        })
    }

    fn user_ids(
        &self,
        app: &Arc<App>,
        channel: &str,
    ) -> BoxFuture<'static, Result<Vec<String>, AdapterError>> {
        let inner = Arc::clone(&self.inner);
        let app_id = app.config.id.clone();
        let channel = channel.to_owned();
        Box::pin(async move { inner.run(&inner.scripts.users, &[&app_id, &channel]).await })
    }

    fn health(&self) -> Health {
        let inner = &self.inner;
        if inner.subscribed.load(Ordering::Acquire) && inner.commands_ok.load(Ordering::Acquire) {
            Health::Ok
        } else {
            Health::Degraded(inner.last_error.lock().clone())
        }
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let _: Result<i64, _> = inner.run(&inner.scripts.clear, &[&inner.node]).await;
            let mut conn = inner.conn.clone();
            let key = format!("{}:nodes", inner.settings.prefix);
            let alive = format!("{}:n:{}:alive", inner.settings.prefix, inner.node);
            let _ = tokio::time::timeout(
                OP_TIMEOUT,
                redis::pipe()
                    .zrem(&key, &inner.node)
                    .del(&alive)
                    .query_async::<()>(&mut conn),
            )
            .await;
            tracing::info!(node = %inner.node, "left the redis cluster");
        })
    }
}

fn parse_channels(flat: Vec<redis::Value>) -> Vec<(String, ChannelInfo)> {
    let mut out = Vec::new();
    for triple in flat.chunks(3) {
        if let [name, subs, users] = triple {
            let (Ok(name), Ok(subs), Ok(users)) = (
                redis::from_redis_value_ref::<String>(name),
                redis::from_redis_value_ref::<i64>(subs),
                redis::from_redis_value_ref::<i64>(users),
            ) else {
                continue;
            };
            out.push((
                name,
                ChannelInfo {
                    subscription_count: subs.max(0) as usize,
                    user_count: (users >= 0).then_some(users as usize),
                },
            ));
        }
    }
    out
}
