//! Configuration: built-in defaults, then a TOML file, then `CHORUS_*` environment variables, then
//! command-line flags (each layer overrides the one before). Only the settings that have a flag
//! have an environment variable (clap reads both into [`Cli`]); `RUST_LOG` is read for `log` too,
//! below `CHORUS_LOG`. Everything else is set in the file.
//!
//! See the configuration reference in README.md; every field below is listed there.

use std::path::{Path, PathBuf};

use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;

mod apps;
pub use apps::{AppConfig, WebhookConfig, WebhookKind};

/// The longest timeout accepted: far beyond any sensible setting, far below `Instant` overflow.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// Command-line flags; each also reads an environment variable.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Chorus: a self-hosted real-time server speaking the Pusher Channels protocol v7"
)]
pub struct Cli {
    /// TOML configuration file (apps, limits, timeouts). Without it one development app is served.
    #[arg(long, short = 'c', env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, env = "CHORUS_HOST")]
    pub host: Option<String>,
    /// Port for WebSocket and HTTP API [default: 6001].
    #[arg(long, short = 'p', env = "CHORUS_PORT")]
    pub port: Option<u16>,
    /// Seconds of silence after which the server pings a client (sent to clients in the handshake) [default: 30].
    #[arg(long, env = "CHORUS_ACTIVITY_TIMEOUT")]
    pub activity_timeout: Option<u64>,
    /// Seconds a connection may hold no subscription and send nothing but pings/pongs before it is closed with 4202 (0 = never) [default: 86400].
    #[arg(long, env = "CHORUS_INACTIVITY_TIMEOUT")]
    pub inactivity_timeout: Option<u64>,
    /// Id of the single app served when the config file defines none (with --app-key and --app-secret).
    #[arg(long, env = "CHORUS_APP_ID")]
    pub app_id: Option<String>,
    /// Key of the single app served when the config file defines none.
    #[arg(long, env = "CHORUS_APP_KEY")]
    pub app_key: Option<String>,
    /// Secret of the single app served when the config file defines none.
    #[arg(long, env = "CHORUS_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<String>,
    /// Where broadcasts and presence live: `local` (one node) or `redis` (several nodes) [default: local].
    #[arg(long, env = "CHORUS_ADAPTER")]
    pub adapter: Option<AdapterKind>,
    /// Redis URL for the redis adapter [default: redis://127.0.0.1:6379].
    #[arg(long, env = "CHORUS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Redis Sentinels (comma-separated URLs) that name the primary of --redis-sentinel-master; redis_url then gives only its user, password and TLS.
    #[arg(long, env = "CHORUS_REDIS_SENTINELS", value_delimiter = ',')]
    pub redis_sentinels: Option<Vec<String>>,
    /// The Sentinels' name of the primary [default: mymaster].
    #[arg(long, env = "CHORUS_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// Redis Cluster: some of its nodes (comma-separated URLs; the others are discovered); redis_url then gives only user, password and TLS.
    #[arg(long, env = "CHORUS_REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Option<Vec<String>>,
    /// Prefix of Chorus's Redis keys and channel, so several deployments can share one Redis [default: chorus].
    #[arg(long, env = "CHORUS_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Log filter in `tracing` syntax, e.g. `info` or `chorus_server=debug`; overrides RUST_LOG [default: info].
    #[arg(long, env = "CHORUS_LOG")]
    pub log: Option<String>,
    /// Address of the admin listener (`/metrics`) [default: 127.0.0.1].
    #[arg(long, env = "CHORUS_ADMIN_HOST")]
    pub admin_host: Option<String>,
    /// Port of the admin listener; 0 picks a free one [default: 9601].
    #[arg(long, env = "CHORUS_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Bearer token the admin listener requires (needed when it listens beyond loopback).
    #[arg(long, env = "CHORUS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// PEM certificate chain: serve WebSocket and HTTP API over TLS on the same port (with --tls-key).
    #[arg(long, env = "CHORUS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CHORUS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Log lines as `text` (colours only on a terminal) or `json` (one object a line) [default: text].
    #[arg(long, env = "CHORUS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stdout is a terminal.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// Which adapter connects this node to the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// One node; nothing else needed.
    #[default]
    Local,
    /// Several nodes sharing one Redis.
    Redis,
}

/// Whole-server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// The admin listener (`/metrics`): loopback by default; `admin_token` is required beyond it.
    pub admin_host: String,
    pub admin_port: u16,
    pub admin_token: Option<String>,
    /// PEM certificate chain and private key: TLS on the client port (both or neither); reloaded
    /// on SIGHUP and when the files change.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Seconds of client silence before the server sends `pusher:ping`; also sent in the handshake.
    pub activity_timeout: u64,
    /// Seconds to wait for any message after a server ping before closing with 4201.
    pub pong_timeout: u64,
    /// Seconds a connection may hold no subscription and send nothing but heartbeats
    /// (`pusher:ping`/`pusher:pong`) before it is closed with 4202; 0 = never.
    pub inactivity_timeout: u64,
    /// Seconds graceful shutdown waits for connections to close before exiting anyway.
    pub shutdown_timeout: u64,
    /// Seconds a new TCP connection has to send its first byte, and then its complete request head
    /// (a WebSocket upgrade or an HTTP request); also how long a keep-alive HTTP connection may sit
    /// idle between requests.
    pub handshake_timeout: u64,
    /// TCP connections that have not yet sent a complete request head (or are serving HTTP), at
    /// once; further ones wait in the kernel's backlog until one is done.
    pub max_pending_connections: usize,
    /// Largest WebSocket message accepted, in KiB; a larger one closes the connection with 1009.
    pub max_message_kb: usize,
    /// Largest HTTP API request body, in KiB (413 above it).
    pub max_request_kb: usize,
    /// Seconds an HTTP API request's body may take to arrive once its head is in (408 after).
    pub request_timeout: u64,
    /// Messages queued for one connection before it counts as a slow consumer and is closed (4100).
    pub outbound_queue: usize,
    /// The same bound in KiB of queued frames.
    pub outbound_queue_kb: usize,
    /// Seconds a connection's socket may take nothing while frames wait for it before the
    /// connection is closed as a slow consumer (4100), whatever the client sends meanwhile.
    pub write_timeout: u64,
    /// Connections the whole server accepts (0 = unlimited); above it new ones are closed with 4100.
    pub max_connections: usize,
    /// Resident memory in MiB above which new connections are refused (4100) and `/ready` answers
    /// 503; 0: 90% of the cgroup's memory limit when there is one, else none.
    pub max_memory_mb: u64,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client; connections from inside these
    /// ranges are not limited per address.
    pub trusted_proxies: Vec<IpNet>,
    /// WebSocket connections one client address may hold at once (0 = unlimited); above it new
    /// ones are closed with 4100.
    pub max_connections_per_ip: usize,
    /// WebSocket connects one client address may make a minute, in bursts up to as many (0 =
    /// unlimited); above it new ones are closed with 4100.
    pub max_connects_per_ip_per_minute: u32,
    /// Log filter (`tracing` env-filter syntax).
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// `local` or `redis`.
    pub adapter: AdapterKind,
    pub redis_url: String,
    /// Sentinels asked for the primary named `redis_sentinel_master` (empty: `redis_url` is it).
    pub redis_sentinels: Vec<String>,
    pub redis_sentinel_master: String,
    /// Nodes of a Redis Cluster to start from (empty: not a cluster).
    pub redis_cluster_nodes: Vec<String>,
    pub redis_prefix: String,
    /// Seconds after which a silent node counts as dead and its presence members are removed.
    pub node_timeout: u64,
    pub apps: Vec<AppConfig>,
    /// The file this was loaded from (SIGHUP reads its apps again).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 6001,
            admin_host: "127.0.0.1".into(),
            admin_port: 9601,
            admin_token: None,
            tls_cert: None,
            tls_key: None,
            activity_timeout: 30,
            pong_timeout: 30,
            // Pusher's: a day.
            inactivity_timeout: 86_400,
            shutdown_timeout: 10,
            handshake_timeout: 10,
            max_pending_connections: 1024,
            max_message_kb: 100,
            max_request_kb: 1024,
            request_timeout: 10,
            outbound_queue: 1024,
            outbound_queue_kb: 2048,
            write_timeout: 30,
            max_connections: 0,
            max_memory_mb: 0,
            // Loopback and the private ranges: where a load balancer or a local nginx usually
            // sits (Rails trusts the same by default).
            trusted_proxies: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect(),
            max_connections_per_ip: 1000,
            max_connects_per_ip_per_minute: 1200,
            log: "info".into(),
            log_format: LogFormat::Text,
            adapter: AdapterKind::Local,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_sentinels: Vec::new(),
            redis_sentinel_master: "mymaster".into(),
            redis_cluster_nodes: Vec::new(),
            redis_prefix: "chorus".into(),
            node_timeout: 20,
            apps: Vec::new(),
            source: None,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Result of loading: the config plus whether the built-in development app is in use.
pub struct Loaded {
    pub config: Config,
    pub uses_development_credentials: bool,
}

impl Config {
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Layers file, environment and flags (clap already merged environment into `cli`).
    pub fn load(cli: &Cli) -> Result<Loaded, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        config.source = cli.config.clone();
        if let Some(host) = &cli.host {
            config.host = host.clone();
        }
        if let Some(port) = cli.port {
            config.port = port;
        }
        if let Some(t) = cli.activity_timeout {
            config.activity_timeout = t;
        }
        if let Some(t) = cli.inactivity_timeout {
            config.inactivity_timeout = t;
        }
        if let Some(h) = &cli.admin_host {
            config.admin_host = h.clone();
        }
        if let Some(p) = cli.admin_port {
            config.admin_port = p;
        }
        if let Some(t) = &cli.admin_token {
            config.admin_token = Some(t.clone());
        }
        if let Some(p) = &cli.tls_cert {
            config.tls_cert = Some(p.clone());
        }
        if let Some(p) = &cli.tls_key {
            config.tls_key = Some(p.clone());
        }
        if let Some(f) = cli.log_format {
            config.log_format = f;
        }
        if let Some(a) = cli.adapter {
            config.adapter = a;
        }
        if let Some(url) = &cli.redis_url {
            config.redis_url = url.clone();
        }
        if let Some(s) = &cli.redis_sentinels {
            config.redis_sentinels = s.iter().filter(|s| !s.trim().is_empty()).cloned().collect();
        }
        if let Some(m) = &cli.redis_sentinel_master {
            config.redis_sentinel_master = m.clone();
        }
        if let Some(n) = &cli.redis_cluster_nodes {
            config.redis_cluster_nodes =
                n.iter().filter(|s| !s.trim().is_empty()).cloned().collect();
        }
        if let Some(p) = &cli.redis_prefix {
            config.redis_prefix = p.clone();
        }
        // RUST_LOG, the usual `tracing` variable, is one more environment layer: it overrides the
        // file's `log`, and --log/CHORUS_LOG override it.
        let rust_log = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty());
        if let Some(log) = cli.log.clone().or(rust_log) {
            config.log = log;
        }
        let mut uses_development_credentials = false;
        if config.apps.is_empty() {
            let mut app = AppConfig::development();
            match (&cli.app_id, &cli.app_key, &cli.app_secret) {
                (Some(id), Some(key), Some(secret)) => {
                    app.id = id.clone();
                    app.key = key.clone();
                    app.secret = secret.clone();
                }
                (None, None, None) => uses_development_credentials = true,
                _ => return Err(ConfigError::Invalid(
                    "set all three of CHORUS_APP_ID, CHORUS_APP_KEY and CHORUS_APP_SECRET, or none"
                        .into(),
                )),
            }
            config.apps.push(app);
        }
        config.validate()?;
        Ok(Loaded {
            config,
            uses_development_credentials,
        })
    }

    /// The apps of `source`, read again and checked with the rest of this configuration; `None`
    /// when there is no file or it defines no apps (the running ones stay).
    pub fn reload_apps(&self) -> Result<Option<Vec<AppConfig>>, ConfigError> {
        let Some(path) = &self.source else {
            return Ok(None);
        };
        let file = Self::from_toml_file(path)?;
        if file.apps.is_empty() {
            return Ok(None);
        }
        let next = Self {
            apps: file.apps,
            ..self.clone()
        };
        next.validate()?;
        Ok(Some(next.apps))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.activity_timeout == 0 || self.pong_timeout == 0 {
            return invalid("activity_timeout and pong_timeout must be at least 1 second".into());
        }
        // Timer deadlines are `Instant + timeout`; absurd values would overflow it.
        for (name, secs) in [
            ("activity_timeout", self.activity_timeout),
            ("pong_timeout", self.pong_timeout),
            ("inactivity_timeout", self.inactivity_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("request_timeout", self.request_timeout),
            ("write_timeout", self.write_timeout),
            ("node_timeout", self.node_timeout),
        ] {
            if secs > MAX_TIMEOUT_SECS {
                return invalid(format!(
                    "{name} must be at most {MAX_TIMEOUT_SECS} seconds (7 days)"
                ));
            }
        }
        if self.handshake_timeout == 0 || self.request_timeout == 0 {
            return invalid(
                "handshake_timeout and request_timeout must be at least 1 second".into(),
            );
        }
        if self.admin_token.as_deref().is_some_and(str::is_empty) {
            return invalid("admin_token must not be empty".into());
        }
        if self.admin_token.is_none() && !is_loopback(&self.admin_host) {
            return invalid(format!(
                "admin_host {:?} is beyond loopback: set admin_token (CHORUS_ADMIN_TOKEN), which \
                 scrapers then send as `Authorization: Bearer <token>`",
                self.admin_host
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid(
                "set both tls_cert and tls_key (or --tls-cert and --tls-key), or neither".into(),
            );
        }
        if self.max_pending_connections == 0 {
            return invalid("max_pending_connections must be at least 1".into());
        }
        if self.outbound_queue == 0 || self.outbound_queue_kb == 0 || self.write_timeout == 0 {
            return invalid(
                "outbound_queue, outbound_queue_kb and write_timeout must be at least 1".into(),
            );
        }
        if self.node_timeout == 0 {
            return invalid("node_timeout must be at least 1 second".into());
        }
        if !self.redis_sentinels.is_empty() && self.redis_sentinel_master.trim().is_empty() {
            return invalid(
                "redis_sentinel_master must name the primary the sentinels watch".into(),
            );
        }
        if !self.redis_sentinels.is_empty() && !self.redis_cluster_nodes.is_empty() {
            return invalid(
                "redis_sentinels and redis_cluster_nodes exclude each other: a Redis Cluster fails over by itself".into(),
            );
        }
        // Braces would move the hash tag that keeps a channel's keys in one cluster slot.
        let in_prefix = |c: char| plain(c) && c != '{' && c != '}';
        if self.redis_prefix.is_empty() || !self.redis_prefix.chars().all(in_prefix) {
            return invalid(
                "redis_prefix must be non-empty, without spaces, ':', '{', '}' or control characters"
                    .into(),
            );
        }
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for app in &self.apps {
            app.check().map_err(ConfigError::Invalid)?;
            if !ids.insert(&app.id) {
                return invalid(format!("app id {:?} is defined twice", app.id));
            }
            if !keys.insert(&app.key) {
                return invalid(format!("app key {:?} is defined twice", app.key));
            }
        }
        Ok(())
    }
}

/// Whether `host` names this machine only (`localhost`, 127.0.0.0/8, ::1).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Characters allowed in ids, keys and prefixes.
pub(crate) fn plain(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && c != ':' && c != '/' && c != '?' && c != '#'
}

#[cfg(test)]
mod tests;
