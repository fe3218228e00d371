//! Real processes for cluster tests: `redis-server` from Debian and the built `chorus` binary,
//! each on a free loopback port, killed when dropped.

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

/// A throwaway `redis-server` (no persistence) on 127.0.0.1.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        let dir = temp_dir("redis");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        let r = Self {
            port,
            child: Some(child),
            dir,
        };
        wait_until("redis-server", Duration::from_secs(10), || r.ping());
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// SIGKILL: Redis disappears with everything it held.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `chorus` process on the Redis adapter.
pub struct Node {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: PathBuf,
}

impl Node {
    pub fn start(redis_url: &str, node_timeout_secs: u64) -> Self {
        Self::start_with_prefix(redis_url, node_timeout_secs, "test")
    }

    /// A node whose keys and pub/sub channel in Redis start with `redis_prefix`.
    pub fn start_with_prefix(redis_url: &str, node_timeout_secs: u64, redis_prefix: &str) -> Self {
        Self::start_configured(redis_url, node_timeout_secs, redis_prefix, "")
    }

    /// Like [`Node::start_with_prefix`], with `app_settings` (TOML lines) added to the app.
    pub fn start_configured(
        redis_url: &str,
        node_timeout_secs: u64,
        redis_prefix: &str,
        app_settings: &str,
    ) -> Self {
        let port = free_port();
        let dir = temp_dir("node");
        let config = dir.join("chorus.toml");
        std::fs::write(
            &config,
            format!(
                r#"host = "127.0.0.1"
port = {port}
admin_port = 0
adapter = "redis"
redis_url = "{redis_url}"
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
            .stdout(Stdio::null())
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
