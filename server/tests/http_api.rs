//! The signed HTTP API.

mod common;

use std::time::Duration;

use chorus_protocol::sign;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn trigger_to_several_channels_with_exclusion_and_info() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("c1").await;
    b.subscribe("c1").await;
    b.subscribe_presence("presence-c2", "5", json!({})).await;

    // socket_id exclusion is Laravel's toOthers().
    let (status, body) = api
        .post(
            "/events",
            json!({"name":"e","channels":["c1","presence-c2"],"data":"{}","socket_id":a.socket_id}),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(b.expect_event("e").await["channel"], "c1");
    assert_eq!(b.expect_event("e").await["channel"], "presence-c2");
    a.expect_silence(Duration::from_millis(300)).await;

    let (status, body) = api
        .post("/events", json!({"name":"e","channels":["presence-c2"],"data":"{}","info":"subscription_count,user_count"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"channels":{"presence-c2":{"subscription_count":1,"user_count":1}}})
    );

    // Non-string data is sent as its JSON text.
    api.post(
        "/events",
        json!({"name":"obj","channel":"c1","data":{"k":[1,2]}}),
    )
    .await;
    assert_eq!(a.expect_event("obj").await["data"], r#"{"k":[1,2]}"#);
    // Escapes survive the round trip.
    let tricky = "quote \" backslash \\ unicode é \u{1F600} newline \n";
    api.trigger("c1", "esc", tricky).await;
    assert_eq!(a.expect_event("esc").await["data"], tricky);
}

#[tokio::test]
async fn batch_events() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut a = server.connect().await;
    a.subscribe("b1").await;
    a.subscribe_presence("presence-b2", "1", json!({})).await;
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({"name":format!("e{i}"),"channel":"b1","data":i.to_string()}))
        .collect();
    let (status, body) = api.post("/batch_events", json!({ "batch": batch })).await;
    assert_eq!((status, body), (200, json!({})));
    for i in 0..10 {
        assert_eq!(a.next_event().await["event"], format!("e{i}"));
    }
    let (status, body) = api
        .post(
            "/batch_events",
            json!({"batch":[{"name":"x","channel":"presence-b2","data":"1","info":"user_count"}]}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"batch":[{"user_count":1}]})));
    a.expect_event("x").await;

    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({"name":"e","channel":"b1","data":"1"}))
        .collect();
    let (status, body) = api.post("/batch_events", json!({ "batch": eleven })).await;
    assert_eq!(status, 400, "{body}");
    // One bad entry rejects the whole batch: nothing is published.
    let (status, _) = api
        .post("/batch_events", json!({"batch":[{"name":"ok","channel":"b1","data":"1"},{"name":"bad","channel":"no spaces","data":"1"}]}))
        .await;
    assert_eq!(status, 400);
    a.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn channel_queries() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("chat.1").await;
    b.subscribe("chat.1").await;
    a.subscribe_presence("presence-room", "1", json!({})).await;
    b.subscribe_presence("presence-room", "1", json!({})).await;
    b.subscribe_presence("presence-other", "2", json!({})).await;

    let (status, body) = api.get("/channels", &[]).await;
    assert_eq!(status, 200);
    let mut names: Vec<&String> = body["channels"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["chat.1", "presence-other", "presence-room"]);

    let (_, body) = api
        .get(
            "/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(
        body,
        json!({"channels":{"presence-room":{"user_count":1},"presence-other":{"user_count":1}}})
    );
    let (status, _) = api.get("/channels", &[("info", "user_count")]).await;
    assert_eq!(status, 400);

    let (_, body) = api
        .get("/channels/chat.1", &[("info", "subscription_count")])
        .await;
    assert_eq!(body, json!({"occupied":true,"subscription_count":2}));
    let (_, body) = api
        .get(
            "/channels/presence-room",
            &[("info", "subscription_count,user_count")],
        )
        .await;
    assert_eq!(
        body,
        json!({"occupied":true,"subscription_count":2,"user_count":1})
    );
    let (_, body) = api.get("/channels/empty", &[]).await;
    assert_eq!(body, json!({"occupied":false}));
    let (status, _) = api.get("/channels/chat.1", &[("info", "user_count")]).await;
    assert_eq!(status, 400);

    let (_, body) = api.get("/channels/presence-room/users", &[]).await;
    assert_eq!(body, json!({"users":[{"id":"1"}]}));
    let (status, _) = api.get("/channels/chat.1/users", &[]).await;
    assert_eq!(status, 400);

    drop(a);
    drop(b);
    let mut left = json!(null);
    for _ in 0..100 {
        left = api.get("/channels", &[]).await.1;
        if left == json!({"channels":{}}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        left,
        json!({"channels":{}}),
        "channels vanish when their last subscriber leaves"
    );
}

#[tokio::test]
async fn terminate_user_connections() {
    let server = TestServer::start().await;
    let mut tab1 = server.connect().await;
    let mut tab2 = server.connect().await;
    let mut other = server.connect().await;
    tab1.signin("u1").await;
    tab2.signin("u1").await;
    other.signin("u2").await;
    let (status, body) = server
        .api()
        .post("/users/u1/terminate_connections", json!({}))
        .await;
    assert_eq!((status, body), (200, json!({})));
    for tab in [&mut tab1, &mut tab2] {
        let (err, code) = error_then_close(&mut tab.ws).await;
        assert_eq!((err["code"].as_u64(), code), (Some(4009), Some(4009)));
    }
    other.send(json!({"event":"pusher:ping","data":{}})).await;
    other.expect_event("pusher:pong").await;
}

#[tokio::test]
async fn authentication_failures_are_401_with_a_json_message() {
    let server = TestServer::start().await;
    let api = server.api();
    let path = "/apps/app-id/events";
    let body = json!({"name":"e","channel":"c","data":"{}"}).to_string();

    let wrong_secret = Api::new(server.addr, APP_ID, KEY, "not-the-secret");
    let (status, err) = wrong_secret.post_raw("/events", &body).await;
    assert_eq!(status, 401);
    assert!(
        err["error"].as_str().unwrap().contains("auth_signature"),
        "{err}"
    );

    let wrong_key = Api::new(server.addr, APP_ID, "other-key", SECRET);
    assert_eq!(wrong_key.post_raw("/events", &body).await.0, 401);

    let stale = api.signed_query("POST", path, &body, &[], now() - 601);
    let (status, err) = api
        .send_post(&format!("{path}?{stale}"), body.clone())
        .await;
    assert_eq!(status, 401);
    assert!(err["error"].as_str().unwrap().contains("600"), "{err}");
    let future = api.signed_query("POST", path, &body, &[], now() + 601);
    assert_eq!(
        api.send_post(&format!("{path}?{future}"), body.clone())
            .await
            .0,
        401
    );
    let fresh = api.signed_query("POST", path, &body, &[], now() - 500);
    assert_eq!(
        api.send_post(&format!("{path}?{fresh}"), body.clone())
            .await
            .0,
        200
    );

    // Body changed after signing.
    let q = api.signed_query("POST", path, &body, &[], now());
    let (status, err) = api
        .send_post(&format!("{path}?{q}"), body.replace("{}", "[]"))
        .await;
    assert_eq!(status, 401);
    assert!(err["error"].as_str().unwrap().contains("body_md5"), "{err}");

    // A body, but no body_md5 among the (correctly signed) parameters.
    let ts = now().to_string();
    let params = [
        ("auth_key", KEY),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
    ];
    let sig = sign::sign_api_request(SECRET, "POST", path, params.iter().copied());
    let q = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&auth_signature={sig}");
    let (status, err) = api.send_post(&format!("{path}?{q}"), body.clone()).await;
    assert_eq!(status, 401, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("body_md5 is missing"),
        "{err}"
    );

    // Tampered query parameter.
    let q = api.signed_query(
        "GET",
        "/apps/app-id/channels",
        "",
        &[("filter_by_prefix", "a")],
        now(),
    );
    let res = api
        .raw_get(&format!(
            "/apps/app-id/channels?{}",
            q.replace("filter_by_prefix=a", "filter_by_prefix=b")
        ))
        .await;
    assert_eq!(res.status().as_u16(), 401);
    // No signature at all.
    let res = api.raw_get("/apps/app-id/channels").await;
    assert_eq!(res.status().as_u16(), 401);
    let v: Value = res.json().await.unwrap();
    assert!(v["error"].is_string());
}

#[tokio::test]
async fn bad_requests() {
    let server = TestServer::start().await;
    let api = server.api();
    let unknown = Api::new(server.addr, "nope", KEY, SECRET);
    let (status, err) = unknown.trigger("c", "e", "{}").await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("nope"));

    let cases = [
        ("{broken".to_owned(), "invalid JSON"),
        (json!({"channel":"c","data":"{}"}).to_string(), "invalid JSON"),
        (json!({"name":"e","data":"{}"}).to_string(), "channel"),
        (json!({"name":"e","channel":"c","channels":["d"],"data":"{}"}).to_string(), "either"),
        (json!({"name":"","channel":"c","data":"{}"}).to_string(), "event name"),
        (json!({"name":"e".repeat(201),"channel":"c","data":"{}"}).to_string(), "event name"),
        (json!({"name":"e","channel":"bad name","data":"{}"}).to_string(), "channel"),
        (json!({"name":"e","channel":"c".repeat(201),"data":"{}"}).to_string(), "channel"),
        (json!({"name":"e","channels":[],"data":"{}"}).to_string(), "channels"),
        (json!({"name":"e","channel":"c","data":"{}","socket_id":"abc"}).to_string(), "socket_id"),
        (json!({"name":"e","channels":(0..101).map(|i| format!("c{i}")).collect::<Vec<_>>(),"data":"{}"}).to_string(), "100"),
    ];
    for (body, msg) in cases {
        let (status, err) = api.post_raw("/events", &body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(msg),
            "{body}: {err}"
        );
    }
    let (status, _) = api.get("/nothing-here", &[]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_trigger_may_target_exactly_100_channels() {
    let server = TestServer::start().await;
    let mut first = server.connect().await;
    let mut last = server.connect().await;
    first.subscribe("c0").await;
    last.subscribe("c99").await;
    let channels: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let (status, body) = server
        .api()
        .post(
            "/events",
            json!({"name":"e","channels":channels,"data":"{}"}),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(first.expect_event("e").await["channel"], "c0");
    assert_eq!(last.expect_event("e").await["channel"], "c99");
}

#[tokio::test]
async fn wrong_methods_and_bad_paths_get_json_errors() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let json_error = |res: reqwest::Response| async move {
        let kind = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            kind.starts_with("application/json"),
            "content-type {kind:?}"
        );
        let v: Value = res.json().await.expect("JSON body");
        v["error"].as_str().expect("error message").to_owned()
    };

    // A known path with the wrong method: 405 with the allowed methods, JSON like every error.
    let wrong_methods = [
        (Method::GET, "/apps/app-id/events", "POST"),
        (Method::GET, "/apps/app-id/batch_events", "POST"),
        (Method::POST, "/apps/app-id/channels", "GET"),
        (Method::DELETE, "/apps/app-id/channels/c", "GET"),
        (
            Method::GET,
            "/apps/app-id/users/u/terminate_connections",
            "POST",
        ),
        (Method::POST, "/up", "GET"),
        (Method::POST, "/app/app-key", "GET"),
    ];
    for (method, path, allowed) in wrong_methods {
        let res = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "{method} {path}");
        let allow = res
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
        let message = json_error(res).await;
        assert!(
            message.contains(method.as_str()),
            "{method} {path}: {message}"
        );
    }

    // Path parameters that are not UTF-8, and a WebSocket path requested without an upgrade.
    let bad = [
        "/apps/app-id/channels/%FF",
        "/apps/app-id/channels/%FF/users",
        "/apps/app-id/channels/%FF/history",
        "/apps/%FF/channels",
        "/app/%FF?protocol=7",
        "/app/app-key?protocol=7",
    ];
    for path in bad {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 400, "{path}");
        assert!(!json_error(res).await.is_empty(), "{path}");
    }
    let res = http
        .post(format!(
            "{base}/apps/app-id/users/%FF/terminate_connections"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    json_error(res).await;
}

#[tokio::test]
async fn payload_limits_are_413() {
    let server = TestServer::start_with(|c| {
        c.apps[0].max_event_payload_kb = 1;
        c.max_request_kb = 64;
    })
    .await;
    let api = server.api();
    let mut a = server.connect().await;
    a.subscribe("c").await;
    assert_eq!(api.trigger("c", "ok", &"x".repeat(1024)).await.0, 200);
    a.expect_event("ok").await;
    let (status, err) = api.trigger("c", "big", &"x".repeat(1025)).await;
    assert_eq!(status, 413, "{err}");
    // Escaped characters count as what they decode to.
    assert_eq!(api.trigger("c", "quotes", &"\"".repeat(1024)).await.0, 200);
    let (status, err) = api.post_raw("/events", &"x".repeat(65 * 1024)).await;
    assert_eq!(status, 413, "{err}");
    a.expect_event("quotes").await;
    a.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn signature_matches_the_pusher_reference_example() {
    // The worked example from Pusher's HTTP API reference (app 3, key 278d425bdf160c739803).
    let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    assert_eq!(
        sign::md5_hex(body.as_bytes()),
        "ec365a775a4cd0599faeb73354201b6f"
    );
    let sig = sign::sign_api_request(
        "7ad3773142a6692b25b8",
        "POST",
        "/apps/3/events",
        [
            ("auth_key", "278d425bdf160c739803"),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
        ],
    );
    assert_eq!(
        sig,
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    );
}
