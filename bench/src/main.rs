//! `chorus-bench`: load scenarios for any Pusher-compatible server (Chorus, Sockudo, …) over real
//! sockets and the signed HTTP API. See `bench/run.sh` and BENCHMARKS.md.

mod abuse;
mod cluster;
mod floor;
mod http;
mod load;
#[cfg(feature = "plot")]
mod plot;
mod report;
mod scenarios;
mod smoke;
mod sockudo;
mod storm;
mod sys;
mod ws;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use scenarios::{ChatOpts, FanoutOpts, IdleOpts, MaxOpts, PresenceOpts};

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub app_id: String,
    pub key: String,
    pub secret: String,
    pub server_pid: Option<u32>,
}

#[derive(Parser)]
#[command(
    name = "chorus-bench",
    version,
    about = "Load scenarios for Pusher-compatible servers"
)]
struct Cli {
    /// Server address (an IP; loopback only for load runs on shared machines).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, global = true, default_value_t = 6001)]
    port: u16,
    #[arg(long, global = true, default_value = "app-id")]
    app_id: String,
    #[arg(long, global = true, default_value = "app-key")]
    key: String,
    #[arg(long, global = true, default_value = "app-secret")]
    secret: String,
    /// PID of the server process: its RSS and CPU time are read from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Name of the server in the results (e.g. chorus, sockudo).
    #[arg(long, global = true, default_value = "server")]
    label: String,
    /// Name of this measurement in the results (e.g. idle-10k), used by `report` and `plot`.
    #[arg(long, global = true)]
    case: Option<String>,
    /// Append each result as one JSON line to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Worker threads of the tool's runtime (it shares the cores with the server).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Publishing {
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Most events per HTTP request (1 = /events; 2–10 = /batch_events when behind schedule).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Concurrent keep-alive HTTP connections of the publisher.
    #[arg(long, default_value_t = 2)]
    http_connections: usize,
    /// Bytes of event data.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Connections opened at once while setting up.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Silent sockets, then clients that never read a flooded channel: server RSS before, at the
    /// peak and after each, whether the server closed them, and a bystander's latency meanwhile.
    Abuse {
        #[arg(long, default_value_t = 2000)]
        silent: usize,
        /// Seconds to hold the silent sockets: more than the server's handshake timeout.
        #[arg(long, default_value_t = 13.0)]
        silent_hold: f64,
        #[arg(long, default_value_t = 30)]
        stalled: usize,
        /// Megabytes published on the channel the stalled clients are on.
        #[arg(long, default_value_t = 50)]
        flood_mb: usize,
    },
    /// N idle connections: connect rate and server RSS per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to hold the connections before measuring memory.
        #[arg(long, default_value_t = 3.0)]
        hold: f64,
    },
    /// One channel, N subscribers, a fixed publish rate.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Events per second published (0 = as fast as the server answers).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[command(flatten)]
        p: Publishing,
    },
    /// Step the fan-out rate up until loss or p99 over the limit.
    MaxFanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 50.0)]
        start_rate: f64,
        #[arg(long, default_value_t = 2.0)]
        factor: f64,
        #[arg(long, default_value_t = 100_000.0)]
        max_rate: f64,
        #[arg(long, default_value_t = 12)]
        steps: usize,
        #[arg(long, default_value_t = 1000.0)]
        max_p99_ms: f64,
        /// Largest loss fraction still counted as sustained.
        #[arg(long, default_value_t = 0.0)]
        max_loss: f64,
        #[command(flatten)]
        p: Publishing,
    },
    /// Many private rooms of two members, events round-robin to the rooms.
    Chat {
        #[arg(long, default_value_t = 1000)]
        rooms: usize,
        /// Events per second (0 = as fast as the server answers: HTTP publish throughput).
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        #[command(flatten)]
        p: Publishing,
    },
    /// Presence joins/leaves per second, checking every member event.
    Presence {
        #[arg(long, default_value_t = 10)]
        channels: usize,
        #[arg(long, default_value_t = 10)]
        watchers: usize,
        #[arg(long, default_value_t = 20)]
        churners: usize,
        /// Joins per second in total.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Milliseconds a churner stays before leaving.
        #[arg(long, default_value_t = 100)]
        hold_ms: u64,
    },
    /// No server: the kernel's cost of one small write per socket on loopback (the floor under
    /// any server's CPU per delivered message when writes cannot be coalesced).
    Floor {
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        /// Bursts per second (one write to every socket per burst).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Bytes per write (a fan-out frame of the fanout scenario is about 150).
        #[arg(long, default_value_t = 150)]
        bytes: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// N chorus nodes on a redis-server started here, channels spread over them: cluster CPU
    /// per event (nodes summed), Redis CPU per event, pub/sub messages each node received.
    Cluster {
        #[arg(long, default_value = "target/release/chorus")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        #[arg(long, default_value_t = 200)]
        channels: usize,
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value = "redis-server")]
        redis_server: PathBuf,
        /// Channels keep history (publishes become Redis scripts).
        #[arg(long)]
        history: bool,
        /// A Redis Cluster of three primaries instead of one redis-server.
        #[arg(long)]
        redis_cluster: bool,
        /// The server: Chorus, or Sockudo with its Redis adapter (`--server-bin` is then sockudo).
        #[arg(long, value_enum, default_value_t = storm::Kind::Chorus)]
        kind: storm::Kind,
    },
    /// N clients on private channels; the server stops gracefully (4200) and starts again: time
    /// until all are subscribed again, auth requests per second, failures, server CPU and RSS.
    ReconnectStorm {
        #[arg(long, default_value = "target/release/chorus")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 500)]
        rooms: usize,
        #[arg(long, value_enum, default_value_t = storm::Policy::Sdk)]
        policy: storm::Policy,
        /// What `--server-bin` is.
        #[arg(long, value_enum, default_value_t = storm::Kind::Chorus)]
        kind: storm::Kind,
    },
    /// CI smoke run: starts the given server binary on a free loopback port and runs every
    /// scenario briefly; exits non-zero if any loses messages or errors.
    Smoke {
        #[arg(long, default_value = "target/release/chorus")]
        server_bin: PathBuf,
    },
    /// Prints a free TCP port on 127.0.0.1 (for scripts).
    FreePort,
    /// Markdown comparison table from result files (mean over rounds), first server vs the others.
    Report {
        /// JSON-lines result files.
        #[arg(long, required = true, num_args = 1..)]
        results: Vec<PathBuf>,
        /// Server whose figures the ratio divides by (the baseline).
        #[arg(long, default_value = "sockudo")]
        baseline: String,
    },
    /// PNG plots from result files (built with `--features plot`).
    #[cfg(feature = "plot")]
    Plot {
        /// JSON-lines result files.
        #[arg(long, required = true, num_args = 1..)]
        results: Vec<PathBuf>,
        #[arg(long, default_value = "bench/plots")]
        out_dir: PathBuf,
    },
}

fn fanout_opts(subscribers: usize, rate: f64, p: &Publishing) -> FanoutOpts {
    FanoutOpts {
        subscribers,
        rate,
        duration_secs: p.duration,
        max_batch: p.batch.clamp(1, 10),
        http_connections: p.http_connections,
        payload_bytes: p.payload,
        concurrency: p.concurrency,
    }
}

pub fn f(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.0);
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else if x.abs() >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.3}")
            }
        }
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// One attack of the `abuse` scenario, on one line.
pub fn abuse_row(r: &Value) -> String {
    format!(
        "{}: {} sockets, {} closed by the server; RSS KiB {} -> peak {} -> {}; bystander worst {} ms, missed {}",
        f(r, "attack"), f(r, "sockets"), f(r, "closed_by_server"), f(r, "rss_before_kib"),
        f(r, "rss_peak_kib"), f(r, "rss_after_kib"), f(r, "bystander_worst_ms"), f(r, "bystander_missed")
    ) + &extras(r)
}

/// The attack's own figures, `key=value` after the common ones.
fn extras(r: &Value) -> String {
    const COMMON: [&str; 9] = [
        "attack",
        "secs",
        "sockets",
        "closed_by_server",
        "rss_before_kib",
        "rss_peak_kib",
        "rss_after_kib",
        "bystander_worst_ms",
        "bystander_missed",
    ];
    let Some(map) = r.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| !COMMON.contains(&k.as_str()))
        .map(|(k, v)| format!("; {k}={v}"))
        .collect()
}

/// One human-readable line for a result record.
pub fn summary(v: &Value) -> String {
    let s = v["scenario"].as_str().unwrap_or("?");
    let ok = if v["ok"].as_bool() == Some(true) {
        "ok"
    } else {
        "FAIL"
    };
    let lat = &v["latency_ms"];
    let line = match s {
        "idle" => format!(
            "opened {}/{} at {} conn/s; server {} B/conn ({} conn/GiB); closed {}",
            f(v, "opened"), f(v, "connections"), f(v, "connects_per_sec"),
            f(v, "server_bytes_per_connection"), f(v, "connections_per_gib"), f(v, "closed_while_idle")
        ),
        "floor" => format!(
            "{} writes of {} B to {} sockets ({}/s): writer {} us CPU per write ({} cores); received {} of {} bytes",
            f(v, "writes"), f(v, "frame_bytes"), f(v, "sockets"), f(v, "writes_per_sec"),
            f(v, "writer_cpu_us_per_write"), f(v, "writer_cores"), f(v, "bytes_received"), f(v, "bytes_expected")
        ),
        "abuse" => format!(
            "{} attacks, each listed above",
            v["attacks"].as_array().map_or(0, Vec::len)
        ),
        "reconnect-storm" => format!(
            "{} clients ({} policy): server down {} ms, up again at {} ms, all {} resubscribed at {} ms; auth {} requests, peak {}/s; connect failures {}, refusals {}; server CPU {} s, RSS peak {} KiB",
            f(v, "clients"), f(v, "policy"), f(v, "server_down_ms"), f(v, "server_up_ms"), f(v, "resubscribed"),
            f(v, "all_resubscribed_ms"), f(v, "auth_requests"), f(v, "auth_peak_per_sec"), f(v, "connect_failures"),
            f(v, "refusals"), f(v, "server_cpu_secs"), f(v, "server_rss_peak_kib")
        ),
        "cluster" => format!(
            "{} {} nodes on Redis ({}), {} channels: {} events, {} delivered in {} s; cluster CPU {} us/event, Redis CPU {} us/event; Redis messages per node {}",
            f(v, "nodes"), f(v, "kind"), f(v, "redis"), f(v, "channels"), f(v, "events"), f(v, "delivered"), f(v, "secs"),
            f(v, "cluster_cpu_us_per_event"), f(v, "redis_cpu_us_per_event"), v["redis_messages_per_node"]
        ),
        "presence" => format!(
            "{} joins ({} /s), member events expected {}, missing {}, duplicate {}, out of order {}; join p50 {} ms p99 {} ms",
            f(v, "joins"), f(v, "joins_per_sec"), f(v, "member_events_expected"), f(v, "missing"),
            f(v, "duplicate"), f(v, "out_of_order"), f(&v["join_latency_ms"], "p50"), f(&v["join_latency_ms"], "p99")
        ),
        _ => format!(
            "rate {} -> published {}/s, delivered {}/s ({} of {}, loss {}), latency ms p50 {} p90 {} p99 {} p99.9 {} max {}; server {} cores, {} us/msg; tool {} cores",
            f(v, "target_rate"), f(v, "publish_rate"), f(v, "delivered_per_sec"), f(v, "delivered"),
            f(v, "expected"), f(v, "loss"), f(lat, "p50"), f(lat, "p90"), f(lat, "p99"), f(lat, "p999"),
            f(lat, "max"), f(v, "server_cores"), f(v, "server_cpu_us_per_delivered"), f(v, "tool_cores")
        ),
    };
    let err = v["first_error"]
        .as_str()
        .map(|e| format!(" [first error: {e}]"))
        .unwrap_or_default();
    format!("{s} {ok}: {line}{err}")
}

fn emit(out: Option<&PathBuf>, label: &str, mut v: Value) -> Result<Value> {
    v["server"] = label.into();
    if let Some(case) = CASE.get() {
        if v.get("case").is_none() {
            v["case"] = case.clone().into();
        }
    }
    v["unix_time"] = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .into();
    println!("[{label}] {}", summary(&v));
    if let Some(path) = out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{v}")?;
    }
    Ok(v)
}

static CASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(c) = &cli.case {
        let _ = CASE.set(c.clone());
    }
    sys::now_us();
    let nofile = sys::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    let target = Target {
        host: cli.host.clone(),
        port: cli.port,
        app_id: cli.app_id.clone(),
        key: cli.key.clone(),
        secret: cli.secret.clone(),
        server_pid: cli.server_pid,
    };
    let out = cli.out.as_ref();
    let label = cli.label.as_str();
    rt.block_on(async {
        match &cli.cmd {
            Cmd::Abuse {
                silent,
                silent_hold,
                stalled,
                flood_mb,
            } => {
                let o = abuse::AbuseOpts {
                    silent: *silent,
                    silent_hold_secs: *silent_hold,
                    stalled: *stalled,
                    flood_mb: *flood_mb,
                };
                emit(out, label, abuse::abuse(&target, &o).await?)?;
            }
            Cmd::Idle {
                connections,
                concurrency,
                hold,
            } => {
                if *connections as u64 + 64 > nofile {
                    eprintln!(
                        "warning: open-files limit {nofile} is below {connections} connections"
                    );
                }
                let o = IdleOpts {
                    connections: *connections,
                    concurrency: *concurrency,
                    hold_secs: *hold,
                };
                emit(out, label, scenarios::idle(&target, &o).await?)?;
            }
            Cmd::Fanout {
                subscribers,
                rate,
                p,
            } => {
                let o = fanout_opts(*subscribers, *rate, p);
                emit(out, label, scenarios::fanout(&target, &o).await?)?;
            }
            Cmd::MaxFanout {
                subscribers,
                start_rate,
                factor,
                max_rate,
                steps,
                max_p99_ms,
                max_loss,
                p,
            } => {
                let o = fanout_opts(*subscribers, *start_rate, p);
                let m = MaxOpts {
                    start_rate: *start_rate,
                    factor: factor.max(1.01),
                    max_rate: *max_rate,
                    max_steps: *steps,
                    max_p99_ms: *max_p99_ms,
                    max_loss: *max_loss,
                };
                for r in scenarios::max_fanout(&target, &o, &m).await? {
                    emit(out, label, r)?;
                }
            }
            Cmd::Chat { rooms, rate, p } => {
                let o = fanout_opts(0, *rate, p);
                emit(
                    out,
                    label,
                    scenarios::chat(&target, &o, &ChatOpts { rooms: *rooms }).await?,
                )?;
            }
            Cmd::Presence {
                channels,
                watchers,
                churners,
                rate,
                duration,
                hold_ms,
            } => {
                let o = PresenceOpts {
                    channels: *channels,
                    watchers: *watchers,
                    churners: *churners,
                    rate: *rate,
                    duration_secs: *duration,
                    hold_ms: *hold_ms,
                };
                emit(out, label, scenarios::presence(&target, &o).await?)?;
            }
            Cmd::Floor {
                sockets,
                rate,
                bytes,
                duration,
            } => {
                let o = floor::FloorOpts {
                    sockets: *sockets,
                    rate: *rate,
                    bytes: *bytes,
                    duration_secs: *duration,
                };
                let r = tokio::task::spawn_blocking(move || floor::run(&o)).await??;
                emit(out, label, r)?;
            }
            Cmd::Cluster {
                server_bin,
                nodes,
                channels,
                events,
                redis_server,
                history,
                redis_cluster,
                kind,
            } => {
                let o = cluster::ClusterOpts {
                    kind: *kind,
                    redis_cluster: *redis_cluster,
                    history: *history,
                    nodes: *nodes,
                    channels: *channels,
                    events: *events,
                    redis_server: redis_server.clone(),
                };
                let r = cluster::run(server_bin, &o).await?;
                emit(out, label, r)?;
            }
            Cmd::ReconnectStorm {
                server_bin,
                clients,
                rooms,
                policy,
                kind,
            } => {
                let o = storm::StormOpts {
                    kind: *kind,
                    clients: *clients,
                    rooms: *rooms,
                    policy: *policy,
                };
                let r = storm::run(server_bin, &o).await?;
                emit(out, label, r)?;
            }
            Cmd::Smoke { server_bin } => {
                let code = smoke::run(server_bin, out).await?;
                if code != 0 {
                    std::process::exit(code);
                }
            }
            Cmd::FreePort => {
                let l = std::net::TcpListener::bind("127.0.0.1:0")?;
                println!("{}", l.local_addr()?.port());
            }
            Cmd::Report { results, baseline } => print!("{}", report::report(results, baseline)?),
            #[cfg(feature = "plot")]
            Cmd::Plot { results, out_dir } => plot::plot(results, out_dir)?,
        }
        anyhow::Ok(())
    })
}
