//! Signature checks on attacker-chosen input: channel auth, user sign-in and API signatures answer
//! true or false (and false for anything not signed with the secret), never panic.
#![no_main]

use chorus_protocol::sign;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (a, b, c, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    assert!(!sign::verify_channel("key", "secret", a, b, Some(c), d) || d.starts_with("key:"));
    let _ = sign::verify_channel("key", "secret", a, b, None, c);
    let _ = sign::verify_user("key", "secret", a, b, c);
    let _ = sign::verify_hex("secret", a, b);
    let to_sign = sign::api_string_to_sign(a, b, [(c, d)].into_iter());
    let _ = sign::verify_hex("secret", &to_sign, d);
});
