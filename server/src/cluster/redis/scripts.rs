//! The Lua scripts (`lua/*.lua`, each documenting its `ARGV`) behind typed calls: the one place
//! that knows each script's argument order and the shape of its reply. Every call is bounded by
//! [`OP_TIMEOUT`] and reports to [`LinkHealth`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::{RecoverFrom, StreamPosition};
use redis::aio::ConnectionManager;

use super::link::{Commands, OP_TIMEOUT};
use redis::{Pipeline, Script};

use super::health::LinkHealth;
use crate::error::AdapterError;
use crate::hub::cache::CACHE_TTL;
use crate::hub::channels::ChannelInfo;
use crate::hub::history::{new_epoch, HistoryPolicy, RecoveryFailure};
use crate::hub::presence::PresenceMember;
use crate::wire::{self, OpenFrame};

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// What the node's calls have in common: the connection, the key prefix, the node timeout and
/// this node's id (the first arguments of every script).
pub struct Scripts {
    conn: Commands,
    prefix: String,
    timeout_ms: u64,
    node: String,
    health: Arc<LinkHealth>,
    join: Script,
    leave: Script,
    user_delta: Script,
    users_online: Script,
    subscription_delta: Script,
    channels: Script,
    users: Script,
    heartbeat: Script,
    reap: Script,
    clear: Script,
    read_history: Script,
    /// Sources of the scripts sent as plain EVAL in pipelines (see [`Self::pipe_eval`]).
    subscription_delta_source: String,
    publish_history_source: String,
    subscription_count_source: String,
}

/// A presence connection joining ([`Scripts::join`]).
pub struct Join<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    pub member: &'a PresenceMember,
    /// Resync: the user's connection count on this node to set (and no member list wanted).
    pub set_count: Option<usize>,
}

/// What a join learned.
pub struct Joined {
    /// The user had no connection anywhere in the cluster before.
    pub is_new: bool,
    /// The cluster's members as `subscription_succeeded` data (not fetched on resync).
    pub presence_data: String,
    /// How many members that is.
    pub members: usize,
}

/// A history read ([`Scripts::read_history`]).
pub struct ReadHistory<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    pub policy: &'a HistoryPolicy,
    /// With it, the frames after it; without, the newest `limit` frames.
    pub from: Option<&'a RecoverFrom>,
    pub limit: usize,
}

/// What a history read found.
pub struct HistoryRead {
    /// The channel's newest position.
    pub top: StreamPosition,
    /// The frames, oldest first; a recovery that cannot be served says why.
    pub frames: Result<Vec<Utf8Bytes>, RecoveryFailure>,
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

/// What reaping dead nodes left behind.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Presence members that were only on dead nodes, each once.
    pub members: Vec<Orphan>,
    /// (app, channel) of channels whose subscribers were all on dead nodes, each once.
    pub vacated: Vec<(String, String)>,
    /// (app, user id) of signed-in users that were only on dead nodes, each once.
    pub offline: Vec<(String, String)>,
}

/// A presence member that was only on a dead node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orphan {
    pub app: String,
    pub channel: String,
    pub user_id: String,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

impl Scripts {
    pub fn new(
        conn: Commands,
        prefix: String,
        node_timeout: Duration,
        node: String,
        health: Arc<LinkHealth>,
    ) -> Self {
        let publish_history = include_str!("lua/publish_history.lua");
        let subscription_delta = include_str!("lua/subscription_delta.lua");
        Self {
            conn,
            prefix,
            timeout_ms: node_timeout.as_millis() as u64,
            node,
            health,
            join: script(include_str!("lua/join.lua")),
            user_delta: script(include_str!("lua/user_delta.lua")),
            users_online: script(include_str!("lua/users_online.lua")),
            leave: script(include_str!("lua/leave.lua")),
            subscription_delta: script(subscription_delta),
            channels: script(include_str!("lua/channels.lua")),
            users: script(include_str!("lua/users.lua")),
            heartbeat: script(include_str!("lua/heartbeat.lua")),
            reap: script(include_str!("lua/reap.lua")),
            clear: script(include_str!("lua/clear.lua")),
            read_history: script(include_str!("lua/read_history.lua")),
            subscription_delta_source: format!("{PRELUDE}{subscription_delta}"),
            publish_history_source: format!("{PRELUDE}{publish_history}"),
            subscription_count_source: format!(
                "{PRELUDE}{}",
                include_str!("lua/subscription_count.lua")
            ),
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

    /// The pub/sub channel every node listens on (messages about users).
    pub fn bus(&self) -> String {
        super::routes::bus(&self.prefix)
    }

    /// The pub/sub channel of `channel`'s events, which only nodes serving it listen on.
    pub fn route(&self, app: &str, channel: &str) -> String {
        super::routes::route(&self.prefix, app, channel)
    }

    pub async fn join(&self, j: Join<'_>) -> Result<Joined, AdapterError> {
        let info = j.member.user_info.as_ref().map_or("null", |r| r.get());
        let count = j.set_count.map(|c| c.to_string());
        let mut args = vec![
            self.node.as_str(),
            j.app,
            j.channel,
            j.member.user_id.as_str(),
            info,
        ];
        args.extend(count.as_deref());
        let (is_new, flat): (i64, Vec<String>) = self.run(&self.join, &args).await?;
        Ok(Joined {
            is_new: is_new == 1,
            presence_data: presence_data(&flat),
            members: flat.len() / 2,
        })
    }

    /// Returns whether it was the user's last connection in the cluster.
    pub async fn leave(
        &self,
        app: &str,
        channel: &str,
        user_id: &str,
    ) -> Result<bool, AdapterError> {
        let args = [self.node.as_str(), app, channel, user_id];
        let gone: i64 = self.run(&self.leave, &args).await?;
        Ok(gone == 1)
    }

    pub async fn subscription_delta(
        &self,
        app: &str,
        channel: &str,
        delta: i64,
    ) -> Result<(), AdapterError> {
        let delta = delta.to_string();
        let args = [self.node.as_str(), app, channel, &delta];
        self.run::<i64>(&self.subscription_delta, &args).await?;
        Ok(())
    }

    /// This node's signed-in connections of `user_id` change by `delta`: 1 when the user came
    /// online in the cluster, -1 when it went offline, else 0.
    pub async fn user_delta(
        &self,
        app: &str,
        user_id: &str,
        delta: i64,
    ) -> Result<i64, AdapterError> {
        let delta = delta.to_string();
        self.run(
            &self.user_delta,
            &[self.node.as_str(), app, user_id, &delta],
        )
        .await
    }

    /// Which of `user_ids` are signed in on a live node.
    pub async fn users_online(
        &self,
        app: &str,
        user_ids: &[String],
    ) -> Result<Vec<String>, AdapterError> {
        let mut args = vec![app];
        args.extend(user_ids.iter().map(String::as_str));
        self.run(&self.users_online, &args).await
    }

    /// The cluster's occupied channels of `app` whose name starts with `filter`.
    pub async fn channels(
        &self,
        app: &str,
        filter: &str,
    ) -> Result<Vec<(String, ChannelInfo)>, AdapterError> {
        let flat: Vec<redis::Value> = self.run(&self.channels, &[app, filter]).await?;
        Ok(parse_channels(flat))
    }

    pub async fn users(&self, app: &str, channel: &str) -> Result<Vec<String>, AdapterError> {
        self.run(&self.users, &[app, channel]).await
    }

    /// Returns whether this node's state was still in Redis.
    pub async fn heartbeat(&self) -> Result<bool, AdapterError> {
        let start = std::time::Instant::now();
        let (existed, mut nodes): (i64, Vec<String>) =
            self.run(&self.heartbeat, &[&self.node]).await?;
        if !nodes.contains(&self.node) {
            nodes.push(self.node.clone());
        }
        self.health.heartbeat(start.elapsed(), nodes);
        Ok(existed == 1)
    }

    /// Removes dead nodes; returns the members and channels that only they had.
    pub async fn reap(&self) -> Result<Reaped, AdapterError> {
        let (members, vacated, offline): (Vec<String>, Vec<String>, Vec<String>) =
            self.run(&self.reap, &[]).await?;
        let mut seen = HashSet::new();
        let members = members
            .chunks_exact(3)
            .map(|t| Orphan {
                app: t[0].clone(),
                channel: t[1].clone(),
                user_id: t[2].clone(),
            })
            .filter(|o| seen.insert(o.clone()))
            .collect();
        let pairs = |flat: Vec<String>| {
            let mut seen = HashSet::new();
            flat.chunks_exact(2)
                .map(|t| (t[0].clone(), t[1].clone()))
                .filter(|c| seen.insert(c.clone()))
                .collect()
        };
        Ok(Reaped {
            members,
            vacated: pairs(vacated),
            offline: pairs(offline),
        })
    }

    /// Deletes this node's state.
    pub async fn clear(&self) -> Result<(), AdapterError> {
        self.run::<i64>(&self.clear, &[&self.node]).await?;
        Ok(())
    }

    pub async fn read_history(&self, r: ReadHistory<'_>) -> Result<HistoryRead, AdapterError> {
        let ttl = (r.policy.ttl.as_millis() as u64).to_string();
        let epoch = new_epoch();
        let (from_epoch, from_offset, skip) = match r.from {
            Some(f) => (
                f.position.epoch.as_str(),
                f.position.offset.to_string(),
                f.socket_id.as_deref().unwrap_or(""),
            ),
            None => ("", "0".to_owned(), ""),
        };
        let limit = r.limit.to_string();
        let args = [
            r.app,
            r.channel,
            &ttl,
            &epoch,
            from_epoch,
            &from_offset,
            &limit,
            skip,
        ];
        let (epoch, top, status, frames): (String, u64, String, Vec<String>) =
            self.run(&self.read_history, &args).await?;
        let frames = match status.as_str() {
            "none" | "ok" => Ok(frames.into_iter().map(Utf8Bytes::from).collect()),
            other => Err(RecoveryFailure::from_reason(other).ok_or_else(|| {
                AdapterError(format!("redis: unexpected history status {other:?}"))
            })?),
        };
        Ok(HistoryRead {
            top: StreamPosition { epoch, offset: top },
            frames,
        })
    }

    /// Adds a subscription count change to a pipeline; its reply (1 occupied, -1 vacated, 0)
    /// is one of the pipeline's results.
    pub fn pipe_subscription_delta(
        &self,
        pipe: &mut Pipeline,
        app: &str,
        channel: &str,
        delta: i64,
    ) {
        self.pipe_eval(pipe, &self.subscription_delta_source)
            .arg(&self.node)
            .arg(app)
            .arg(channel)
            .arg(delta);
    }

    /// Adds a subscription count announcement to a pipeline: with `envelope_prefix` the count is
    /// published to every node's subscribers; its reply (the count) is one of the pipeline's
    /// results.
    pub fn pipe_subscription_count(
        &self,
        pipe: &mut Pipeline,
        app: &str,
        channel: &str,
        envelope_prefix: Option<&str>,
    ) {
        self.pipe_eval(pipe, &self.subscription_count_source)
            .arg(app)
            .arg(channel)
            .arg(wire::json(channel))
            .arg(envelope_prefix.unwrap_or(""));
    }

    /// Adds a cache channel's last event to a pipeline (kept [`CACHE_TTL`], as Pusher).
    pub fn pipe_cache(&self, pipe: &mut Pipeline, app: &str, channel: &str, frame: &str) {
        pipe.cmd("SET")
            .arg(self.cache_key(app, channel))
            .arg(frame)
            .arg("PX")
            .arg(CACHE_TTL.as_millis() as u64)
            .ignore();
    }

    /// A cache channel's last event, if Redis has one.
    pub async fn cache_get(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Option<String>, AdapterError> {
        let mut conn = self.connection()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.cache_key(app, channel));
        self.bounded(cmd.query_async::<Option<String>>(&mut conn))
            .await
    }

    fn cache_key(&self, app: &str, channel: &str) -> String {
        format!("{}:cache:{app}:{channel}", self.prefix)
    }

    /// Adds a history event to a pipeline.
    pub fn pipe_publish_history(&self, pipe: &mut Pipeline, p: PublishHistory<'_>) {
        self.pipe_eval(pipe, &self.publish_history_source)
            .arg(p.app)
            .arg(p.channel)
            .arg(p.policy.ttl.as_millis() as u64)
            .arg(p.policy.size)
            .arg(new_epoch())
            .arg(p.frame.as_str())
            .arg(p.envelope_prefix)
            .arg(p.except.unwrap_or(""))
            .ignore();
    }

    /// EVAL (not EVALSHA) inside a pipeline: the script may not be cached yet.
    fn pipe_eval<'p>(&self, pipe: &'p mut Pipeline, source: &str) -> &'p mut Pipeline {
        pipe.cmd("EVAL")
            .arg(source)
            .arg(0)
            .arg(&self.prefix)
            .arg(self.timeout_ms)
    }

    /// Sends a pipeline; returns the replies of its commands not ignored, or `None` when Redis
    /// did not take it.
    pub async fn send(&self, pipe: &Pipeline) -> Option<Vec<i64>> {
        let mut conn = self.connection().ok()?;
        match tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<Vec<i64>>(&mut conn)).await {
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

    /// The command connection; none while the Sentinels have not named a primary yet.
    fn connection(&self) -> Result<ConnectionManager, AdapterError> {
        match self.conn.load_full() {
            Some(conn) => Ok((*conn).clone()),
            None => {
                self.health.failed("redis", &"no primary known yet");
                Err(AdapterError("redis: no primary known yet".into()))
            }
        }
    }

    /// Runs a script with the common arguments (prefix, timeout) followed by `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, AdapterError> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix).arg(self.timeout_ms);
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

/// `subscription_succeeded` data from flat id/info pairs (infos are JSON we stored).
fn presence_data(flat: &[String]) -> String {
    let members: Vec<(&str, Box<serde_json::value::RawValue>)> = flat
        .chunks_exact(2)
        .map(|pair| {
            let info = serde_json::value::RawValue::from_string(pair[1].clone())
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
            (pair[0].as_str(), info)
        })
        .collect();
    wire::presence_data(members.iter().map(|(id, info)| (*id, &**info)))
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
