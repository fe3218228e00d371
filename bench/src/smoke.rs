//! CI smoke run: every scenario, briefly, against a Chorus started here on a free loopback port.
//! Correctness only (no timing thresholds): a scenario fails if it loses a message, gets an error,
//! or sees wrong presence events.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::scenarios::{self, ChatOpts, FanoutOpts, IdleOpts, MaxOpts, PresenceOpts};
use crate::Target;

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn start(bin: &Path) -> Result<(Child, Target)> {
    let port = free_port()?;
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        app_id: "smoke-app".into(),
        key: "smoke-key".into(),
        secret: "smoke-secret".into(),
        server_pid: None,
    };
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--app-id", &target.app_id, "--app-key", &target.key])
        .args(["--app-secret", &target.secret, "--log", "warn"])
        // A free admin port: another chorus on this machine may hold the default one.
        .args(["--admin-port", "0"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let target = Target {
        server_pid: child.id(),
        ..target
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {port} within 15 s",
                bin.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, target))
}

fn brief(subscribers: usize, rate: f64) -> FanoutOpts {
    FanoutOpts {
        subscribers,
        rate,
        duration_secs: 1.5,
        max_batch: 10,
        http_connections: 2,
        payload_bytes: 64,
        concurrency: 32,
    }
}

pub async fn run(bin: &Path, out: Option<&PathBuf>) -> Result<i32> {
    let (mut child, t) = start(bin).await?;
    let mut results: Vec<(&str, Result<Vec<Value>>)> = Vec::new();
    let idle = IdleOpts {
        connections: 300,
        concurrency: 32,
        hold_secs: 0.5,
    };
    results.push(("idle", scenarios::idle(&t, &idle).await.map(|v| vec![v])));
    results.push((
        "fanout",
        scenarios::fanout(&t, &brief(100, 200.0))
            .await
            .map(|v| vec![v]),
    ));
    let m = MaxOpts {
        start_rate: 100.0,
        factor: 4.0,
        max_rate: 1600.0,
        max_steps: 3,
        max_p99_ms: 1000.0,
        max_loss: 0.0,
    };
    let mut mo = brief(50, 100.0);
    mo.duration_secs = 1.0;
    results.push(("max-fanout", scenarios::max_fanout(&t, &mo, &m).await));
    let chat = scenarios::chat(&t, &brief(0, 500.0), &ChatOpts { rooms: 50 }).await;
    results.push(("chat", chat.map(|v| vec![v])));
    let p = PresenceOpts {
        channels: 3,
        watchers: 3,
        churners: 4,
        rate: 20.0,
        duration_secs: 1.5,
        hold_ms: 50,
    };
    results.push((
        "presence",
        scenarios::presence(&t, &p).await.map(|v| vec![v]),
    ));
    let _ = child.start_kill();
    let _ = child.wait().await;

    let (mut passed, mut failed) = (0, 0);
    for (name, r) in results {
        match r {
            Ok(records) => {
                let mut ok = !records.is_empty();
                for rec in records {
                    // For max-fanout only correctness counts: each step delivered everything.
                    let s = rec["scenario"].as_str().unwrap_or("");
                    if s != "max-fanout" {
                        ok &= rec["ok"].as_bool() == Some(true);
                    }
                    crate::emit(out, "smoke", rec)?;
                }
                if ok {
                    passed += 1;
                } else {
                    println!("smoke: {name} FAILED");
                    failed += 1;
                }
            }
            Err(e) => {
                println!("smoke: {name} FAILED: {e:#}");
                failed += 1;
            }
        }
    }
    println!("smoke: {passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}
