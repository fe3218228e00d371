//! A client's WebSocket text frame (and presence `channel_data`): parsed into a message or a typed
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        chorus_server::fuzzing::client_frame(text);
        chorus_server::fuzzing::presence_channel_data(text);
    }
});
