//! How the scenarios start Sockudo (5.2, `cargo install sockudo`): its settings come from the
//! environment; one app, no rate limits or metrics, in-memory drivers, and the local adapter or
//! (with a Redis URL) the Redis one.

use std::path::Path;

use anyhow::Result;
use tokio::process::Command;

/// Which adapter Sockudo runs.
pub enum Adapter<'a> {
    Local,
    /// One Redis server's URL.
    Redis(&'a str),
    /// A Redis Cluster's node URLs, comma-separated.
    RedisCluster(&'a str),
}

/// A Sockudo command on 127.0.0.1:`port` serving one app (`id`, `key`, `secret`), run in a
/// folder of its own.
pub fn command(
    bin: &Path,
    port: u16,
    (id, key, secret): (&str, &str, &str),
    adapter: Adapter<'_>,
) -> Result<Command> {
    let cwd = std::env::temp_dir().join(format!("sockudo-bench-{port}"));
    std::fs::create_dir_all(&cwd)?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd).envs([
        ("HOST", "127.0.0.1"),
        ("PORT", &port.to_string()),
        ("SOCKUDO_DEFAULT_APP_ID", id),
        ("SOCKUDO_DEFAULT_APP_KEY", key),
        ("SOCKUDO_DEFAULT_APP_SECRET", secret),
        ("SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", "10000000"),
        ("SOCKUDO_MAX_CONNECTIONS", "0"),
        ("RATE_LIMITER_ENABLED", "false"),
        ("METRICS_ENABLED", "false"),
        ("QUEUE_DRIVER", "memory"),
        ("APP_MANAGER_DRIVER", "memory"),
        ("DEBUG", "false"),
        ("SOCKUDO_LOG_PROD", "warn"),
        ("RUST_LOG", "warn"),
    ]);
    // A clustered Sockudo refuses to start with a node-local cache.
    match adapter {
        Adapter::Local => cmd.envs([("ADAPTER_DRIVER", "local"), ("CACHE_DRIVER", "memory")]),
        Adapter::Redis(url) => cmd.envs([
            ("ADAPTER_DRIVER", "redis"),
            ("CACHE_DRIVER", "redis"),
            ("REDIS_URL", url),
        ]),
        Adapter::RedisCluster(nodes) => cmd.envs([
            ("ADAPTER_DRIVER", "redis-cluster"),
            ("CACHE_DRIVER", "redis-cluster"),
            ("REDIS_CLUSTER_NODES", nodes),
        ]),
    };
    Ok(cmd)
}
