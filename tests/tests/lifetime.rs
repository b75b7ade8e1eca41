//! Lifetime products over HTTP, on both stores: bought once, never expire, a second
//! purchase is refused with 409 before any payment; a retry of the purchase itself is still
//! answered with its order, and a refund makes the product buyable again. Purchases racing
//! each other create one order; a cancelled one frees the product at once. Through the App
//! Store (a non-consumable) and Google Play (a one-time product, acknowledged and never
//! consumed) the grant never expires either.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::*;

fn lifetime_catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    c["products"].as_array_mut().unwrap().push(json!({
        "id": "course", "title": "Rust course", "kind": "lifetime", "grants": ["course:rust"],
        "price": {"amount": 1990, "currency": "CNY"}, "coin_price": 50,
        "store_ids": {"apple": "com.example.course", "google": "course_rust"}
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

/// `n` purchases of the course at once by `user` through `provider`, each under its own
/// Idempotency-Key: the answers' statuses.
async fn racing_orders(
    s: &Arc<TestServer>,
    user: &'static str,
    provider: &'static str,
    n: usize,
) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                order(&s, user, provider, Some(&format!("{provider}-{i}"))).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

fn created_one(replies: &[Reply]) -> Value {
    let mut created = Vec::new();
    for r in replies {
        match r.status {
            201 => created.push(r.json()),
            409 => {
                let p = r.assert_problem(409);
                assert!(p["detail"].as_str().unwrap().contains("course"), "{p}");
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert_eq!(
        created.len(),
        1,
        "exactly one purchase created: {created:?}"
    );
    created.pop().unwrap()
}

/// 32 purchases of one lifetime product at once, by money and by coins: one is created.
async fn one_purchase_under_a_race(store: Arc<dyn Store>) {
    let catalog = lifetime_catalog();
    let clock = ManualClock::at(T0);
    let s = Arc::new(
        TestServer::start(test_app_with(
            store,
            clock.clone(),
            &[("CATALOG_JSON", &catalog)],
        ))
        .await,
    );
    let user = "racer";
    let first = created_one(&racing_orders(&s, user, "sandbox", 32).await);
    let id = first["order_id"].as_str().unwrap().to_owned();
    // The one in progress refuses another provider too; cancelled, it frees the product.
    let p = order(&s, user, "coins", None).await.assert_problem(409);
    assert!(p["detail"].as_str().unwrap().contains(&id), "{p}");
    let r = s
        .call(user, "POST", &format!("/orders/{id}/cancel"), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let second = order(&s, user, "sandbox", Some("after-cancel")).await;
    assert_eq!(
        second.status,
        201,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    // An order left unpaid frees it when it expires.
    clock.advance(3 * 3600);
    let third = order(&s, user, "sandbox", Some("after-expiry")).await;
    assert_eq!(
        third.status,
        201,
        "{}",
        String::from_utf8_lossy(&third.body)
    );

    // With coins: a balance for two courses pays one, once.
    let payer = "coin-racer";
    s.buy(payer, "coins-100", None).await;
    let paid = created_one(&racing_orders(&s, payer, "coins", 32).await);
    assert_eq!(paid["state"], "PAID");
    let w = s.call(payer, "GET", "/wallet", None).await.json();
    assert_eq!(w["balance"], 50, "debited once: {w}");
    clock.advance(3600);
    order(&s, payer, "coins", Some("later"))
        .await
        .assert_problem(409);
    assert_eq!(
        s.call(payer, "GET", "/wallet", None).await.json()["balance"],
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_purchase_under_a_race_memory() {
    one_purchase_under_a_race(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_purchase_under_a_race_dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    one_purchase_under_a_race(store).await;
}

/// The course pre-ordered by `user` through `provider`.
async fn pre_order(s: &TestServer, user: &str, provider: &str) -> Reply {
    let body = json!({"product_id": "course", "provider": provider});
    s.call(user, "POST", "/orders", Some(body)).await
}

/// Twenty years on, `user` still owns the course, and another pre-order through `provider`
/// is refused.
async fn owned_for_ever(s: &TestServer, clock: &ManualClock, user: &str, provider: &str) {
    clock.advance(20 * 365 * DAY);
    let status = s
        .call(user, "GET", "/entitlements/course", None)
        .await
        .json();
    assert_eq!(status["can_use"], true, "{status}");
    assert_eq!(status["expires_at"], Value::Null, "never expires");
    pre_order(s, user, provider).await.assert_problem(409);
}

/// A non-consumable bought through the App Store: granted for ever, sold once, and a
/// restore (the same signed transaction again) grants nothing more.
async fn apple_non_consumable(store: Arc<dyn Store>) {
    use tollgate_tests::apple::*;
    let clock = ManualClock::at(T0);
    let catalog = lifetime_catalog();
    let mut vars = apple_vars("Production", "root.pem");
    vars.push(("CATALOG_JSON", catalog));
    let s = TestServer::start(apple_app_with(store, clock.clone(), &vars)).await;
    let user = "apple-student";
    let r = pre_order(&s, user, "apple").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    assert_eq!(o["payment"]["store_product_id"], "com.example.course");
    let mut t = transaction("3000", "3000", "com.example.course", T0 - 5, None, T0);
    t["type"] = json!("Non-Consumable");
    t["appAccountToken"] = o["payment"]["app_account_token"].clone();
    let jws = sign(&t);
    let buy = |jws: String| {
        let s = &s;
        async move {
            s.call(
                user,
                "POST",
                "/purchases/apple",
                Some(json!({"signed_transaction": jws})),
            )
            .await
            .json()
        }
    };
    assert_eq!(buy(jws.clone()).await["status"], "granted");
    assert_eq!(buy(jws).await["status"], "duplicate", "a restore");
    owned_for_ever(&s, &clock, user, "apple").await;
    let grants = s.call(user, "GET", "/entitlements", None).await.json();
    let course: Vec<&Value> = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["scope"] == "course:rust")
        .collect();
    assert_eq!(course.len(), 1, "one grant: {grants}");
}

#[tokio::test]
async fn apple_non_consumable_memory() {
    apple_non_consumable(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test]
async fn apple_non_consumable_dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    apple_non_consumable(store).await;
}

/// A one-time product bought through Google Play: granted for ever, acknowledged and never
/// consumed (so Play itself refuses to sell it twice), and refused before a second order.
async fn google_one_time(store: Arc<dyn Store>) {
    use tollgate::app::{App, Queue};
    use tollgate::queue::memory::MemoryQueue;
    use tollgate_tests::fake_google::*;
    let g = FakeGoogle::start().await;
    let clock = ManualClock::at(T0);
    let catalog = lifetime_catalog();
    let mut vars = g.vars();
    vars.push(("CATALOG_JSON", catalog));
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut app = App::new(test_config(&pairs), store, Arc::new(clock.clone())).unwrap();
    app.queue = Some(Queue::Memory(Arc::new(MemoryQueue::new(Arc::new(
        clock.clone(),
    )))));
    let s = TestServer::start(Arc::new(app)).await;
    let user = "play-student";
    let r = pre_order(&s, user, "google").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    let account = o["payment"]["obfuscated_account_id"].as_str().unwrap();
    g.set_product(
        "course_rust",
        "course-tok",
        product_purchase(0, Some(account)),
    );
    let r = s
        .call(
            user,
            "POST",
            "/purchases/google",
            Some(json!({"purchase_token": "course-tok", "product_id": "course_rust", "order_id": o["order_id"]})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    tollgate::local::run_local_jobs(&s.app).await;
    tollgate::local::run_local_jobs(&s.app).await;
    assert_eq!(
        s.call(
            user,
            "GET",
            &format!("/orders/{}", o["order_id"].as_str().unwrap()),
            None
        )
        .await
        .json()["state"],
        "PAID"
    );
    let (acked, consumed) = g.with(|p| (p.acked.clone(), p.consumed.clone()));
    assert!(acked.iter().any(|t| t.contains("course-tok")), "{acked:?}");
    assert!(
        consumed.is_empty(),
        "a lifetime product is never consumed: {consumed:?}"
    );
    owned_for_ever(&s, &clock, user, "google").await;
}

#[tokio::test]
async fn google_one_time_memory() {
    google_one_time(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test]
async fn google_one_time_dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    google_one_time(store).await;
}
