//! The `chorus` binary: loads configuration, starts the server, stops it on SIGINT/SIGTERM.

use anyhow::Context;
use chorus_server::Server;
use chorus_server::{Cli, Config};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: fan-out allocates and frees small frames and queue nodes across worker threads,
/// where it costs less CPU than glibc's malloc (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let loaded = Config::load(&cli)?;
    // Config::load already chose between --log/CHORUS_LOG, RUST_LOG and the file.
    let filter = EnvFilter::try_new(&loaded.config.log).with_context(|| {
        format!(
            "invalid log filter {:?} (from --log, CHORUS_LOG, RUST_LOG or the config file)",
            loaded.config.log
        )
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();

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
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = loaded.config;
        let apps: Vec<String> = config.apps.iter().map(|a| a.id.clone()).collect();
        let server = Server::bind(config.clone())
            .await
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        tracing::info!(addr = %server.local_addr()?, apps = ?apps, "chorus listening");
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
