//! Lifetime products over HTTP, on both stores: bought once, never expire, a second
//! purchase is refused with 409 before any payment; a retry of the purchase itself is still
//! answered with its order, and a refund makes the product buyable again.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::*;

fn lifetime_catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    c["products"].as_array_mut().unwrap().push(json!({
        "id": "course", "title": "Rust course", "kind": "lifetime", "grants": ["course:rust"],
        "price": {"amount": 1990, "currency": "CNY"}, "coin_price": 50
    }));
    c.to_string()
}

async fn order(s: &TestServer, user: &str, provider: &str, key: Option<&str>) -> Reply {
    let auth = bearer(user);
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    let body = json!({"product_id": "course", "provider": provider});
    s.request("POST", "/orders", &headers, body.to_string())
        .await
}

async fn lifetime_is_bought_once(store: Arc<dyn Store>) {
    let catalog = lifetime_catalog();
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("CATALOG_JSON", &catalog)],
    ))
    .await;
    let user = "student";
    let first = s.buy(user, "course", None).await;
    let status = s
        .call(user, "GET", "/entitlements/course", None)
        .await
        .json();
    assert_eq!(status["can_use"], true);
    assert_eq!(status["expires_at"], Value::Null, "never expires");
    clock.advance(20 * 365 * DAY);
    assert_eq!(
        s.call(user, "GET", "/entitlements/course", None)
            .await
            .json()["can_use"],
        true,
        "twenty years later"
    );
    // A second purchase is refused before payment, by any provider.
    let p = order(&s, user, "sandbox", None).await.assert_problem(409);
    assert!(p["detail"].as_str().unwrap().contains("lifetime"), "{p}");
    order(&s, user, "coins", None).await.assert_problem(409);

    // Bought with coins by another user; a retry of that purchase is its order, not a 409.
    let other = "student-2";
    s.buy(other, "coins-100", None).await;
    let r = order(&s, other, "coins", Some("course-1")).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let paid = r.json();
    let again = order(&s, other, "coins", Some("course-1")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["order_id"], paid["order_id"]);
    order(&s, other, "coins", Some("course-2"))
        .await
        .assert_problem(409);
    let w = s.call(other, "GET", "/wallet", None).await.json();
    assert_eq!(w["balance"], 50, "debited once");

    // Refunded, it may be bought again.
    s.refund(&first, 1990).await;
    assert_eq!(order(&s, user, "sandbox", None).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    lifetime_is_bought_once(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    lifetime_is_bought_once(store).await;
}
