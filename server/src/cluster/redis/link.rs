//! Where Redis is: the server at `redis_url`, or the primary the Sentinels name, followed across
//! failovers. TLS (`rediss://`, rustls with the system's CA store or `SSL_CERT_FILE`) and ACL
//! users (`redis://user:password@…`) come with the URL.
//!
//! The command connection is swapped when the primary moves ([`follow_primary`]); the bus
//! subscription reconnects to whatever [`Link::client`] names at the time.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, TlsMode};
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
}

pub enum Link {
    Direct(redis::Client),
    Sentinel {
        sentinels: Mutex<SentinelClient>,
        master: String,
    },
}

/// The command connection, once the primary is known (at once for a direct link).
pub type Commands = Arc<ArcSwapOption<ConnectionManager>>;

impl Link {
    /// With `sentinels`, `url` supplies only the primary's user, password and TLS.
    pub fn new(url: &str, sentinels: &[String], master: &str) -> Result<Self, RedisSetupError> {
        let info = url.into_connection_info().map_err(RedisSetupError::Url)?;
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

    /// A client for the primary now.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match self {
            Self::Direct(client) => Ok(client.clone()),
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
            Self::Direct(client) => Some(Arc::new(manager(client).map_err(RedisSetupError::Url)?)),
            Self::Sentinel { .. } => None,
        };
        Ok(Arc::new(ArcSwapOption::new(manager)))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Direct(client) => client.get_connection_info().addr().to_string(),
            Self::Sentinel { master, .. } => format!("sentinel master {master:?}"),
        }
    }
}

fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Sentinel only: asks which server is the primary every [`SENTINEL_POLL`]; when it moves (a
/// failover), swaps the command connection and bumps `moved` so the bus subscription reconnects.
/// Ends when `stop` closes.
pub async fn follow_primary(
    link: Arc<Link>,
    commands: Commands,
    health: Arc<LinkHealth>,
    moved: watch::Sender<u64>,
    mut stop: watch::Receiver<()>,
) {
    if matches!(*link, Link::Direct(_)) {
        return;
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
                            commands.store(Some(Arc::new(m)));
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
