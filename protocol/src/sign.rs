//! Signatures: channel authorization, user sign-in and HTTP API requests, all HMAC-SHA256 in hex.
//!
//! Verification compares in constant time so a signature cannot be guessed byte by byte.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Hex HMAC-SHA256 of `message` under `secret`.
pub fn hmac_sha256_hex(secret: &str, message: &str) -> String {
    hex::encode(hmac_sha256(secret, message))
}

fn hmac_sha256(secret: &str, message: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `signature_hex` is the HMAC of `message`, compared in constant time.
pub fn verify_hex(secret: &str, message: &str, signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    let expected = hmac_sha256(secret, message);
    given.len() == expected.len() && bool::from(expected.ct_eq(&given))
}

fn channel_message(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// `auth` value for subscribing `socket_id` to `channel` (`key:hexsig`), as a backend computes it.
pub fn sign_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    format!(
        "{key}:{}",
        hmac_sha256_hex(secret, &channel_message(socket_id, channel, channel_data))
    )
}

/// Checks a subscription's `auth` value (`key:hexsig`).
pub fn verify_channel(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> bool {
    match auth.split_once(':') {
        Some((k, sig)) if k == key => verify_hex(
            secret,
            &channel_message(socket_id, channel, channel_data),
            sig,
        ),
        _ => false,
    }
}

fn user_message(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// `auth` value for `pusher:signin`, as a backend computes it.
pub fn sign_user(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    format!(
        "{key}:{}",
        hmac_sha256_hex(secret, &user_message(socket_id, user_data))
    )
}

/// Checks a `pusher:signin` `auth` value.
pub fn verify_user(key: &str, secret: &str, socket_id: &str, user_data: &str, auth: &str) -> bool {
    match auth.split_once(':') {
        Some((k, sig)) if k == key => verify_hex(secret, &user_message(socket_id, user_data), sig),
        _ => false,
    }
}

/// Hex MD5 of an HTTP API request body (`body_md5`).
pub fn md5_hex(body: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(body))
}

/// The string an HTTP API request signs: `METHOD\nPATH\nk=v&…`, keys lowercased and sorted,
/// `auth_signature` left out. Values are used as received (not re-encoded), like the Pusher SDKs do.
pub fn api_string_to_sign<'a>(
    method: &str,
    path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .into_iter()
        .filter(|(k, _)| *k != "auth_signature")
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!("{}\n{path}\n{query}", method.to_ascii_uppercase())
}

/// Signs an HTTP API request (what the `pusher` server SDKs do before sending).
pub fn sign_api_request<'a>(
    secret: &str,
    method: &str,
    path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    hmac_sha256_hex(secret, &api_string_to_sign(method, path, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_auth_matches_pusher_docs_example() {
        // Example from Pusher's authorization docs: key 278d425bdf160c739803, secret 7ad3773142a6692b25b8.
        let auth = sign_channel(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
            None,
        );
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert!(verify_channel(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
            None,
            &auth
        ));
        assert!(!verify_channel(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1235",
            "private-foobar",
            None,
            &auth
        ));
        assert!(!verify_channel(
            "other",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
            None,
            &auth
        ));
        assert!(!verify_channel(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
            None,
            "nonsense"
        ));
    }

    #[test]
    fn api_signature_sorts_lowercased_keys() {
        let s = api_string_to_sign(
            "post",
            "/apps/3/events",
            [("b", "2"), ("A", "1"), ("auth_signature", "x")],
        );
        assert_eq!(s, "POST\n/apps/3/events\na=1&b=2");
    }

    #[test]
    fn user_auth_round_trip() {
        let auth = sign_user("k", "s", "1.2", "{\"id\":\"7\"}");
        assert!(verify_user("k", "s", "1.2", "{\"id\":\"7\"}", &auth));
        assert!(!verify_user("k", "s", "1.2", "{\"id\":\"8\"}", &auth));
    }

    #[test]
    fn md5_of_empty() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
