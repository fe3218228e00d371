//! `cluster`: N nodes (chorus, or Sockudo with its Redis adapter) on one redis-server or on a
//! Redis Cluster of three primaries (started here on loopback), channels spread so each has its
//! one subscriber on one node, events published through node 0's HTTP API. Prints the cluster's
//! CPU per event (all nodes summed), Redis's CPU per event (all its servers summed), and the
//! pub/sub messages each node received from Redis (where the build reports them), so a global
//! bus and per-channel routing, or Chorus and Sockudo, can be compared.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::http::HttpConn;
use crate::sockudo::{self, Adapter};
use crate::storm::Kind;
use crate::{sys, ws, Target};

pub struct ClusterOpts {
    pub kind: Kind,
    /// A Redis Cluster of three primaries instead of one redis-server.
    pub redis_cluster: bool,
    /// Channels keep history (each publish is then a Redis script, which dominates the cost).
    pub history: bool,
    pub nodes: usize,
    pub channels: usize,
    pub events: usize,
    pub redis_server: PathBuf,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A plain HTTP GET on loopback; the body.
async fn get(port: u16, path: &str) -> Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await??;
    Ok(out
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned()))
}

struct Node {
    child: Child,
    target: Target,
    admin: u16,
}

/// Redis for the run: its servers' ports and whether they form a cluster.
struct Redis {
    servers: Vec<Child>,
    ports: Vec<u16>,
    cluster: bool,
}

impl Redis {
    async fn start(bin: &Path, cluster: bool) -> Result<Self> {
        let mut servers = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..if cluster { 3 } else { 1 } {
            let port = free_port()?;
            let dir = std::env::temp_dir().join(format!("chorus-bench-redis-{port}"));
            std::fs::create_dir_all(&dir)?;
            let mut cmd = Command::new(bin);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    &dir.to_string_lossy(),
                ]);
            if cluster {
                cmd.args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ]);
            }
            servers.push(
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("starting {}", bin.display()))?,
            );
            ports.push(port);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if cluster {
            let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            let made = Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .status()
                .await
                .context("redis-cli --cluster create")?;
            if !made.success() {
                bail!("redis-cli --cluster create failed");
            }
            // Every node must know the slots before the nodes connect.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok(Self {
            servers,
            ports,
            cluster,
        })
    }

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

async fn start_node(bin: &Path, kind: Kind, redis: &Redis, history: bool) -> Result<Node> {
    let (port, admin) = (free_port()?, free_port()?);
    let app = ("bench-app", "bench-key", "bench-secret");
    let urls = redis.urls().join(",");
    let mut cmd = match kind {
        Kind::Chorus => {
            let config = std::env::temp_dir().join(format!("chorus-bench-cluster-{port}.toml"));
            let history_size = if history { 100 } else { 0 };
            std::fs::write(
                &config,
                format!(
                    "[[apps]]\nid = \"bench-app\"\nkey = \"bench-key\"\nsecret = \"bench-secret\"\n\
                     history_size = {history_size}\nmax_api_requests_per_second = 0\n"
                ),
            )?;
            let mut cmd = Command::new(bin);
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--admin-port", &admin.to_string(), "--log", "warn"])
                .args(["--config", &config.to_string_lossy(), "--adapter", "redis"])
                .args(["--redis-prefix", "benchcluster"]);
            if redis.cluster {
                cmd.args(["--redis-cluster-nodes", &urls]);
            } else {
                cmd.args(["--redis-url", &urls]);
            }
            cmd
        }
        Kind::Sockudo => {
            let adapter = if redis.cluster {
                Adapter::RedisCluster(&urls)
            } else {
                Adapter::Redis(&urls)
            };
            sockudo::command(bin, port, app, adapter)?
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        app_id: app.0.into(),
        key: app.1.into(),
        secret: app.2.into(),
        server_pid: child.id(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = match kind {
            Kind::Chorus => get(port, "/up").await.is_ok_and(|b| b.contains("\"ok\"")),
            // Sockudo's /up answers once it serves.
            Kind::Sockudo => get(port, "/up").await.is_ok(),
        };
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("node on {port} did not reach Redis within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Node {
        child,
        target,
        admin,
    })
}

/// `chorus_redis_messages_received_total` of a node, if its build has it.
async fn messages_received(admin: u16) -> Option<u64> {
    let text = get(admin, "/metrics").await.ok()?;
    text.lines()
        .find(|l| l.starts_with("chorus_redis_messages_received_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub async fn run(bin: &Path, o: &ClusterOpts) -> Result<Value> {
    let mut redis = Redis::start(&o.redis_server, o.redis_cluster).await?;
    let mut nodes = Vec::new();
    for _ in 0..o.nodes.max(1) {
        nodes.push(start_node(bin, o.kind, &redis, o.history).await?);
    }
    // One subscriber per channel, channel i on node i mod N.
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for i in 0..o.channels {
        let t = &nodes[i % nodes.len()].target;
        let (mut sock, socket_id) = ws::connect(t, i).await?;
        let channel = format!("bench-{i}");
        ws::subscribe(&mut sock, t, &socket_id, &channel, None).await?;
        ws::wait_succeeded(&mut sock, &channel, Duration::from_secs(10)).await?;
        let received = Arc::clone(&received);
        readers.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = sock.next().await {
                if let Message::Text(t) = msg {
                    if t.as_str().contains("\"event\":\"e\"") {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let before: Vec<Option<u64>> =
        futures_util::future::join_all(nodes.iter().map(|n| messages_received(n.admin))).await;
    let cpu = |pids: &[Option<u32>]| -> f64 {
        pids.iter()
            .filter_map(|p| p.and_then(sys::proc_cpu_secs))
            .sum()
    };
    let node_pids: Vec<Option<u32>> = nodes.iter().map(|n| n.target.server_pid).collect();
    let redis_pid: Vec<Option<u32>> = redis.servers.iter().map(Child::id).collect();
    let (nodes_cpu0, redis_cpu0) = (cpu(&node_pids), cpu(&redis_pid));
    let started = Instant::now();
    let mut http = HttpConn::connect(&nodes[0].target).await?;
    let mut sent = 0;
    while sent < o.events && started.elapsed() < Duration::from_secs(60) {
        let batch: Vec<Value> = (sent..(sent + 10).min(o.events))
            .map(|n| json!({"name": "e", "channel": format!("bench-{}", n % o.channels), "data": n.to_string()}))
            .collect();
        let body = json!({ "batch": batch }).to_string();
        let reply = http.publish(true, body.as_bytes()).await?;
        if reply.status != 200 {
            bail!("publish answered {}", reply.status);
        }
        sent += batch.len();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (received.load(Ordering::Relaxed) as usize) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (nodes_cpu, redis_cpu) = (cpu(&node_pids) - nodes_cpu0, cpu(&redis_pid) - redis_cpu0);
    let after: Vec<Option<u64>> =
        futures_util::future::join_all(nodes.iter().map(|n| messages_received(n.admin))).await;
    let per_node: Vec<Value> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => json!(a - b),
            _ => Value::Null,
        })
        .collect();
    let delivered = received.load(Ordering::Relaxed);
    for r in readers {
        r.abort();
    }
    for mut n in nodes {
        let _ = n.child.start_kill();
        let _ = n.child.wait().await;
    }
    for r in &mut redis.servers {
        let _ = r.start_kill();
        let _ = r.wait().await;
    }
    for p in &redis.ports {
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("chorus-bench-redis-{p}")));
    }
    let per_event = |cpu: f64| cpu * 1e6 / sent.max(1) as f64;
    Ok(json!({
        "scenario": "cluster",
        "ok": delivered as usize == sent,
        "kind": format!("{:?}", o.kind).to_lowercase(),
        "redis": if o.redis_cluster { "cluster of 3" } else { "one server" },
        "nodes": o.nodes,
        "history": o.history,
        "channels": o.channels,
        "events": sent,
        "delivered": delivered,
        "secs": secs,
        "cluster_cpu_us_per_event": per_event(nodes_cpu),
        "redis_cpu_us_per_event": per_event(redis_cpu),
        "redis_messages_per_node": per_node,
    }))
}
