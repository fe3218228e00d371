//! The admin listener's dashboard: the page, its stats following real connections, the debug
//! console streaming delivered events with a channel filter, the token, and shutdown with a
//! console open.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Reads server-sent events from `res` until one `data:` line arrives; returns it as JSON.
async fn next_sse(res: &mut reqwest::Response, buf: &mut String) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str(data).expect("JSON data");
            }
            continue;
        }
        let chunk = tokio::time::timeout(WAIT, res.chunk())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_dashboard_shows_live_figures_and_streams_events() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let admin = format!("http://{}", server.admin);
    for path in ["/", "/dashboard"] {
        let page = http.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().contains("Chorus dashboard"));
    }
    let js = http
        .get(format!("{admin}/dashboard/uPlot.iife.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript");

    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let mut c = server.connect().await;
    a.subscribe("busy").await;
    b.subscribe("busy").await;
    c.subscribe("quiet").await;
    let stats: Value = http
        .get(format!("{admin}/dashboard/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = &stats["apps"][0];
    assert_eq!(app["id"], "app-id");
    assert_eq!(app["connections"], 3);
    assert_eq!(app["channels"], 2);
    assert_eq!(app["subscriptions"], 3);
    assert_eq!(app["busiest"][0]["channel"], "busy");
    assert_eq!(app["busiest"][0]["subscriptions"], 2);
    assert_eq!(stats["node"]["health"]["status"], "ok");

    // The console, filtered to channels containing "bus".
    let mut console = http
        .get(format!("{admin}/dashboard/events?app=app-id&channel=bus"))
        .send()
        .await
        .unwrap();
    assert_eq!(console.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    // The tap is on once the console's request is in; a first event may race it, so retry.
    let api = server.api();
    let mut seen = None;
    for i in 0..20 {
        api.trigger("quiet", "skip", "{}").await;
        api.trigger("busy", "shown", &format!("{{\"i\":{i}}}"))
            .await;
        let got =
            tokio::time::timeout(Duration::from_millis(300), next_sse(&mut console, &mut buf))
                .await;
        if let Ok(ev) = got {
            seen = Some(ev);
            break;
        }
    }
    let ev = seen.expect("the console streamed an event");
    assert_eq!(ev["channel"], "busy", "{ev}");
    assert_eq!(ev["delivered"], 2, "{ev}");
    assert!(ev["frame"].as_str().unwrap().contains("\"shown\""), "{ev}");
    a.expect_event("shown").await;
    c.expect_event("skip").await;

    let unknown = http
        .get(format!("{admin}/dashboard/events?app=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // Shutdown ends the console's stream instead of waiting on it.
    let took = server.shutdown().await;
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[tokio::test]
async fn with_a_token_the_dashboard_takes_it_in_the_query() {
    let server = TestServer::start_with(|c| c.admin_token = Some("dash-token".into())).await;
    let http = reqwest::Client::new();
    let admin = format!("http://{}", server.admin);
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(format!("{admin}/dashboard")).await, 401);
    assert_eq!(status(format!("{admin}/dashboard?token=wrong")).await, 401);
    assert_eq!(
        status(format!("{admin}/dashboard?token=dash-token")).await,
        200
    );
    assert_eq!(
        status(format!("{admin}/dashboard/stats?token=dash-token")).await,
        200
    );
}
