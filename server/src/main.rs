//! The `chorus` binary: loads configuration, starts the server, stops it on SIGINT/SIGTERM.

use std::cell::Cell;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chorus_server::Server;
use chorus_server::{Cli, Config, ConfigError, LogFormat, StartError};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: fan-out allocates and frees small frames and queue nodes across worker threads,
/// where it costs less CPU than glibc's malloc (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often an idle worker thread hands freed memory back (see [`collect_when_idle`]).
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// Run when a worker thread parks. With mimalloc, a block freed by another thread (a fan-out frame
/// written by a subscriber's writer, a closed connection's buffers) waits in its allocating
/// thread's pages until that thread collects it; a worker that goes idle after a burst would keep
/// the burst's memory. At most once a second per thread, and only when it has nothing else to do.
fn collect_when_idle() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    LAST.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_some_and(|t| now.duration_since(t) < COLLECT_EVERY)
        {
            return;
        }
        last.set(Some(now));
        // SAFETY: mi_collect walks the calling thread's own heap; no pointer is passed.
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
}

/// Exit codes (README, "Running it"): 0 after a clean stop, 1 when the server could not start or
/// failed while serving, 2 for an invalid configuration, TLS files included (as clap's own usage
/// errors).
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus: {}", one_line(&e));
            let config = e
                .chain()
                .any(|c| c.is::<ConfigError>() || c.downcast_ref().is_some_and(is_tls));
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

fn is_tls(e: &StartError) -> bool {
    matches!(e, StartError::Tls(_))
}

/// The error and its causes on one line, without repeating a cause the message above it already
/// quotes (a typed error often includes its source's text).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let loaded = Config::load(&cli)?;
    // Config::load already chose between --log/CHORUS_LOG, RUST_LOG and the file.
    let filter = EnvFilter::try_new(&loaded.config.log).map_err(|e| {
        ConfigError::Invalid(format!(
            "log filter {:?} (from --log, CHORUS_LOG, RUST_LOG or the config file): {e}",
            loaded.config.log
        ))
    })?;
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match loaded.config.log_format {
        // Colour codes only for a person at a terminal, never into a file or a journal.
        LogFormat::Text => logs
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }

    if loaded.uses_development_credentials {
        tracing::warn!(
            "!!! Serving the built-in development app (id app-id, key app-key, secret app-secret). \
             These credentials are public: for development only. Configure apps in a config file \
             or with CHORUS_APP_ID/CHORUS_APP_KEY/CHORUS_APP_SECRET before exposing this server. !!!"
        );
    }

    // Each connection is a descriptor; a soft limit like systemd's usual 1024 would lock clients
    // out long before memory does.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_when_idle)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = loaded.config;
        let apps: Vec<String> = config.apps.iter().map(|a| a.id.clone()).collect();
        let server = Server::bind(config.clone())
            .await
            .with_context(|| format!("starting on {}:{}", config.host, config.port))?;
        tracing::info!(addr = %server.local_addr()?, admin = %server.admin_addr()?, apps = ?apps, "chorus listening");
        server.run(shutdown_signal()).await.context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
