//! `report`: a Markdown table from JSON-lines results, one row per (case, metric), the mean over
//! rounds for each server, and how many times better the first server is than the baseline.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

/// (label, JSON pointer, higher is better)
fn metrics(scenario: &str) -> &'static [(&'static str, &'static str, bool)] {
    match scenario {
        "idle" => &[
            (
                "server RSS per idle connection (bytes)",
                "/server_bytes_per_connection",
                false,
            ),
            (
                "idle connections per GiB of server RSS",
                "/connections_per_gib",
                true,
            ),
            ("connects per second", "/connects_per_sec", true),
        ],
        "fanout" | "max-fanout" => &[
            ("publish rate (events/s)", "/publish_rate", true),
            ("delivered msg/s", "/delivered_per_sec", true),
            ("loss", "/loss", false),
            ("latency p50 (ms)", "/latency_ms/p50", false),
            ("latency p99 (ms)", "/latency_ms/p99", false),
            ("latency p99.9 (ms)", "/latency_ms/p99.9", false),
            (
                "server CPU per delivered msg (µs)",
                "/server_cpu_us_per_delivered",
                false,
            ),
            ("server cores busy", "/server_cores", false),
            ("tool cores busy", "/tool_cores", false),
        ],
        "chat" => &[
            ("HTTP-published events/s", "/publish_rate", true),
            ("HTTP requests/s", "/http_requests_per_sec", true),
            ("delivered msg/s", "/delivered_per_sec", true),
            ("loss", "/loss", false),
            ("latency p50 (ms)", "/latency_ms/p50", false),
            ("latency p99 (ms)", "/latency_ms/p99", false),
            (
                "server CPU per published event (µs)",
                "/server_cpu_us_per_published",
                false,
            ),
            ("server cores busy", "/server_cores", false),
            ("tool cores busy", "/tool_cores", false),
        ],
        "presence" => &[
            ("joins/s", "/joins_per_sec", true),
            ("missing member events", "/missing", false),
            ("duplicate member events", "/duplicate", false),
            ("join latency p99 (ms)", "/join_latency_ms/p99", false),
        ],
        _ => &[],
    }
}

pub fn load(files: &[PathBuf]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f)?.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

fn num(v: &Value, ptr: &str) -> Option<f64> {
    // "p99.9" is stored as p999.
    let ptr = ptr.replace("p99.9", "p999");
    v.pointer(&ptr).and_then(Value::as_f64)
}

fn fmt(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 0.01 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

pub fn report(files: &[PathBuf], baseline: &str) -> Result<String> {
    let records = load(files)?;
    // case -> (scenario, server -> records)
    let mut cases: BTreeMap<String, (String, BTreeMap<String, Vec<Value>>)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut servers: Vec<String> = Vec::new();
    for r in records {
        let scenario = r["scenario"].as_str().unwrap_or("").to_owned();
        if scenario == "max-fanout-step" {
            continue;
        }
        let case = r["case"].as_str().unwrap_or(&scenario).to_owned();
        let server = r["server"].as_str().unwrap_or("?").to_owned();
        if !servers.contains(&server) {
            servers.push(server.clone());
        }
        if !order.contains(&case) {
            order.push(case.clone());
        }
        cases
            .entry(case)
            .or_insert_with(|| (scenario, BTreeMap::new()))
            .1
            .entry(server)
            .or_default()
            .push(r);
    }
    servers.sort_by_key(|s| s == baseline);
    let first = servers.first().cloned().unwrap_or_default();
    let mut md = String::new();
    let _ = write!(md, "| case | metric |");
    for s in &servers {
        let _ = write!(md, " {s} |");
    }
    let _ = writeln!(md, " {first} vs {baseline} |");
    let _ = write!(md, "|---|---|");
    for _ in &servers {
        md.push_str("---:|");
    }
    md.push_str("---:|\n");
    for case in order {
        let (scenario, by_server) = &cases[&case];
        for (label, ptr, higher) in metrics(scenario) {
            let mean = |s: &str| -> Option<f64> {
                let xs: Vec<f64> = by_server
                    .get(s)?
                    .iter()
                    .filter_map(|r| num(r, ptr))
                    .collect();
                (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
            };
            if servers.iter().all(|s| mean(s).is_none()) {
                continue;
            }
            let _ = write!(md, "| {case} | {label} |");
            for s in &servers {
                match mean(s) {
                    Some(x) => {
                        let _ = write!(md, " {} |", fmt(x));
                    }
                    None => md.push_str(" – |"),
                }
            }
            let ratio = match (mean(&first), mean(baseline)) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 && first != baseline => {
                    let r = if *higher { a / b } else { b / a };
                    format!("{}× {}", fmt(r), if r >= 1.0 { "better" } else { "worse" })
                }
                _ => "–".into(),
            };
            let _ = writeln!(md, " {ratio} |");
        }
    }
    Ok(md)
}
