//! Subscriptions: public, private, encrypted, presence, server-to-user; authorization failures.

mod common;

use std::time::Duration;

use chorus_protocol::sign;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn public_channel_receives_http_events_until_unsubscribed() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut c = server.connect().await;
    let ok = c.subscribe("chat.1").await;
    assert_eq!(ok["channel"], "chat.1");
    let (status, _) = api
        .trigger("chat.1", "App\\Events\\NewMessage", r#"{"text":"hola"}"#)
        .await;
    assert_eq!(status, 200);
    let ev = c.expect_event("App\\Events\\NewMessage").await;
    assert_eq!(ev["channel"], "chat.1");
    assert_eq!(
        ev["data"], r#"{"text":"hola"}"#,
        "data stays a string, as Pusher sends it"
    );

    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"chat.1"}}))
        .await;
    // The unsubscribe is processed before this ping, so nothing published after the pong arrives.
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    c.expect_event("pusher:pong").await;
    api.trigger("chat.1", "late", "{}").await;
    c.expect_silence(Duration::from_millis(300)).await;
}

async fn subscription_error(c: &mut Client, data: Value) -> Value {
    c.send(json!({"event":"pusher:subscribe","data":data}))
        .await;
    c.expect_event("pusher:subscription_error").await
}

#[tokio::test]
async fn private_channels_need_a_valid_signature() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe_private("private-chat_privado.7").await;

    let err = subscription_error(&mut c, json!({"channel":"private-x"})).await;
    assert_eq!(err["channel"], "private-x");
    assert_eq!(err["data"]["status"], 401);
    assert_eq!(err["data"]["type"], "AuthError");

    // Signed for another socket, another channel, with another secret or another key.
    let cases = [
        sign::sign_channel(KEY, SECRET, "1.1", "private-x", None),
        sign::sign_channel(KEY, SECRET, &c.socket_id, "private-y", None),
        sign::sign_channel(KEY, "wrong", &c.socket_id, "private-x", None),
        sign::sign_channel("other-key", SECRET, &c.socket_id, "private-x", None),
        "garbage".to_owned(),
        format!("{KEY}:zz"),
    ];
    for auth in cases {
        let err = subscription_error(&mut c, json!({"channel":"private-x","auth":auth})).await;
        assert_eq!(err["data"]["status"], 401, "{auth}");
    }
    // Refused subscriptions receive nothing.
    server.api().trigger("private-x", "secret", "{}").await;
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn encrypted_channels_authorize_like_private_and_pass_payloads_through() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe_private("private-encrypted-room").await;
    let payload = r#"{"nonce":"bm9uY2U=","ciphertext":"Y2lwaGVy"}"#;
    server
        .api()
        .trigger("private-encrypted-room", "msg", payload)
        .await;
    assert_eq!(c.expect_event("msg").await["data"], payload);
    let err = subscription_error(&mut c, json!({"channel":"private-encrypted-other"})).await;
    assert_eq!(err["data"]["status"], 401);
}

#[tokio::test]
async fn presence_members_are_users_not_connections() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let here = alice
        .subscribe_presence("presence-room.1", "1", json!({"name":"Alice"}))
        .await;
    assert_eq!(here["presence"]["count"], 1);
    assert_eq!(here["presence"]["hash"]["1"]["name"], "Alice");

    let mut bob_tab1 = server.connect().await;
    let here = bob_tab1
        .subscribe_presence("presence-room.1", "2", json!({"name":"Bob"}))
        .await;
    assert_eq!(here["presence"]["count"], 2);
    let mut ids: Vec<&str> = here["presence"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "2"]);
    let added = alice.expect_event("pusher_internal:member_added").await;
    let data: Value = serde_json::from_str(added["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"user_id":"2","user_info":{"name":"Bob"}}));

    // Bob's second tab: no second member_added.
    let mut bob_tab2 = server.connect().await;
    bob_tab2
        .subscribe_presence("presence-room.1", "2", json!({"name":"Bob"}))
        .await;
    alice.expect_silence(Duration::from_millis(300)).await;

    let (_, users) = server
        .api()
        .get("/channels/presence-room.1/users", &[])
        .await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);

    // First tab leaves: Bob is still here. Second tab leaves: member_removed once.
    drop(bob_tab1);
    alice.expect_silence(Duration::from_millis(300)).await;
    bob_tab2
        .send(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room.1"}}))
        .await;
    let removed = alice.expect_event("pusher_internal:member_removed").await;
    assert_eq!(removed["data"], r#"{"user_id":"2"}"#);
    alice.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn presence_accepts_numeric_user_ids_and_rejects_bad_channel_data() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let channel_data = r#"{"user_id":42,"user_info":{"name":"N"}}"#;
    let auth = sign::sign_channel(KEY, SECRET, &c.socket_id, "presence-n", Some(channel_data));
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-n","auth":auth,"channel_data":channel_data}}))
        .await;
    let ok = c
        .expect_event("pusher_internal:subscription_succeeded")
        .await;
    assert!(ok["data"].as_str().unwrap().contains("\"42\""));

    // Missing channel_data, or channel_data not covered by the signature, or without user_id.
    let auth = sign::sign_channel(KEY, SECRET, &c.socket_id, "presence-m", None);
    let err = subscription_error(&mut c, json!({"channel":"presence-m","auth":auth})).await;
    assert_eq!(err["data"]["status"], 400);
    let signed = r#"{"user_id":"1"}"#;
    let auth = sign::sign_channel(KEY, SECRET, &c.socket_id, "presence-m", Some(signed));
    let err = subscription_error(
        &mut c,
        json!({"channel":"presence-m","auth":auth,"channel_data":r#"{"user_id":"2"}"#}),
    )
    .await;
    assert_eq!(err["data"]["status"], 401);
    let no_id = r#"{"user_info":{}}"#;
    let auth = sign::sign_channel(KEY, SECRET, &c.socket_id, "presence-m", Some(no_id));
    let err = subscription_error(
        &mut c,
        json!({"channel":"presence-m","auth":auth,"channel_data":no_id}),
    )
    .await;
    assert_eq!(err["data"]["status"], 400);
}

#[tokio::test]
async fn server_to_user_channel_needs_signin_as_that_user() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let err = subscription_error(&mut c, json!({"channel":"#server-to-user-7"})).await;
    assert_eq!(err["data"]["status"], 403);

    let ok = c.signin("7").await;
    let user_data: Value = serde_json::from_str(ok["data"]["user_data"].as_str().unwrap()).unwrap();
    assert_eq!(user_data["id"], "7");
    c.subscribe("#server-to-user-7").await;
    let err = subscription_error(&mut c, json!({"channel":"#server-to-user-8"})).await;
    assert_eq!(err["data"]["status"], 403);

    server
        .api()
        .trigger("#server-to-user-7", "direct", r#"{"n":1}"#)
        .await;
    assert_eq!(c.expect_event("direct").await["data"], r#"{"n":1}"#);
}

#[tokio::test]
async fn signin_failures_are_reported() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    let user_data = r#"{"id":"7"}"#;
    c.send(json!({"event":"pusher:signin","data":{"auth":sign::sign_user(KEY, "wrong", &c.socket_id, user_data),"user_data":user_data}}))
        .await;
    let ev = c.expect_event("pusher:error").await;
    assert_eq!(ev["data"]["code"], 4009);
    let no_id = r#"{"name":"x"}"#;
    c.send(json!({"event":"pusher:signin","data":{"auth":sign::sign_user(KEY, SECRET, &c.socket_id, no_id),"user_data":no_id}}))
        .await;
    assert_eq!(c.expect_event("pusher:error").await["data"]["code"], 4009);
    // Still connected and not signed in.
    let err = subscription_error(&mut c, json!({"channel":"#server-to-user-7"})).await;
    assert_eq!(err["data"]["status"], 403);

    let server = TestServer::start_with(|c| c.apps[0].enable_user_authentication = false).await;
    let mut c = server.connect().await;
    c.send(json!({"event":"pusher:signin","data":{"auth":sign::sign_user(KEY, SECRET, &c.socket_id, user_data),"user_data":user_data}}))
        .await;
    let ev = c.expect_event("pusher:error").await;
    assert!(
        ev["data"]["message"]
            .as_str()
            .unwrap()
            .contains("not enabled"),
        "{ev}"
    );
}

#[tokio::test]
async fn resubscribing_is_idempotent() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.subscribe("dup").await;
    c.subscribe("dup").await;
    server.api().trigger("dup", "once", "{}").await;
    c.expect_event("once").await;
    c.expect_silence(Duration::from_millis(300)).await;
    let (_, info) = server
        .api()
        .get("/channels/dup", &[("info", "subscription_count")])
        .await;
    assert_eq!(info["subscription_count"], 1);
}

#[tokio::test]
async fn apps_are_isolated_from_each_other() {
    let server = TestServer::start_with(|c| {
        let mut other = chorus_server::AppConfig::development();
        other.id = "other-id".into();
        other.key = "other-key".into();
        other.secret = "other-secret".into();
        c.apps.push(other);
    })
    .await;
    let mut mine = server.connect().await;
    mine.subscribe("shared-name").await;
    let mut theirs = Client::connect(&server.ws_url("other-key", "protocol=7")).await;
    theirs.subscribe("shared-name").await;

    server.api().trigger("shared-name", "for-app-id", "1").await;
    mine.expect_event("for-app-id").await;
    theirs.expect_silence(Duration::from_millis(300)).await;

    let other_api = Api::new(server.addr, "other-id", "other-key", "other-secret");
    other_api.trigger("shared-name", "for-other", "2").await;
    theirs.expect_event("for-other").await;
    mine.expect_silence(Duration::from_millis(300)).await;

    // One app's credentials do not open another app's API.
    let crossed = Api::new(server.addr, "other-id", KEY, SECRET);
    assert_eq!(crossed.trigger("shared-name", "x", "3").await.0, 401);
    let (_, list) = other_api.get("/channels", &[]).await;
    assert_eq!(list, json!({"channels":{"shared-name":{}}}));
}
