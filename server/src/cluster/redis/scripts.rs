//! Every Redis call, typed: the Lua scripts (`lua/*.lua`, each documenting its `KEYS` and `ARGV`)
//! and the few plain commands. The one place that knows each script's argument order and the
//! shape of its reply. Every call is bounded by [`OP_TIMEOUT`] and reports to [`LinkHealth`].
//!
//! Two ways in: the writer's pipelined writes go into a [`Batch`] (this file); the calls whose
//! answer the caller waits for are in `scripts/calls.rs`. On a Redis Cluster a pipeline may only
//! touch one slot, so [`Scripts::send`] cuts a batch into one pipeline per hash tag (a channel's
//! writes stay in order: they share its tag) and sends those side by side.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::{Cmd, Pipeline, Script, Value};

use super::health::LinkHealth;
use super::keys;
use super::link::{Commands, Conn, OP_TIMEOUT};
use crate::error::AdapterError;
use crate::hub::cache::CACHE_TTL;
use crate::hub::history::{new_epoch, HistoryPolicy};
use crate::wire::{self, OpenFrame};

mod calls;

pub use calls::{Join, Orphan, ReadHistory};

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// What the node's calls have in common: the connection, the key prefix, this node's id and
/// whether Redis is a cluster (sharded pub/sub, one slot per pipeline).
pub struct Scripts {
    conn: Commands,
    prefix: String,
    timeout_ms: u64,
    node: String,
    cluster: bool,
    health: Arc<LinkHealth>,
    join: Script,
    leave: Script,
    user_delta: Script,
    users_online: Script,
    users: Script,
    app_channels: Script,
    channel_info: Script,
    heartbeat: Script,
    reap: Script,
    reap_channel: Script,
    reap_app: Script,
    read_history: Script,
    /// Sources of the scripts sent as plain EVAL in pipelines (the script may not be cached yet).
    subscription_delta_source: String,
    publish_history_source: String,
    subscription_count_source: String,
}

/// An event on a channel with history, positioned and published by Redis.
pub struct PublishHistory<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    pub policy: &'a HistoryPolicy,
    pub frame: &'a OpenFrame,
    /// The bus envelope up to the frame (the script appends the positioned frame and `}`).
    pub envelope_prefix: &'a str,
    pub except: Option<&'a str>,
}

/// Commands sent together by [`Scripts::send`]; on a Redis Cluster each with the hash tag of what
/// it touches (a single Redis needs none: no allocation on its path). Made by [`Scripts::batch`].
pub struct Batch {
    cluster: bool,
    cmds: Vec<(String, Cmd, bool)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// `reply`: the command's reply is one of [`Scripts::send`]'s results (else it is dropped).
    fn push(&mut self, name: &str, cmd: Cmd, reply: bool) {
        let tag = if self.cluster {
            keys::tag(name).to_owned()
        } else {
            String::new()
        };
        self.cmds.push((tag, cmd, reply));
    }
}

impl Scripts {
    pub fn new(
        conn: Commands,
        prefix: String,
        node_timeout: Duration,
        node: String,
        cluster: bool,
        health: Arc<LinkHealth>,
    ) -> Self {
        let source = |body: &str| format!("{PRELUDE}{body}");
        Self {
            conn,
            prefix,
            timeout_ms: node_timeout.as_millis() as u64,
            node,
            cluster,
            health,
            join: script(include_str!("lua/join.lua")),
            leave: script(include_str!("lua/leave.lua")),
            user_delta: script(include_str!("lua/user_delta.lua")),
            users_online: script(include_str!("lua/users_online.lua")),
            users: script(include_str!("lua/users.lua")),
            app_channels: script(include_str!("lua/app_channels.lua")),
            channel_info: script(include_str!("lua/channel_info.lua")),
            heartbeat: script(include_str!("lua/heartbeat.lua")),
            reap: script(include_str!("lua/reap.lua")),
            reap_channel: script(include_str!("lua/reap_channel.lua")),
            reap_app: script(include_str!("lua/reap_app.lua")),
            read_history: script(include_str!("lua/read_history.lua")),
            subscription_delta_source: source(include_str!("lua/subscription_delta.lua")),
            publish_history_source: source(include_str!("lua/publish_history.lua")),
            subscription_count_source: source(include_str!("lua/subscription_count.lua")),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn health(&self) -> &LinkHealth {
        &self.health
    }

    /// An empty batch for [`Scripts::send`].
    pub fn batch(&self) -> Batch {
        Batch {
            cluster: self.cluster,
            cmds: Vec::new(),
        }
    }

    fn channel_base(&self, app: &str, channel: &str) -> String {
        keys::channel(&self.prefix, app, channel)
    }

    fn app_base(&self, app: &str) -> String {
        keys::app(&self.prefix, app)
    }

    /// A channel's route: only nodes serving it listen (sharded pub/sub on a Redis Cluster, so it
    /// flows through its slot's shard only).
    pub fn route(&self, app: &str, channel: &str) -> String {
        keys::route(&self.prefix, app, channel)
    }

    /// The command that publishes on a route.
    fn route_publish(&self) -> &'static str {
        if self.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// A message on a channel's route, or (`route` false) on the bus.
    pub fn publish(&self, batch: &mut Batch, to: &str, msg: &str, route: bool) {
        let mut cmd = redis::cmd(if route {
            self.route_publish()
        } else {
            "PUBLISH"
        });
        cmd.arg(to).arg(msg);
        batch.push(to, cmd, false);
    }

    /// This node's subscription count of a channel changes; its reply (see
    /// [`Scripts::delta_reply`]) says whether the channel became occupied or vacated.
    pub fn subscription_delta(&self, batch: &mut Batch, app: &str, channel: &str, delta: i64) {
        let base = self.channel_base(app, channel);
        let mut cmd = eval(&self.subscription_delta_source, &base);
        cmd.arg(&self.node).arg(delta);
        batch.push(&base, cmd, true);
    }

    /// The reply of [`Scripts::subscription_delta`]: (1 occupied / -1 vacated / 0, this node's
    /// count now).
    pub fn delta_reply(value: &Value) -> (i64, i64) {
        redis::from_redis_value_ref::<(i64, i64)>(value).unwrap_or((0, 1))
    }

    /// Whether this node serves `channel`, for the app's channel listing.
    pub fn index(&self, batch: &mut Batch, app: &str, channel: &str, serves: bool) {
        // Plain commands (no script source on every subscribe): the node stays in the app's set
        // of listing nodes until it is reaped or clears its state (`reap_app.lua`).
        let base = self.app_base(app);
        let mut cmd = redis::cmd(if serves { "SADD" } else { "SREM" });
        cmd.arg(keys::app_channels_of(&base, &self.node))
            .arg(channel);
        batch.push(&base, cmd, false);
        if serves {
            let mut cmd = redis::cmd("SADD");
            cmd.arg(format!("{base}:cn")).arg(&self.node);
            batch.push(&base, cmd, false);
        }
    }

    /// A channel's subscription count, summed over the nodes; with `envelope_prefix` it is also
    /// published to every node's subscribers. The reply is the count.
    pub fn subscription_count(
        &self,
        batch: &mut Batch,
        app: &str,
        channel: &str,
        envelope_prefix: Option<&str>,
    ) {
        let base = self.channel_base(app, channel);
        let mut cmd = eval(&self.subscription_count_source, &base);
        cmd.arg(wire::json(channel))
            .arg(envelope_prefix.unwrap_or(""))
            .arg(self.route_publish())
            .arg(self.route(app, channel));
        batch.push(&base, cmd, true);
    }

    /// A cache channel's last event (kept [`CACHE_TTL`], as Pusher).
    pub fn cache(&self, batch: &mut Batch, app: &str, channel: &str, frame: &str) {
        let key = keys::cache(&self.channel_base(app, channel));
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(frame)
            .arg("PX")
            .arg(CACHE_TTL.as_millis() as u64);
        batch.push(&key, cmd, false);
    }

    /// An event on a channel with history.
    pub fn publish_history(&self, batch: &mut Batch, p: PublishHistory<'_>) {
        let base = self.channel_base(p.app, p.channel);
        let mut cmd = eval(&self.publish_history_source, &base);
        cmd.arg(p.policy.ttl.as_millis() as u64)
            .arg(p.policy.size)
            .arg(new_epoch())
            .arg(p.frame.as_str())
            .arg(p.envelope_prefix)
            .arg(p.except.unwrap_or(""))
            .arg(self.route_publish())
            .arg(self.route(p.app, p.channel));
        batch.push(&base, cmd, false);
    }

    /// Sends the batches, each after the one before it has been applied (a single Redis takes
    /// them as one pipeline, in order). Returns the replies asked for, in order, or `None` when
    /// Redis did not take them all.
    pub async fn send(&self, batches: Vec<Batch>) -> Option<Vec<Value>> {
        let conn = self.connection().ok()?;
        let sent = tokio::time::timeout(OP_TIMEOUT, async {
            let mut replies = Vec::new();
            if self.cluster {
                for batch in batches.into_iter().filter(|b| !b.is_empty()) {
                    replies.extend(send_by_slot(&conn, batch).await?);
                }
            } else {
                let mut pipe = redis::pipe();
                for (_, cmd, reply) in batches.into_iter().flat_map(|b| b.cmds) {
                    pipe.add_command(cmd);
                    if !reply {
                        pipe.ignore();
                    }
                }
                if !pipe.is_empty() {
                    replies = pipe.query_async(&mut conn.clone()).await?;
                }
            }
            Ok::<_, redis::RedisError>(replies)
        })
        .await;
        match sent {
            Ok(Ok(replies)) => {
                self.health.succeeded();
                Some(replies)
            }
            Ok(Err(e)) => {
                self.health.failed("redis publish", &e);
                None
            }
            Err(_) => {
                self.health.failed("redis publish", &"timed out");
                None
            }
        }
    }

    /// The command connection; none while the Sentinels (or the cluster) have not answered yet
    /// (`link::follow_primary` reports why).
    fn connection(&self) -> Result<Conn, AdapterError> {
        match self.conn.load_full() {
            Some(conn) => Ok((*conn).clone()),
            None => Err(AdapterError("redis: not connected yet".into())),
        }
    }

    /// Runs a script on the keys under `base` with `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        base: &str,
        args: &[&str],
    ) -> Result<T, AdapterError> {
        let mut inv = script.prepare_invoke();
        inv.key(base);
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.connection()?;
        self.bounded(inv.invoke_async::<T>(&mut conn)).await
    }

    /// One command within [`OP_TIMEOUT`], its outcome reported to [`LinkHealth`].
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(OP_TIMEOUT, call).await {
            Ok(Ok(v)) => {
                self.health.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.health.failed("redis command", &e);
                Err(AdapterError(format!("redis: {e}")))
            }
            Err(_) => {
                self.health.failed("redis command", &"timed out");
                Err(AdapterError("redis: timed out".into()))
            }
        }
    }
}

/// EVAL of a script on the keys under `base`.
fn eval(source: &str, base: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source).arg(1).arg(base);
    cmd
}

/// A Redis Cluster takes a pipeline within one slot only: one pipeline per hash tag (in the
/// batch's order within it), all sent at once; the replies put back in the batch's order.
async fn send_by_slot(conn: &Conn, batch: Batch) -> redis::RedisResult<Vec<Value>> {
    let mut groups: Vec<(Pipeline, Vec<usize>)> = Vec::new();
    let mut by_tag: HashMap<String, usize> = HashMap::new();
    let mut replies = 0;
    for (tag, cmd, reply) in batch.cmds {
        let g = *by_tag.entry(tag).or_insert_with(|| {
            groups.push((redis::pipe(), Vec::new()));
            groups.len() - 1
        });
        let (pipe, slots) = &mut groups[g];
        pipe.add_command(cmd);
        if reply {
            slots.push(replies);
            replies += 1;
        } else {
            pipe.ignore();
        }
    }
    let sent = join_all(groups.iter().map(|(pipe, _)| {
        let mut conn = conn.clone();
        async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
    }))
    .await;
    let mut out = vec![Value::Nil; replies];
    for ((_, slots), result) in groups.iter().zip(sent) {
        for (slot, value) in slots.iter().zip(result?) {
            out[*slot] = value;
        }
    }
    Ok(out)
}
