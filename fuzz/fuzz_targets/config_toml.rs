//! A configuration file: loaded and validated or refused with a config error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        chorus_server::fuzzing::config_toml(text);
    }
});
