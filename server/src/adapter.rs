//! How a broadcast reaches subscribers: through an [`Adapter`]. The local adapter delivers to this
//! node's subscribers; a cluster adapter (Redis) also forwards to the other nodes, which then
//! deliver through [`App::deliver_local`].

use axum::extract::ws::Utf8Bytes;

use crate::app::App;

pub trait Adapter: Send + Sync + 'static {
    /// Delivers an encoded event on `channel` to every subscriber except the connection `except`.
    fn broadcast(&self, app: &App, channel: &str, frame: &Utf8Bytes, except: Option<&str>);

    /// Closes every connection signed in as `user_id`.
    fn terminate_user(&self, app: &App, user_id: &str);
}

/// Single-node delivery.
#[derive(Debug, Default)]
pub struct LocalAdapter;

impl Adapter for LocalAdapter {
    fn broadcast(&self, app: &App, channel: &str, frame: &Utf8Bytes, except: Option<&str>) {
        app.deliver_local(channel, frame, except);
    }

    fn terminate_user(&self, app: &App, user_id: &str) {
        app.users.terminate(user_id);
    }
}

impl App {
    /// Delivers to this node's subscribers and counts it.
    pub fn deliver_local(&self, channel: &str, frame: &Utf8Bytes, except: Option<&str>) -> usize {
        let n = self.channels.broadcast(channel, frame, except);
        self.metrics.delivered(n, frame.len());
        n
    }
}
