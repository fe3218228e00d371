//! Real processes for cluster tests: `redis-server` from Debian and the built `chorus` binary,
//! each on a free loopback port, killed when dropped.
//!
//! `CHORUS_TEST_REDIS` picks what [`Redis::start`] runs, so the same tests cover every mode:
//! `plain` (default: one server), `sentinel` (a primary, a replica and a Sentinel naming it) or
//! `cluster` (a Redis Cluster of three primaries made with `redis-cli --cluster create`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Api, Client, APP_ID, KEY, SECRET};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "{what} not ready after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chorus-test-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// One throwaway `redis-server` (no persistence) on 127.0.0.1.
struct Server {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: PathBuf,
}

impl Server {
    fn start(port: u16, args: &[String]) -> Self {
        let dir = temp_dir("redis");
        let mut s = Self {
            port,
            args: args.to_vec(),
            child: None,
            dir,
        };
        s.spawn();
        s
    }

    /// `args` may start with a config file (a Sentinel's), which must come first.
    fn spawn(&mut self) {
        let (config, args) = match self.args.first() {
            Some(a) if a.ends_with(".conf") => (Some(a.as_str()), &self.args[1..]),
            _ => (None, &self.args[..]),
        };
        let persistence: &[&str] = if config.is_some() {
            &[]
        } else {
            &["--save", "", "--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(config)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(persistence)
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server", Duration::from_secs(10), || ping(port));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Plain,
    Sentinel,
    Cluster,
}

impl Mode {
    pub fn from_env() -> Self {
        match std::env::var("CHORUS_TEST_REDIS").as_deref() {
            Ok("sentinel") => Self::Sentinel,
            Ok("cluster") => Self::Cluster,
            _ => Self::Plain,
        }
    }
}

/// Redis for a cluster test, in the mode `CHORUS_TEST_REDIS` names.
pub struct Redis {
    pub mode: Mode,
    /// The data servers: the one server, the primary then the replica, or the shards.
    servers: Vec<Server>,
    sentinel: Option<Server>,
    /// The Sentinel's config file's folder.
    conf_dir: Option<PathBuf>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(dir) = &self.conf_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Redis {
    pub fn start() -> Self {
        let mode = Mode::from_env();
        let redis = match mode {
            Mode::Plain => Self {
                mode,
                servers: vec![Server::start(free_port(), &[])],
                sentinel: None,
                conf_dir: None,
            },
            Mode::Sentinel => {
                let primary = Server::start(free_port(), &[]);
                let replicaof = [
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary.port.to_string(),
                ];
                let replica = Server::start(free_port(), &replicaof);
                let port = free_port();
                let dir = temp_dir("sentinel");
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor mymaster 127.0.0.1 {} 1\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                        primary.port
                    ),
                )
                .expect("sentinel config");
                let sentinel =
                    Server::start(port, &[conf.display().to_string(), "--sentinel".into()]);
                Self {
                    mode,
                    servers: vec![primary, replica],
                    sentinel: Some(sentinel),
                    conf_dir: Some(dir),
                }
            }
            Mode::Cluster => {
                let servers: Vec<Server> = (0..3)
                    .map(|_| {
                        let port = free_port();
                        let args = [
                            "--cluster-enabled".into(),
                            "yes".into(),
                            "--cluster-config-file".into(),
                            format!("nodes-{port}.conf"),
                            "--cluster-node-timeout".into(),
                            "2000".into(),
                        ];
                        Server::start(port, &args)
                    })
                    .collect();
                let addrs: Vec<String> = servers
                    .iter()
                    .map(|s| format!("127.0.0.1:{}", s.port))
                    .collect();
                let mut args = vec!["--cluster", "create"];
                args.extend(addrs.iter().map(String::as_str));
                args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
                cli(servers[0].port, &args);
                Self {
                    mode,
                    servers,
                    sentinel: None,
                    conf_dir: None,
                }
            }
        };
        redis.wait_ready();
        redis
    }

    fn wait_ready(&self) {
        match self.mode {
            Mode::Plain => {}
            Mode::Sentinel => {
                let (sentinel, replica) = (self.sentinel.as_ref().unwrap(), &self.servers[1]);
                wait_until(
                    "the sentinel knows the replica",
                    Duration::from_secs(15),
                    || {
                        cli(sentinel.port, &["sentinel", "replicas", "mymaster"])
                            .contains(&replica.port.to_string())
                    },
                );
            }
            Mode::Cluster => wait_until("cluster_state:ok", Duration::from_secs(20), || {
                self.servers
                    .iter()
                    .all(|s| cli(s.port, &["cluster", "info"]).contains("cluster_state:ok"))
            }),
        }
    }

    /// The node's settings (TOML lines) that point it at this Redis.
    pub fn settings(&self) -> String {
        let url = |s: &Server| format!("\"redis://127.0.0.1:{}\"", s.port);
        match self.mode {
            Mode::Plain => format!("redis_url = {}", url(&self.servers[0])),
            Mode::Sentinel => format!(
                "redis_sentinels = [{}]\nredis_sentinel_master = \"mymaster\"",
                url(self.sentinel.as_ref().unwrap())
            ),
            Mode::Cluster => format!(
                "redis_cluster_nodes = [{}]",
                self.servers.iter().map(url).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Points a config at this Redis (for in-process servers).
    pub fn configure(&self, c: &mut chorus_server::Config) {
        let url = |s: &Server| format!("redis://127.0.0.1:{}", s.port);
        match self.mode {
            Mode::Plain => c.redis_url = url(&self.servers[0]),
            Mode::Sentinel => {
                c.redis_sentinels = vec![url(self.sentinel.as_ref().unwrap())];
                c.redis_sentinel_master = "mymaster".into();
            }
            Mode::Cluster => c.redis_cluster_nodes = self.servers.iter().map(url).collect(),
        }
    }

    /// The keys matching `pattern` on every data server (one per line).
    pub fn scan(&self, pattern: &str) -> String {
        let primaries = match self.mode {
            Mode::Sentinel => &self.servers[..1],
            _ => &self.servers[..],
        };
        primaries
            .iter()
            .map(|s| cli(s.port, &["--scan", "--pattern", pattern]))
            .collect()
    }

    /// SIGKILL of every data server: Redis disappears with everything it held.
    pub fn kill(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
    }

    /// Starts the data servers again, empty, on the same ports (a Redis Cluster keeps its slot
    /// map, which `nodes-{port}.conf` holds).
    pub fn restart_empty(&mut self) {
        for s in &mut self.servers {
            s.spawn();
        }
        self.wait_ready();
    }
}

/// A `chorus` process on the Redis adapter.
pub struct Node {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: PathBuf,
}

impl Node {
    pub fn start(redis: &Redis, node_timeout_secs: u64) -> Self {
        Self::start_with_prefix(redis, node_timeout_secs, "test")
    }

    /// A node whose keys and pub/sub channel in Redis start with `redis_prefix`.
    pub fn start_with_prefix(redis: &Redis, node_timeout_secs: u64, redis_prefix: &str) -> Self {
        Self::start_configured(redis, node_timeout_secs, redis_prefix, "")
    }

    /// Like [`Node::start_with_prefix`], with `app_settings` (TOML lines) added to the app.
    pub fn start_configured(
        redis: &Redis,
        node_timeout_secs: u64,
        redis_prefix: &str,
        app_settings: &str,
    ) -> Self {
        let port = free_port();
        let dir = temp_dir("node");
        let config = dir.join("chorus.toml");
        let redis_settings = redis.settings();
        std::fs::write(
            &config,
            format!(
                r#"host = "127.0.0.1"
port = {port}
admin_port = 0
adapter = "redis"
{redis_settings}
redis_prefix = "{redis_prefix}"
node_timeout = {node_timeout_secs}
shutdown_timeout = 2

[[apps]]
id = "{APP_ID}"
key = "{KEY}"
secret = "{SECRET}"
history_size = 1000
# Only "news" keeps history, so other channels exercise the plain publish path.
history_channels = ["news"]
{app_settings}
"#
            ),
        )
        .expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("CHORUS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::fs::File::create(dir.join("chorus.log")).expect("log file"))
            .spawn()
            .expect("spawn chorus");
        let node = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: Some(child),
            dir,
        };
        wait_until("chorus node", Duration::from_secs(10), || {
            node.up().is_some_and(|s| s == "ok")
        });
        node
    }

    /// `status` from `/up`, if it answers.
    pub fn up(&self) -> Option<String> {
        let mut s = TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"GET /up HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let body = text.split("\r\n\r\n").nth(1)?;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["status"].as_str().map(str::to_owned)
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&format!("ws://{}/app/{KEY}?protocol=7", self.addr)).await
    }

    pub fn api(&self) -> Api {
        Api::new(self.addr, APP_ID, KEY, SECRET)
    }

    /// SIGKILL: the node vanishes without a goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        // A failing test shows what the node logged (CHORUS_TEST_LOG sets the level).
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("chorus.log")).unwrap_or_default();
            let tail = &log[log.len().saturating_sub(6000)..];
            eprintln!("----- chorus node {} log (tail) -----\n{tail}", self.addr);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
