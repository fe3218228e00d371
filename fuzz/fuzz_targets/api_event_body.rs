//! An HTTP API `POST /events` body: validated or refused with an API error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    chorus_server::fuzzing::api_event_body(data);
});
