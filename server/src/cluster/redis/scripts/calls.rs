//! The calls whose answer the caller waits for: presence joins and leaves, signed-in users, the
//! cluster-wide queries, the heartbeat, reaping, and history reads. A second `impl Scripts`.

use std::collections::HashSet;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::frame::{RecoverFrom, StreamPosition};
use chorus_protocol::ChannelKind;
use redis::Value;

use super::{Batch, Scripts};
use crate::cluster::redis::keys;
use crate::error::AdapterError;
use crate::hub::channels::ChannelInfo;
use crate::hub::history::{new_epoch, HistoryPolicy, RecoveryFailure};
use crate::hub::presence::PresenceMember;
use crate::wire;

/// How long a reaper's claim on a dead node lasts: another node takes over after it.
const CLAIM_MS: u64 = 30_000;

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

/// What reaping a dead node left behind.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Presence members that were only on the dead node.
    pub members: Vec<Orphan>,
    /// (app, channel) of channels whose subscribers were all on the dead node.
    pub vacated: Vec<(String, String)>,
    /// (app, user id) of signed-in users that were only on the dead node.
    pub offline: Vec<(String, String)>,
}

/// A presence member that was only on a dead node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orphan {
    pub app: String,
    pub channel: String,
    pub user_id: String,
}

impl Scripts {
    /// Lists the channel in the app's index first, so that reaping finds the member if this node
    /// dies right after the join.
    pub async fn join(&self, j: Join<'_>) -> Result<Joined, AdapterError> {
        let mut first = self.batch();
        self.index(&mut first, j.app, j.channel, true);
        if self.send(vec![first]).await.is_none() {
            return Err(AdapterError("redis: unavailable".into()));
        }
        let info = j.member.user_info.as_ref().map_or("null", |r| r.get());
        let count = j.set_count.map(|c| c.to_string());
        let mut args = vec![self.node.as_str(), j.member.user_id.as_str(), info];
        args.extend(count.as_deref());
        let base = self.channel_base(j.app, j.channel);
        let (is_new, flat): (i64, Vec<String>) = self.run(&self.join, &base, &args).await?;
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
        let base = self.channel_base(app, channel);
        let gone: i64 = self
            .run(&self.leave, &base, &[self.node.as_str(), user_id])
            .await?;
        Ok(gone == 1)
    }

    /// This node's subscription count of a channel changes, now (the state rewrite; the writer
    /// batches the others): listed for the app too.
    pub async fn subscription_delta_now(
        &self,
        app: &str,
        channel: &str,
        delta: i64,
    ) -> Result<(), AdapterError> {
        let (mut first, mut then) = (self.batch(), self.batch());
        self.index(&mut first, app, channel, true);
        self.subscription_delta(&mut then, app, channel, delta);
        match self.send(vec![first, then]).await {
            Some(_) => Ok(()),
            None => Err(AdapterError("redis: unavailable".into())),
        }
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
        let base = self.app_base(app);
        self.run(
            &self.user_delta,
            &base,
            &[self.node.as_str(), user_id, &delta],
        )
        .await
    }

    /// Which of `user_ids` are signed in anywhere in the cluster.
    pub async fn users_online(
        &self,
        app: &str,
        user_ids: &[String],
    ) -> Result<Vec<String>, AdapterError> {
        let args: Vec<&str> = user_ids.iter().map(String::as_str).collect();
        self.run(&self.users_online, &self.app_base(app), &args)
            .await
    }

    /// The cluster's occupied channels of `app` whose name starts with `filter`: the app's index
    /// names them, each channel's own keys count them.
    pub async fn channels(
        &self,
        app: &str,
        filter: &str,
    ) -> Result<Vec<(String, ChannelInfo)>, AdapterError> {
        let names: Vec<String> = self
            .run(&self.app_channels, &self.app_base(app), &[filter])
            .await?;
        let mut batch = self.batch();
        for name in &names {
            let base = self.channel_base(app, name);
            let presence = ChannelKind::of(name) == ChannelKind::Presence;
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.channel_info.get_hash())
                .arg(1)
                .arg(&base)
                .arg(if presence { "1" } else { "0" });
            batch.push(&base, cmd, true);
        }
        let replies = self.send_loading(batch, &self.channel_info).await?;
        Ok(names
            .into_iter()
            .zip(replies)
            .filter_map(|(name, reply)| {
                let (subs, users) = redis::from_redis_value_ref::<(i64, i64)>(&reply).ok()?;
                (subs > 0).then(|| (name, channel_info(subs, users)))
            })
            .collect())
    }

    /// One channel's counts in the cluster.
    pub async fn channel_info(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<ChannelInfo, AdapterError> {
        let presence = ChannelKind::of(channel) == ChannelKind::Presence;
        let base = self.channel_base(app, channel);
        let (subs, users): (i64, i64) = self
            .run(
                &self.channel_info,
                &base,
                &[if presence { "1" } else { "0" }],
            )
            .await?;
        Ok(channel_info(subs, users))
    }

    pub async fn users(&self, app: &str, channel: &str) -> Result<Vec<String>, AdapterError> {
        self.run(&self.users, &self.channel_base(app, channel), &[])
            .await
    }

    /// Sends a batch of EVALSHAs of `script`, loaded first (on every shard of a cluster).
    async fn send_loading(
        &self,
        batch: Batch,
        script: &redis::Script,
    ) -> Result<Vec<Value>, AdapterError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection()?;
        self.bounded(script.prepare_invoke().load_async(&mut conn))
            .await?;
        self.send(vec![batch])
            .await
            .ok_or_else(|| AdapterError("redis: unavailable".into()))
    }

    /// Says this node is alive; returns 1 if its state was still in Redis, 0 if not (rewrite
    /// it), -1 while it is being reaped (wait).
    pub async fn heartbeat(&self) -> Result<i64, AdapterError> {
        let start = std::time::Instant::now();
        let timeout = self.timeout_ms.to_string();
        let nodes_key = keys::nodes(&self.prefix);
        let (listed, mut nodes): (i64, Vec<String>) = self
            .run(&self.heartbeat, &nodes_key, &[&self.node, &timeout])
            .await?;
        if listed >= 0 && !nodes.contains(&self.node) {
            nodes.push(self.node.clone());
        }
        self.health.heartbeat(start.elapsed(), nodes);
        Ok(listed)
    }

    /// Takes the nodes silent for too long off the list; returns the dead nodes this node now
    /// reaps (see [`Scripts::reap_node`]).
    pub async fn reap(&self) -> Result<Vec<String>, AdapterError> {
        let timeout = self.timeout_ms.to_string();
        let claim = CLAIM_MS.to_string();
        self.run(
            &self.reap,
            &keys::nodes(&self.prefix),
            &[&self.node, &timeout, &claim],
        )
        .await
    }

    /// Removes `node`'s state in `apps`: what it alone had is returned (to be announced). With
    /// this node's own id, clears its state before it rewrites it.
    pub async fn reap_node(&self, node: &str, apps: &[String]) -> Result<Reaped, AdapterError> {
        let mut reaped = Reaped::default();
        for app in apps {
            let app_base = self.app_base(app);
            let channels: Vec<String> = {
                let mut conn = self.connection()?;
                let mut cmd = redis::cmd("SMEMBERS");
                cmd.arg(keys::app_channels_of(&app_base, node));
                self.bounded(cmd.query_async(&mut conn)).await?
            };
            for channel in channels {
                let base = self.channel_base(app, &channel);
                let (vacated, members): (i64, Vec<String>) =
                    self.run(&self.reap_channel, &base, &[node]).await?;
                if vacated == 1 {
                    reaped.vacated.push((app.clone(), channel.clone()));
                }
                reaped
                    .members
                    .extend(members.into_iter().map(|user_id| Orphan {
                        app: app.clone(),
                        channel: channel.clone(),
                        user_id,
                    }));
            }
            let offline: Vec<String> = self.run(&self.reap_app, &app_base, &[node]).await?;
            let mut seen = HashSet::new();
            reaped.offline.extend(
                offline
                    .into_iter()
                    .filter(|u| seen.insert(u.clone()))
                    .map(|u| (app.clone(), u)),
            );
        }
        if node != self.node {
            let nodes_key = keys::nodes(&self.prefix);
            let mut pipe = redis::pipe();
            pipe.cmd("SREM")
                .arg(format!("{nodes_key}:dead"))
                .arg(node)
                .ignore();
            pipe.cmd("DEL")
                .arg(format!("{nodes_key}:claim:{node}"))
                .ignore();
            let mut conn = self.connection()?;
            self.bounded(pipe.query_async::<()>(&mut conn)).await?;
        }
        Ok(reaped)
    }

    pub async fn read_history(&self, r: ReadHistory<'_>) -> Result<HistoryRead, AdapterError> {
        let ttl = (r.policy.ttl.as_millis() as u64).to_string();
        let genesis = new_epoch();
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
            ttl.as_str(),
            &genesis,
            from_epoch,
            &from_offset,
            &limit,
            skip,
        ];
        let base = self.channel_base(r.app, r.channel);
        let mut inv = self.read_history.prepare_invoke();
        inv.key(&base).key(keys::genesis(&self.prefix, &base));
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.connection()?;
        let (epoch, top, status, frames): (String, u64, String, Vec<String>) =
            self.bounded(inv.invoke_async(&mut conn)).await?;
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

    /// A cache channel's last event, if Redis has one.
    pub async fn cache_get(
        &self,
        app: &str,
        channel: &str,
    ) -> Result<Option<String>, AdapterError> {
        let mut conn = self.connection()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(keys::cache(&self.channel_base(app, channel)));
        self.bounded(cmd.query_async::<Option<String>>(&mut conn))
            .await
    }
}

fn channel_info(subs: i64, users: i64) -> ChannelInfo {
    ChannelInfo {
        subscription_count: subs.max(0) as usize,
        user_count: (users >= 0).then_some(users as usize),
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
