//! A callback racing the sweeper always ends in one consistent state, whichever comes first,
//! on both stores; and `POST /orders/{id}/confirm` queues one re-query per 30 s.

use serde_json::json;
use std::sync::Arc;
use tollgate::app::{App, Queue};
use tollgate::clock::ManualClock;
use tollgate::queue::MemoryQueue;
use tollgate::service::sweep::sweep;
use tollgate_tests::*;

async fn server(backend: Backend) -> Option<(TestServer, ManualClock, Arc<MemoryQueue>)> {
    let store = store_for(backend).await?;
    let clock = ManualClock::at(T0);
    let mut app = App::new(test_config(&[]), store, Arc::new(clock.clone())).unwrap();
    let queue = Arc::new(MemoryQueue::new(Arc::new(clock.clone())));
    app.queue = Some(Queue::Memory(queue.clone()));
    Some((TestServer::start(Arc::new(app)).await, clock, queue))
}

async fn new_order(s: &TestServer, user: &str) -> serde_json::Value {
    let r = s
        .call(
            user,
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"})),
        )
        .await;
    assert_eq!(r.status, 201);
    r.json()
}

async fn pay(s: &TestServer, order: &serde_json::Value, now: i64) -> u16 {
    s.sandbox_callback(&json!({
        "order_id": order["order_id"], "transaction_id": format!("t-{}", order["order_id"].as_str().unwrap()),
        "status": "paid", "amount": {"amount": 900, "currency": "CNY"}, "timestamp": now
    }))
    .await
    .status
}

async fn state(s: &TestServer, user: &str, order: &serde_json::Value) -> serde_json::Value {
    s.call(
        user,
        "GET",
        &format!("/orders/{}", order["order_id"].as_str().unwrap()),
        None,
    )
    .await
    .json()
}

async fn race(backend: Backend) {
    let Some((s, clock, _)) = server(backend).await else {
        return;
    };
    // Callback first, then the sweeper: the paid order is not in the due index any more.
    let a = new_order(&s, "race-a").await;
    clock.set(T0 + 900);
    assert_eq!(pay(&s, &a, T0 + 900).await, 200);
    let r = sweep(&s.app, i64::MAX).await;
    assert_eq!(r.expired, 0, "{r:?}");
    assert_eq!(state(&s, "race-a", &a).await["state"], "PAID");
    assert_eq!(state(&s, "race-a", &a).await["late"], false);
    // Sweeper first, then the callback: the money is honoured as a late payment.
    clock.set(T0);
    let b = new_order(&s, "race-b").await;
    clock.set(T0 + 900);
    assert_eq!(sweep(&s.app, i64::MAX).await.expired, 1);
    assert_eq!(state(&s, "race-b", &b).await["state"], "EXPIRED");
    assert_eq!(pay(&s, &b, T0 + 900).await, 200);
    let after = state(&s, "race-b", &b).await;
    assert_eq!(
        (after["state"].clone(), after["late"].clone()),
        (json!("PAID"), json!(true))
    );
    // Truly concurrent: 16 orders, each paid while a sweep runs.
    clock.set(T0);
    let mut orders = Vec::new();
    for _ in 0..16 {
        orders.push(new_order(&s, "race-c").await);
    }
    clock.set(T0 + 900);
    let s = Arc::new(s);
    let sweeper = {
        let s = s.clone();
        tokio::spawn(async move { sweep(&s.app, i64::MAX).await })
    };
    let mut payers = Vec::new();
    for o in orders.clone() {
        let s = s.clone();
        payers.push(tokio::spawn(async move { pay(&s, &o, T0 + 900).await }));
    }
    for p in payers {
        assert_eq!(p.await.unwrap(), 200);
    }
    sweeper.await.unwrap();
    for o in &orders {
        assert_eq!(
            state(&s, "race-c", o).await["state"],
            "PAID",
            "every paid order ends PAID"
        );
    }
    let ent = s.call("race-c", "GET", "/entitlements", None).await.json();
    assert_eq!(
        ent["grants"].as_array().unwrap().len(),
        16,
        "one grant per order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callback_and_sweeper_race_memory() {
    race(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callback_and_sweeper_race_dynamo() {
    race(Backend::Dynamo).await;
}

#[tokio::test]
async fn confirm_queues_one_requery_per_interval() {
    let (s, clock, queue) = server(Backend::Memory).await.unwrap();
    let o = new_order(&s, "tapper").await;
    let path = format!("/orders/{}/confirm", o["order_id"].as_str().unwrap());
    for _ in 0..5 {
        let r = s.call("tapper", "POST", &path, None).await;
        assert_eq!(r.status, 202);
        assert_eq!(r.json()["order_id"], o["order_id"]);
    }
    assert_eq!(queue.len(), 1, "five taps, one re-query");
    s.call("someone-else", "POST", &path, None)
        .await
        .assert_problem(404);
    clock.advance(31);
    assert_eq!(s.call("tapper", "POST", &path, None).await.status, 202);
    assert_eq!(queue.len(), 2);
    // The jobs run (sandbox has no query API, and the order is not due): nothing changes.
    tollgate::local::run_local_jobs(&s.app).await;
    assert!(queue.is_empty());
    assert!(queue.dead_letters().is_empty());
    assert_eq!(state(&s, "tapper", &o).await["state"], "PENDING");
    // A paid order is returned as is and queues nothing.
    assert_eq!(pay(&s, &o, T0 + 31).await, 200);
    clock.advance(60);
    assert_eq!(s.call("tapper", "POST", &path, None).await.status, 202);
    assert!(queue.is_empty());
}
