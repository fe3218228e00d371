//! A large fan-out (1200 subscribers, events published back to back in batches, on a
//! multi-threaded runtime where writer tasks and corks race) reaches every subscriber once and in
//! order.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fan_out_keeps_each_subscribers_order() {
    let server = TestServer::start().await;
    const SUBSCRIBERS: usize = 1200;
    const EVENTS: usize = 60;
    let mut clients = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let mut c = server.connect().await;
        c.subscribe("big").await;
        clients.push(c);
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(EVENTS);
                while seen.len() < EVENTS {
                    let ev = c.expect_event("n").await;
                    seen.push(ev["data"].as_str().unwrap().parse::<usize>().unwrap());
                }
                seen
            })
        })
        .collect();
    let api = server.api();
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(10) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| json!({"name": "n", "channel": "big", "data": i.to_string()}))
            .collect();
        assert_eq!(
            api.post("/batch_events", json!({ "batch": batch })).await.0,
            200
        );
    }
    let expected: Vec<usize> = (0..EVENTS).collect();
    for r in readers {
        assert_eq!(r.await.unwrap(), expected);
    }
}
