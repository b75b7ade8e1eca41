//! Preview → purchase per stream, on both stores: each user's free preview of a stream is
//! counted once, on the day it starts (simultaneous first tokens count one); an order made
//! from the stream's paywall (`stream_id` on `POST /orders`, checked against the catalog) is
//! counted under the stream when paid; the conversion is purchases / previews. A bad
//! `stream_id` is a 422 that writes nothing, and a preview's start costs no extra round trip.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::*;

/// The concert's window: its stream offers a 300-second preview.
const LIVE: i64 = T0 + DAY + 60;

async fn preview(s: &TestServer, user: &str, device: &str) -> u16 {
    let r = s
        .call(
            user,
            "POST",
            "/streams/concert/tokens",
            Some(json!({ "device_id": device })),
        )
        .await;
    if r.status == 201 {
        assert_eq!(r.json()["preview"], true);
    }
    r.status
}

/// Creates an order of the concert from its paywall and pays it; returns the order.
async fn buy_from_paywall(s: &TestServer, user: &str, pay: bool) -> Value {
    let body = json!({"product_id": "concert", "provider": "sandbox", "stream_id": "concert"});
    let r = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json();
    if pay {
        let cb = json!({
            "order_id": order["order_id"],
            "transaction_id": format!("txn-{}", order["order_id"].as_str().unwrap()),
            "status": "paid", "amount": order["amount"], "timestamp": LIVE
        });
        assert_eq!(s.sandbox_callback(&cb).await.status, 200);
    }
    order
}

async fn streams_of(s: &TestServer, from: &str, to: &str) -> Value {
    let r = s
        .admin("GET", &format!("/admin/stats?from={from}&to={to}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn conversion(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(LIVE);
    let s = Arc::new(
        TestServer::start(test_app_with(
            store.clone(),
            clock.clone(),
            &[("STATS_TIME_ZONE", "UTC")],
        ))
        .await,
    );
    // Sixteen simultaneous first tokens of one user: one preview starts.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.spawn(async move { preview(&s, "viewer-0", &format!("d{i}")).await });
    }
    while let Some(st) = tasks.join_next().await {
        assert_eq!(st.unwrap(), 201);
    }
    for u in 1..4 {
        assert_eq!(preview(&s, &format!("viewer-{u}"), "phone").await, 201);
    }
    // A renewal within the preview is no new preview.
    assert_eq!(preview(&s, "viewer-1", "phone").await, 201);
    // Two buy from the paywall, one leaves the order unpaid; a plain order is not the stream's.
    buy_from_paywall(&s, "viewer-0", true).await;
    buy_from_paywall(&s, "viewer-1", true).await;
    buy_from_paywall(&s, "viewer-2", false).await;
    s.buy("viewer-3", "concert", None).await;

    let day = "2027-01-16";
    let r = streams_of(&s, day, day).await;
    let concert = &r["days"][0]["streams"]["concert"];
    assert_eq!(
        (concert["previews"].clone(), concert["purchases"].clone()),
        (json!(4), json!(2))
    );
    assert_eq!(concert["conversion_rate"], 0.5);
    assert_eq!(r["total"]["streams"], r["days"][0]["streams"]);
    // The order keeps the stream; the figures are per stream, not per product.
    assert_eq!(r["days"][0]["orders_paid"], 3);
    // The day before has nothing.
    let before = streams_of(&s, "2027-01-15", "2027-01-15").await;
    assert_eq!(before["days"][0]["streams"], json!({}));

    // Bad attributions are refused and write nothing.
    let orders_before = store
        .user_orders("viewer-9", 100, None)
        .await
        .unwrap()
        .orders
        .len();
    for (body, why) in [
        (
            json!({"product_id": "concert", "provider": "sandbox", "stream_id": "nope"}),
            "unknown stream",
        ),
        (
            json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox", "stream_id": "concert"}),
            "does not unlock",
        ),
        (
            json!({"product_id": "concert", "provider": "sandbox", "stream_id": 7}),
            "not a string",
        ),
    ] {
        let r = s.call("viewer-9", "POST", "/orders", Some(body)).await;
        assert!(r.status == 422 || r.status == 400, "{why}: {}", r.status);
        r.assert_problem(r.status);
    }
    assert_eq!(
        store
            .user_orders("viewer-9", 100, None)
            .await
            .unwrap()
            .orders
            .len(),
        orders_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn previews_and_purchases_per_stream_memory() {
    conversion(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn previews_and_purchases_per_stream_dynamo() {
    conversion(Backend::Dynamo).await;
}

/// A preview's start is counted in the sessions write it already made: two round trips.
#[tokio::test]
async fn a_preview_start_costs_no_extra_round_trip() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    let s = TestServer::start(test_app(counting.clone(), ManualClock::at(LIVE))).await;
    counting.take();
    assert_eq!(preview(&s, "peek", "phone").await, 201);
    let calls = counting.take();
    assert_eq!(calls.get("user_items"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("put_sessions_counted"), Some(&1), "{calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 2, "{calls:?}");
}
