//! Where Redis is: the server at `redis_url`, the primary the Sentinels name (followed across
//! failovers), or a Redis Cluster. TLS (`rediss://`, rustls with the system's CA store or
//! `SSL_CERT_FILE`) and ACL users (`redis://user:password@…`) come with the URL.
//!
//! The command connection is swapped when the primary moves ([`follow_primary`]); the bus
//! subscription reconnects to whatever [`Link::client`] names at the time. A Redis Cluster
//! connection follows its shards' failovers and slot moves by itself.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, TlsMode, Value};
use tokio::sync::{watch, Mutex};

use super::health::LinkHealth;

/// How long one Redis operation may take before the node treats Redis as unavailable.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the Sentinels are asked which server is the primary.
const SENTINEL_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid redis_url: {0}")]
    Url(#[source] redis::RedisError),
    #[error("invalid redis_sentinels: {0}")]
    Sentinels(#[source] redis::RedisError),
    #[error("invalid redis_cluster_nodes: {0}")]
    Cluster(#[source] redis::RedisError),
}

pub enum Link {
    Direct(redis::Client),
    Sentinel {
        sentinels: Mutex<SentinelClient>,
        master: String,
    },
    /// A Redis Cluster, from some of its nodes.
    Cluster {
        nodes: Vec<redis::ConnectionInfo>,
        /// The first node's user, password and TLS (from `redis_url`'s when its own have none).
        commands: ClusterClient,
    },
}

/// A command connection: to one server, or to a Redis Cluster (which routes each command to the
/// shard of its keys, so a pipeline must stay within one slot: see `scripts::Scripts::send`).
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The command connection, once the primary is known (at once for a direct link).
pub type Commands = Arc<ArcSwapOption<Conn>>;

impl Link {
    /// With `sentinels` or `cluster`, `url` supplies only the user, password and TLS.
    pub fn new(
        url: &str,
        sentinels: &[String],
        master: &str,
        cluster: &[String],
    ) -> Result<Self, RedisSetupError> {
        let info = url.into_connection_info().map_err(RedisSetupError::Url)?;
        if !cluster.is_empty() {
            return cluster_link(&info, cluster);
        }
        if sentinels.is_empty() {
            return redis::Client::open(info)
                .map(Self::Direct)
                .map_err(RedisSetupError::Url);
        }
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let mut node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(info.redis_settings().clone());
        if tls {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(
            sentinels.to_vec(),
            master,
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(RedisSetupError::Sentinels)?;
        Ok(Self::Sentinel {
            sentinels: Mutex::new(client),
            master: master.to_owned(),
        })
    }

    /// A client for the primary now (not for a Redis Cluster, whose connections come from
    /// [`Link::cluster_client`]).
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match self {
            Self::Direct(client) => Ok(client.clone()),
            Self::Cluster { nodes, .. } => redis::Client::open(nodes[0].clone()),
            Self::Sentinel { sentinels, .. } => {
                let ask = async { sentinels.lock().await.async_get_client().await };
                tokio::time::timeout(OP_TIMEOUT, ask)
                    .await
                    .unwrap_or_else(|_| {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "the sentinels did not answer in time",
                        )))
                    })
            }
        }
    }

    /// The command connection: for a direct link ready now (connecting lazily), for Sentinel
    /// filled in by [`follow_primary`].
    pub fn commands(&self) -> Result<Commands, RedisSetupError> {
        let manager = match self {
            Self::Direct(client) => Some(Arc::new(Conn::Single(
                manager(client).map_err(RedisSetupError::Url)?,
            ))),
            Self::Sentinel { .. } | Self::Cluster { .. } => None,
        };
        Ok(Arc::new(ArcSwapOption::new(manager)))
    }

    /// A Redis Cluster client whose connections send pub/sub messages to `push` (RESP3: one
    /// connection carries commands, subscriptions and their messages, per shard).
    pub fn cluster_client(
        &self,
        push: impl redis::aio::AsyncPushSender,
    ) -> Option<redis::RedisResult<ClusterClient>> {
        let Self::Cluster { nodes, .. } = self else {
            return None;
        };
        Some(
            cluster_builder(nodes)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(push)
                .build(),
        )
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Direct(client) => client.get_connection_info().addr().to_string(),
            Self::Sentinel { master, .. } => format!("sentinel master {master:?}"),
            Self::Cluster { nodes, .. } => {
                let first = nodes.first().map(|n| n.addr().to_string());
                format!("redis cluster via {}", first.unwrap_or_default())
            }
        }
    }
}

/// The cluster's nodes with `url`'s user, password and TLS where their own URLs have none.
fn cluster_link(url: &redis::ConnectionInfo, nodes: &[String]) -> Result<Link, RedisSetupError> {
    let mut infos = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut info = node
            .as_str()
            .into_connection_info()
            .map_err(RedisSetupError::Cluster)?;
        let settings = info.redis_settings().clone();
        if settings.username().is_none() && settings.password().is_none() {
            info = info.set_redis_settings(url.redis_settings().clone());
        }
        infos.push(info);
    }
    let commands = cluster_builder(&infos)
        .build()
        .map_err(RedisSetupError::Cluster)?;
    Ok(Link::Cluster {
        nodes: infos,
        commands,
    })
}

fn cluster_builder(nodes: &[redis::ConnectionInfo]) -> ClusterClientBuilder {
    ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(OP_TIMEOUT)
        .response_timeout(OP_TIMEOUT)
        .retries(2)
}

fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Sentinel: asks which server is the primary every [`SENTINEL_POLL`]; when it moves (a
/// failover), swaps the command connection and bumps `moved` so the bus subscription reconnects.
/// Redis Cluster: connects (retrying until it can), once. Ends when `stop` closes.
pub async fn follow_primary(
    link: Arc<Link>,
    commands: Commands,
    health: Arc<LinkHealth>,
    moved: watch::Sender<u64>,
    mut stop: watch::Receiver<()>,
) {
    match &*link {
        Link::Direct(_) => return,
        Link::Cluster {
            commands: client, ..
        } => {
            let mut delay = Duration::from_millis(100);
            loop {
                match client.get_async_connection().await {
                    Ok(conn) => {
                        tracing::info!("connected to the redis cluster");
                        commands.store(Some(Arc::new(Conn::Cluster(conn))));
                        return;
                    }
                    Err(e) => health.failed("redis cluster", &e),
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
        Link::Sentinel { .. } => {}
    }
    let mut current: Option<String> = None;
    // The sentinels failing while the primary answers is no outage: warned once, not counted.
    let mut sentinels_failing = false;
    loop {
        match link.client().await {
            Ok(client) => {
                if std::mem::take(&mut sentinels_failing) {
                    tracing::info!("the sentinels answer again");
                }
                let addr = client.get_connection_info().addr().to_string();
                if current.as_deref() != Some(addr.as_str()) {
                    match manager(&client) {
                        Ok(m) => {
                            tracing::info!(primary = %addr, "redis primary (from the sentinels)");
                            commands.store(Some(Arc::new(Conn::Single(m))));
                            current = Some(addr);
                            moved.send_modify(|n| *n += 1);
                        }
                        Err(e) => health.failed("redis primary", &e),
                    }
                }
            }
            Err(e) if current.is_none() => health.failed("redis sentinels", &e),
            Err(e) => {
                if !std::mem::replace(&mut sentinels_failing, true) {
                    tracing::warn!(error = %e, "the sentinels do not answer: staying on the last primary they named");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SENTINEL_POLL) => {}
            _ = stop.changed() => return,
        }
    }
}
