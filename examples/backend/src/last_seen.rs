//! "Last seen": every API request marks the user as seen (see `auth::CurrentUser`), and while a
//! user has the app open they are a member of `presence-online`, so this task asks Chorus every
//! few seconds who is there and marks them as seen. When someone closes the app, their
//! `last_seen` stays within a few seconds of the moment they left, even if the browser crashed.

use crate::AppState;
use std::time::Duration;

pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

pub async fn track(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    let mut failing = false;
    loop {
        tick.tick().await;
        match state.chorus.presence_users("presence-online").await {
            Ok(ids) => {
                failing = false;
                let ids: Vec<i64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
                if let Err(e) = state.db.touch(&ids) {
                    eprintln!("could not record last seen: {e}");
                }
            }
            // Log an outage once, not every few seconds.
            Err(e) if !failing => {
                failing = true;
                eprintln!("last seen: {e}");
            }
            Err(_) => {}
        }
    }
}
