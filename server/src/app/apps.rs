//! [`Apps`]: every configured app, by id (HTTP API) and by key (WebSocket). A reload swaps the
//! whole registry at once while readers go on without a lock; an app whose settings did not
//! change is the same [`App`], so its connections, channels and history are untouched.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::App;
use crate::config::AppConfig;

pub struct Apps {
    current: ArcSwap<Registry>,
    /// The webhook client, made when the first app with webhooks appears.
    client: parking_lot::Mutex<Option<reqwest::Client>>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl Registry {
    fn insert(&mut self, app: Arc<App>) {
        let config = app.config();
        self.by_key.insert(config.key.clone(), Arc::clone(&app));
        self.by_id.insert(config.id.clone(), app);
    }
}

/// What a reload did, by app id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
}

impl Apps {
    pub fn new(configs: &[AppConfig]) -> Self {
        let client = crate::webhooks::client(configs);
        let mut registry = Registry::default();
        for c in configs {
            registry.insert(Arc::new(App::new(c.clone(), client.as_ref())));
        }
        Self {
            current: ArcSwap::from_pointee(registry),
            client: parking_lot::Mutex::new(client),
        }
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<App>> {
        self.current.load().by_id.get(id).cloned()
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<App>> {
        self.current.load().by_key.get(key).cloned()
    }

    /// The apps now (a snapshot).
    pub fn iter(&self) -> std::vec::IntoIter<Arc<App>> {
        let apps: Vec<Arc<App>> = self.current.load().by_id.values().cloned().collect();
        apps.into_iter()
    }

    /// Makes `configs` (already validated) the apps: new ones start, changed ones take their
    /// new settings in place, removed ones have their connections closed (4003).
    pub fn reload(&self, configs: &[AppConfig]) -> Reloaded {
        let client = {
            let mut client = self.client.lock();
            if client.is_none() {
                *client = crate::webhooks::client(configs);
            }
            client.clone()
        };
        let old = self.current.load_full();
        let mut next = Registry::default();
        let mut done = Reloaded::default();
        for c in configs {
            let app = match old.by_id.get(&c.id) {
                Some(app) if **app.config() == *c => {
                    done.unchanged += 1;
                    Arc::clone(app)
                }
                Some(app) => {
                    app.reconfigure(c.clone(), client.as_ref());
                    done.changed.push(c.id.clone());
                    Arc::clone(app)
                }
                None => {
                    done.added.push(c.id.clone());
                    Arc::new(App::new(c.clone(), client.as_ref()))
                }
            };
            next.insert(app);
        }
        self.current.store(Arc::new(next));
        for (id, app) in &old.by_id {
            if !configs.iter().any(|c| c.id == *id) {
                app.close_all();
                done.removed.push(id.clone());
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str) -> AppConfig {
        AppConfig {
            id: id.into(),
            key: format!("{id}-key"),
            secret: "s".into(),
            ..AppConfig::default()
        }
    }

    #[test]
    fn a_reload_keeps_unchanged_apps_and_changes_others_in_place() {
        let apps = Apps::new(&[app("a"), app("b"), app("c")]);
        let a = apps.by_id("a").unwrap();
        let b = apps.by_id("b").unwrap();
        let c = apps.by_id("c").unwrap();
        let mut closing_c = c.closing();
        let mut b2 = app("b");
        b2.max_connections = 7;
        b2.key = "b-new-key".into();
        let done = apps.reload(&[app("a"), b2, app("d")]);
        assert_eq!(done.added, vec!["d".to_owned()]);
        assert_eq!(done.removed, vec!["c".to_owned()]);
        assert_eq!(done.changed, vec!["b".to_owned()]);
        assert_eq!(done.unchanged, 1);
        assert!(Arc::ptr_eq(&apps.by_id("a").unwrap(), &a));
        assert!(Arc::ptr_eq(&apps.by_key("b-new-key").unwrap(), &b));
        assert!(apps.by_key("b-key").is_none());
        assert_eq!(b.config().max_connections, 7);
        assert!(apps.by_id("c").is_none());
        assert!(closing_c.has_changed().unwrap() && *closing_c.borrow_and_update());
        let mut off = app("a");
        off.enabled = false;
        let mut closing_a = a.closing();
        apps.reload(&[off]);
        assert!(*closing_a.borrow_and_update());
    }
}
