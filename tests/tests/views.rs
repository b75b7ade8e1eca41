//! View-count limits (`max_views`) over HTTP, on both stores: a new playback session on a
//! stream takes one view of the grant that opens it, a renewal takes none, and the view
//! after the last is a 402 naming what unlocks more, however many sessions race.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::*;

/// The test catalog plus a replay watchable three times, for its stream.
fn views_catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    // An event whose show is over and whose replay runs a week: purchases do not stack.
    c["products"].as_array_mut().unwrap().push(json!({
        "id": "final-replay", "title": "Final (replay)", "kind": "event",
        "grants": ["replay:final"], "max_views": 3,
        "price": {"amount": 300, "currency": "CNY"},
        "window": {"starts_at": tollgate::domain::ids::rfc3339(T0 - DAY),
                   "ends_at": tollgate::domain::ids::rfc3339(T0 - DAY + 7200),
                   "replay_until": tollgate::domain::ids::rfc3339(T0 + 7 * DAY)}
    }));
    c["streams"].as_array_mut().unwrap().push(json!({
        "id": "final-replay", "requires_any": ["replay:final"],
        "origin": "https://live.example.com/vod/final.m3u8"
    }));
    c.to_string()
}

async fn server(store: Arc<dyn Store>) -> TestServer {
    let catalog = views_catalog();
    TestServer::start(test_app_with(
        store,
        ManualClock::at(T0),
        &[("CATALOG_JSON", &catalog), ("MAX_DEVICES", "64")],
    ))
    .await
}

async fn play(s: &TestServer, user: &str, device: &str) -> Reply {
    s.call(
        user,
        "POST",
        "/streams/final-replay/tokens",
        Some(json!({"device_id": device})),
    )
    .await
}

/// 32 new sessions at once against `max_views: 3`: exactly three are served.
async fn three_views_under_a_race(store: Arc<dyn Store>) {
    let s = Arc::new(server(store).await);
    let user = "replay-viewer";
    play(&s, user, "before-buying").await.assert_problem(402);
    s.buy(user, "final-replay", None).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { play(&s, user, &format!("device-{i}")).await })
        })
        .collect();
    let mut served = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        match r.status {
            201 => served.push(format!("device-{i}")),
            402 => {
                let p = r.assert_problem(402);
                assert_eq!(p["type"], "https://tollgate.dev/problems/views-used");
                assert_eq!(p["products"][0]["product_id"], "final-replay");
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert_eq!(served.len(), 3, "{served:?}");
    // Renewing a served session is not a new view; a fourth device still gets none.
    assert_eq!(play(&s, user, &served[0]).await.status, 201);
    play(&s, user, "late-device").await.assert_problem(402);
    // Buying again opens three more.
    s.buy(user, "final-replay", None).await;
    for i in 0..3 {
        assert_eq!(play(&s, user, &format!("second-{i}")).await.status, 201);
    }
    play(&s, user, "second-3").await.assert_problem(402);
}

/// A refunded replay opens nothing, counted or not.
async fn refunds_end_counted_access(store: Arc<dyn Store>) {
    let s = server(store).await;
    let user = "refunded-replay";
    let order = s.buy(user, "final-replay", None).await;
    assert_eq!(play(&s, user, "tv").await.status, 201);
    s.refund(&order, 300).await;
    let p = play(&s, user, "phone").await.assert_problem(402);
    assert_eq!(p["type"], "https://tollgate.dev/problems/payment-required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    three_views_under_a_race(store_for(Backend::Memory).await.unwrap()).await;
    refunds_end_counted_access(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    three_views_under_a_race(store.clone()).await;
    refunds_end_counted_access(store).await;
}
