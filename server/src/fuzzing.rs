//! What the fuzz targets in `fuzz/` drive (built only with the `fuzzing` feature): every parser
//! of untrusted input, each of which must answer any bytes with a value or a typed error.

use std::sync::OnceLock;

use crate::app::App;
use crate::config::{AppConfig, Config};
use crate::hub::presence::PresenceMember;

/// A client's WebSocket text frame, parsed as the session does.
pub fn client_frame(text: &str) {
    let _ = crate::ws::ClientMessage::parse(text);
}

/// A `POST /events` body, parsed and validated as the HTTP API does.
pub fn api_event_body(body: &[u8]) {
    static APP: OnceLock<App> = OnceLock::new();
    let app = APP.get_or_init(|| App::new(AppConfig::development(), None));
    let _ = crate::http::check_event_body(app, body);
}

/// A presence subscription's signed `channel_data`.
pub fn presence_channel_data(text: &str) {
    let _ = PresenceMember::parse(text);
}

/// A configuration file's text, parsed and validated.
pub fn config_toml(text: &str) {
    if let Ok(config) = toml::from_str::<Config>(text) {
        let _ = config.validate();
    }
}
