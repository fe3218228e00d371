//! The built `chorus` binary itself: `--help`, environment variables, log-filter precedence and
//! graceful shutdown on a real SIGTERM.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::processes::free_port;
use common::*;
use serde_json::json;

/// `chorus` with none of the caller's `CHORUS_*` or `RUST_LOG` variables, so only what a test
/// sets reaches it.
fn chorus() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("CHORUS_") || name_str == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    cmd.env("NO_COLOR", "1");
    // Several run at once: each admin listener on a free port.
    cmd.env("CHORUS_ADMIN_PORT", "0");
    cmd
}

/// A running `chorus`; its output goes to a file (read with [`Running::output`]). Killed on drop.
struct Running {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Running {
    /// Starts `cmd` and waits until `/up` answers on 127.0.0.1:`port`.
    fn start(mut cmd: Command, port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("chorus-binary-test-{port}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = std::fs::File::create(dir.join("output.log")).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn chorus");
        let mut running = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        let start = Instant::now();
        while !running.up() {
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("chorus exited with {status}:\n{}", running.output());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "chorus not up on {}:\n{}",
                running.addr,
                running.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        running
    }

    fn up(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(self.addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut text = String::new();
        s.write_all(b"GET /up HTTP/1.0\r\nHost: x\r\n\r\n").is_ok()
            && s.read_to_string(&mut text).is_ok()
            && text.contains(r#""status":"ok""#)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("output.log")).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (without blocking the test's runtime) for the process to exit.
    async fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// SIGTERM and wait for the exit; returns the output.
    async fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.exited_within(Duration::from_secs(10)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}:\n{}",
            self.output()
        );
        self.output()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn help_explains_the_main_flags() {
    let out = chorus().arg("--help").output().expect("run chorus --help");
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--config",
        "--log",
        "--inactivity-timeout",
        "CHORUS_PORT",
    ] {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
}

#[tokio::test]
async fn sigterm_sends_4200_to_clients_and_exits_within_shutdown_timeout() {
    const SHUTDOWN_TIMEOUT: u64 = 3;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("chorus-binary-config-{port}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("chorus.toml");
    std::fs::write(
        &config,
        format!("host = \"127.0.0.1\"\nport = {port}\nshutdown_timeout = {SHUTDOWN_TIMEOUT}\n"),
    )
    .expect("write config");
    let mut cmd = chorus();
    cmd.arg("--config").arg(&config);
    let mut server = Running::start(cmd, port);
    let url = format!("ws://{}/app/{KEY}?protocol=7", server.addr);
    let mut subscribed = Client::connect(&url).await;
    subscribed.subscribe("news").await;
    let mut idle = Client::connect(&url).await;

    let signalled = Instant::now();
    server.signal("TERM");
    for c in [&mut subscribed, &mut idle] {
        let (err, code) = error_then_close(&mut c.ws).await;
        assert_eq!(
            (err["code"].as_u64(), code),
            (Some(4200), Some(4200)),
            "{err}"
        );
    }
    let status = server
        .exited_within(Duration::from_secs(SHUTDOWN_TIMEOUT + 2))
        .await;
    let took = signalled.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?} after {took:?}:\n{}",
        server.output()
    );
    assert!(server.output().contains("stopped"), "{}", server.output());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn environment_variables_configure_the_binary() {
    let port = free_port();
    let mut cmd = chorus();
    cmd.env("CHORUS_HOST", "127.0.0.1")
        .env("CHORUS_PORT", port.to_string())
        .env("CHORUS_APP_ID", "env-id")
        .env("CHORUS_APP_KEY", "env-key")
        .env("CHORUS_APP_SECRET", "env-secret")
        .env("CHORUS_INACTIVITY_TIMEOUT", "1");
    let server = Running::start(cmd, port);
    let base = format!("ws://{}", server.addr);

    let mut c = Client::connect(&format!("{base}/app/env-key?protocol=7")).await;
    // The development app is not served when the environment names one.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}/app/{KEY}?protocol=7"))
        .await
        .expect("connect");
    let (err, code) = error_then_close(&mut ws).await;
    assert_eq!((err["code"].as_u64(), code), (Some(4001), Some(4001)));
    let api = Api::new(server.addr, "env-id", "env-key", "env-secret");
    let (status, body) = api.get("/channels", &[]).await;
    assert_eq!((status, body), (200, json!({"channels": {}})));
    // CHORUS_INACTIVITY_TIMEOUT=1: the unsubscribed connection is closed after a second.
    let (err, code) = error_then_close(&mut c.ws).await;
    assert_eq!(
        (err["code"].as_u64(), code),
        (Some(4202), Some(4202)),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test]
async fn log_flag_and_chorus_log_win_over_rust_log_and_flags_over_env() {
    // The "chorus listening" line is logged at info.
    const INFO_LINE: &str = "chorus listening";

    // RUST_LOG alone is honoured.
    let port = free_port();
    let mut cmd = chorus();
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RUST_LOG", "error");
    let out = Running::start(cmd, port).stop().await;
    assert!(!out.contains(INFO_LINE), "RUST_LOG=error ignored:\n{out}");

    // CHORUS_LOG beats RUST_LOG.
    let port = free_port();
    let mut cmd = chorus();
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RUST_LOG", "error")
        .env("CHORUS_LOG", "info");
    let out = Running::start(cmd, port).stop().await;
    assert!(out.contains(INFO_LINE), "CHORUS_LOG=info lost:\n{out}");

    // --log beats both, and --port beats CHORUS_PORT.
    let (port, env_port) = (free_port(), free_port());
    let mut cmd = chorus();
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--log",
        "info",
    ])
    .env("CHORUS_PORT", env_port.to_string())
    .env("RUST_LOG", "error")
    .env("CHORUS_LOG", "error");
    let out = Running::start(cmd, port).stop().await;
    assert!(out.contains(INFO_LINE), "--log info lost:\n{out}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_and_text_logs_have_no_colour_in_a_file() {
    let port = free_port();
    let mut cmd = chorus();
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-format", "json", "--log", "info"]);
    let out = Running::start(cmd, port).stop().await;
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(lines.len() >= 2, "{out}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
    }
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "chorus listening")
        .unwrap_or_else(|| panic!("no listening line:\n{out}"));
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["fields"]["addr"].as_str().is_some(),
        "{listening}"
    );

    // Text into a file (not a terminal), NO_COLOR unset: no escape codes.
    let port = free_port();
    let mut cmd = chorus();
    cmd.env_remove("NO_COLOR")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("CHORUS_LOG_FORMAT", "text");
    let out = Running::start(cmd, port).stop().await;
    assert!(out.contains("chorus listening"), "{out}");
    assert!(!out.contains('\u{1b}'), "colour codes in a file:\n{out:?}");
}

/// Runs `chorus` to its exit; returns (exit code, stderr).
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.stdin(Stdio::null()).output().expect("run chorus");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_error_is_printed_once_with_its_documented_exit_code() {
    let dir = std::env::temp_dir().join(format!("chorus-bad-config-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("chorus.toml");
    std::fs::write(&file, "prot = 6001\n").unwrap();
    let (code, err) = run_to_exit(chorus().arg("--config").arg(&file));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches("unknown field `prot`").count(), 1, "{err}");
    assert!(err.starts_with("chorus: invalid config file"), "{err}");
    assert!(!err.contains("Caused by"), "{err}");

    let (code, err) = run_to_exit(chorus().args(["--log", "chorus_server=[[["]));
    assert_eq!(code, Some(2), "{err}");

    // Not a configuration error: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, err) = run_to_exit(chorus().args(["--host", "127.0.0.1", "--port", &port]));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.matches("in use").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_or_mismatched_tls_pair_is_a_clear_configuration_error() {
    let dir = std::env::temp_dir().join(format!("chorus-tls-pair-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // Two self-signed certificates, each with its own key (openssl, as an operator would).
    for name in ["a", "b"] {
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .args(["-keyout", &path(&format!("{name}.key"))])
            .args(["-out", &path(&format!("{name}.pem"))])
            .stderr(Stdio::null())
            .status()
            .expect("openssl must be installed (scripts/test.sh installs it)");
        assert!(status.success());
    }
    let start = |cert: &str, key: &str| {
        run_to_exit(chorus().args(["--host", "127.0.0.1", "--port", "0"]).args([
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]))
    };
    let (code, err) = start(&path("a.pem"), &path("b.key"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not the key of certificate"), "{err}");
    let (code, err) = start(&path("missing.pem"), &path("a.key"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read certificate"), "{err}");
    let (code, err) = start(&path("a.key"), &path("a.key"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");
    let (code, err) = run_to_exit(chorus().args(["--tls-cert", &path("a.pem")]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("both tls_cert and tls_key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
