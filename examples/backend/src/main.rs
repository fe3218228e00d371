//! Example backend for the Chorus chat apps (`examples/vue`, `examples/react`). It plays the part a
//! Laravel app plays: stores users, chats and messages in SQLite, authorizes channel
//! subscriptions (`/broadcasting/auth`) and publishes events through Chorus's HTTP API.
//!
//! Configuration (environment):
//!   PORT (8000), HOST (127.0.0.1), DATABASE (data/chat.sqlite), UPLOADS (data/uploads),
//!   CHORUS_URL (http://127.0.0.1:6001), CHORUS_APP_ID / CHORUS_APP_KEY / CHORUS_APP_SECRET
//!   (the development app: app-id / app-key / app-secret).

mod auth;
mod chorus;
mod db;
mod error;
mod events;
mod last_seen;
mod routes;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Arc<db::Db>,
    pub chorus: Arc<chorus::Chorus>,
    pub uploads: PathBuf,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Largest attachment.
const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route("/api/users", get(routes::users))
        .route("/api/chats", get(routes::chats))
        .route(
            "/api/chats/{id}/messages",
            get(routes::messages)
                .post(routes::send_message)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024)),
        )
        .route("/api/chats/{id}/read", post(routes::mark_read))
        .route("/api/files/{file}", get(routes::file))
        .route("/broadcasting/auth", post(auth::broadcasting_auth))
        .route("/broadcasting/user-auth", post(auth::user_auth))
        .route("/pusher/webhook", post(last_seen::webhook))
        .with_state(state)
}

#[tokio::main]
async fn main() {
    let database = PathBuf::from(env("DATABASE", "data/chat.sqlite"));
    let uploads = PathBuf::from(env("UPLOADS", "data/uploads"));
    for dir in [database.parent(), Some(uploads.as_path())]
        .into_iter()
        .flatten()
    {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
    }
    let db = db::Db::open(&database)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", database.display()));
    let chorus = chorus::Chorus::new(
        env("CHORUS_URL", "http://127.0.0.1:6001"),
        env("CHORUS_APP_ID", "app-id"),
        env("CHORUS_APP_KEY", "app-key"),
        env("CHORUS_APP_SECRET", "app-secret"),
    );
    let state = AppState {
        db: Arc::new(db),
        chorus: Arc::new(chorus),
        uploads,
    };

    let addr = format!("{}:{}", env("HOST", "127.0.0.1"), env("PORT", "8000"));
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    println!(
        "chat backend on http://{addr} (database {})",
        database.display()
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .expect("server");
}
