//! Google Play against a fake Google on loopback (OAuth token endpoint, JWKS, Play Developer
//! API): purchases verified in the background, renewals extend, voids revoke at once, grace
//! keeps access and account hold does not, duplicate and unauthenticated pushes change
//! nothing, acknowledge retried until done, exactly one grant under 64 concurrent
//! duplicates on both stores.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::{PurchaseState, PurchaseStatus};
use tollgate::store::Store;
use tollgate_tests::fake_google::*;
use tollgate_tests::*;

async fn setup(store: Arc<dyn Store>) -> (FakeGoogle, TestServer, ManualClock) {
    let g = FakeGoogle::start().await;
    let clock = ManualClock::at(T0);
    let s = TestServer::start(g.app(store, clock.clone())).await;
    (g, s, clock)
}

async fn run_jobs(s: &TestServer) {
    tollgate::local::run_local_jobs(&s.app).await;
}

async fn google_order(s: &TestServer, user: &str, product: &str) -> (String, String) {
    let r = s
        .call(
            user,
            "POST",
            "/orders",
            Some(json!({"product_id": product, "provider": "google"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    let account = o["payment"]["obfuscated_account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!account.contains(user) && account.len() >= 32, "{account}");
    assert_eq!(o["payment"]["order_id"], o["order_id"]);
    (o["order_id"].as_str().unwrap().to_owned(), account)
}

async fn submit(s: &TestServer, user: &str, token: &str, product: &str) -> u16 {
    let r = s
        .call(
            user,
            "POST",
            "/purchases/google",
            Some(json!({"purchase_token": token, "product_id": product})),
        )
        .await;
    r.status
}

async fn push(s: &TestServer, auth: Option<String>, id: &str, n: &Value) -> tollgate_tests::Reply {
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(a) = auth {
        headers.push(("authorization", format!("Bearer {a}")));
    }
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.request("POST", "/notifications/google", &h, push_body(id, n))
        .await
}

fn good_token() -> Option<String> {
    Some(push_token("push_key.pem", AUDIENCE, PUSH_ACCOUNT))
}

fn sub_note(token: &str, kind: i64) -> Value {
    json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": (T0 * 1000).to_string(),
           "subscriptionNotification": {"version": "1.0", "notificationType": kind,
                                        "purchaseToken": token, "subscriptionId": "vip_monthly"}})
}

async fn vip(s: &TestServer, user: &str) -> Option<String> {
    let e = s.call(user, "GET", "/entitlements", None).await.json();
    e["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["scope"] == "channel:vip")
        .map(|g| g["valid_until"].as_str().unwrap().to_owned())
}

fn at(t: i64) -> Option<String> {
    Some(tollgate::domain::ids::rfc3339(t))
}

#[tokio::test]
async fn subscription_verified_renewed_grace_hold_and_acknowledged_after_failures() {
    let (g, s, clock) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let (order_id, account) = google_order(&s, "ann", "vip").await;
    g.set_subscription(
        "sub-tok-1",
        subscription(
            "SUBSCRIPTION_STATE_ACTIVE",
            T0 + 30 * DAY,
            Some(&account),
            "ACKNOWLEDGEMENT_STATE_PENDING",
        ),
    );
    g.with(|p| p.fail_acks = 2);
    let r = s
        .call("ann", "POST", "/purchases/google", Some(json!({"purchase_token": "sub-tok-1", "product_id": "vip_monthly", "order_id": order_id})))
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(vip(&s, "ann").await, None, "nothing before verification");
    run_jobs(&s).await;
    assert_eq!(vip(&s, "ann").await, at(T0 + 30 * DAY));
    assert_eq!(
        s.call("ann", "GET", &format!("/orders/{order_id}"), None)
            .await
            .json()["state"],
        "PAID"
    );
    // The acknowledge job failed twice and is retried with backoff until Google takes it.
    for _ in 0..4 {
        clock.advance(1_000);
        run_jobs(&s).await;
    }
    g.with(|p| {
        assert_eq!(p.ack_attempts, 3);
        assert_eq!(p.acked, vec!["sub-tok-1".to_string()]);
        assert_eq!(p.token_requests, 1, "access token cached");
    });

    // Renewal: RTDN says something changed; the state comes from the API.
    g.set_subscription(
        "sub-tok-1",
        subscription(
            "SUBSCRIPTION_STATE_ACTIVE",
            T0 + 60 * DAY,
            Some(&account),
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        ),
    );
    let r = push(&s, good_token(), "m-1", &sub_note("sub-tok-1", 2)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        push(&s, good_token(), "m-1", &sub_note("sub-tok-1", 2))
            .await
            .json()["result"],
        "duplicate"
    );
    clock.advance(5);
    run_jobs(&s).await;
    assert_eq!(vip(&s, "ann").await, at(T0 + 60 * DAY));

    // Grace period: Google keeps access while it retries the payment.
    clock.set(T0 + 60 * DAY + 10);
    g.set_subscription(
        "sub-tok-1",
        subscription(
            "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
            T0 + 63 * DAY,
            Some(&account),
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        ),
    );
    push(&s, good_token(), "m-2", &sub_note("sub-tok-1", 6)).await;
    run_jobs(&s).await;
    assert_eq!(
        s.call("ann", "GET", "/entitlements/vip", None).await.json()["can_use"],
        true
    );
    // Account hold: no access.
    clock.set(T0 + 63 * DAY + 10);
    g.set_subscription(
        "sub-tok-1",
        subscription(
            "SUBSCRIPTION_STATE_ON_HOLD",
            T0 + 63 * DAY,
            Some(&account),
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        ),
    );
    push(&s, good_token(), "m-3", &sub_note("sub-tok-1", 5)).await;
    run_jobs(&s).await;
    assert_eq!(
        s.call("ann", "GET", "/entitlements/vip", None).await.json()["can_use"],
        false
    );
}

#[tokio::test]
async fn voided_purchases_revoke_at_once_and_linked_tokens_retire() {
    let (g, s, clock) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let (_, account) = google_order(&s, "bo", "vip").await;
    g.set_subscription(
        "old-tok",
        subscription(
            "SUBSCRIPTION_STATE_ACTIVE",
            T0 + 30 * DAY,
            Some(&account),
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        ),
    );
    assert_eq!(submit(&s, "bo", "old-tok", "vip_monthly").await, 202);
    run_jobs(&s).await;
    assert_eq!(vip(&s, "bo").await, at(T0 + 30 * DAY));
    // Upgrade/re-signup: the new token links the old one, which stops granting.
    let mut new = subscription(
        "SUBSCRIPTION_STATE_ACTIVE",
        T0 + 40 * DAY,
        Some(&account),
        "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
    );
    new["linkedPurchaseToken"] = json!("old-tok");
    g.set_subscription("new-tok", new);
    clock.advance(10);
    assert_eq!(submit(&s, "bo", "new-tok", "vip_monthly").await, 202);
    run_jobs(&s).await;
    let e = s.call("bo", "GET", "/entitlements", None).await.json();
    let vips: Vec<_> = e["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["scope"] == "channel:vip")
        .collect();
    assert_eq!(vips.len(), 1, "{e}");
    assert_eq!(vip(&s, "bo").await, at(T0 + 40 * DAY));
    // Voided (refund): revoked by the push itself, before any job runs.
    clock.advance(10);
    let void = json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
                      "voidedPurchaseNotification": {"purchaseToken": "new-tok", "orderId": "GPA.1", "productType": 1, "refundType": 1}});
    assert_eq!(
        push(&s, good_token(), "m-void", &void).await.json()["result"],
        "voided"
    );
    assert_eq!(vip(&s, "bo").await, None);
    // Test notifications are acknowledged.
    let test = json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1", "testNotification": {"version": "1.0"}});
    assert_eq!(
        push(&s, good_token(), "m-test", &test).await.json()["result"],
        "test"
    );
}

#[tokio::test]
async fn pushes_need_googles_oidc_token() {
    let (_g, s, _) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let n = sub_note("tok", 2);
    for auth in [
        None,
        Some("not-a-jwt".to_string()),
        Some(push_token("stranger_key.pem", AUDIENCE, PUSH_ACCOUNT)),
        Some(push_token(
            "push_key.pem",
            "https://elsewhere.example",
            PUSH_ACCOUNT,
        )),
        Some(push_token("push_key.pem", AUDIENCE, "someone@evil.example")),
    ] {
        push(&s, auth, "m-x", &n).await.assert_problem(401);
    }
    // Another package's notification is refused too.
    let mut other = n.clone();
    other["packageName"] = json!("com.example.other");
    push(&s, good_token(), "m-y", &other)
        .await
        .assert_problem(400);
    assert_eq!(push(&s, good_token(), "m-x", &n).await.status, 200);
}

#[tokio::test]
async fn consumable_credited_once_consumed_and_void_takes_it_back() {
    let (g, s, clock) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let (_, account) = google_order(&s, "cy", "coins-100").await;
    g.set_product("coins_100", "coin-tok", product_purchase(0, Some(&account)));
    assert_eq!(submit(&s, "cy", "coin-tok", "coins_100").await, 202);
    assert_eq!(submit(&s, "cy", "coin-tok", "coins_100").await, 202);
    run_jobs(&s).await;
    clock.advance(1);
    run_jobs(&s).await;
    let credits = s.call("cy", "GET", "/entitlements", None).await.json()["credits"].clone();
    assert_eq!(credits, 100);
    g.with(|p| {
        assert!(p.acked.contains(&"coin-tok".to_string()));
        assert!(p.consumed.contains(&"coin-tok".to_string()));
    });
    // Someone else handing in the same token gets nothing.
    assert_eq!(submit(&s, "mallory", "coin-tok", "coins_100").await, 202);
    run_jobs(&s).await;
    assert_eq!(
        s.call("mallory", "GET", "/entitlements", None).await.json()["credits"],
        0
    );
    // Voided one-time purchase: the coins are taken back.
    let void = json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
                      "voidedPurchaseNotification": {"purchaseToken": "coin-tok", "orderId": "GPA.2", "productType": 2, "refundType": 1}});
    assert_eq!(
        push(&s, good_token(), "m-void-coins", &void).await.status,
        200
    );
    assert_eq!(
        s.call("cy", "GET", "/entitlements", None).await.json()["credits"],
        0
    );
    // Bad input is refused before anything is queued.
    assert_eq!(submit(&s, "cy", "bad/token", "coins_100").await, 400);
    assert_eq!(submit(&s, "cy", "tok", "not_in_catalog").await, 400);
}

#[tokio::test]
async fn pre_ordered_one_time_purchase_is_found_again_by_its_token() {
    let (g, s, clock) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let (order_id, account) = google_order(&s, "di", "coins-100").await;
    g.set_product("coins_100", "pre-tok", product_purchase(0, Some(&account)));
    let r = s
        .call("di", "POST", "/purchases/google", Some(json!({"purchase_token": "pre-tok", "product_id": "coins_100", "order_id": order_id})))
        .await;
    assert_eq!(r.status, 202);
    run_jobs(&s).await;
    assert_eq!(
        s.call("di", "GET", "/entitlements", None).await.json()["credits"],
        100
    );
    assert_eq!(
        s.call("di", "GET", &format!("/orders/{order_id}"), None)
            .await
            .json()["state"],
        "PAID"
    );
    // An RTDN re-fetch (no user, no order id) recognises the same purchase.
    clock.advance(1);
    let n = json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
                   "oneTimeProductNotification": {"version": "1.0", "notificationType": 1, "purchaseToken": "pre-tok", "sku": "coins_100"}});
    assert_eq!(
        push(&s, good_token(), "m-ot", &n).await.json()["result"],
        "one_time"
    );
    run_jobs(&s).await;
    assert_eq!(
        s.call("di", "GET", "/entitlements", None).await.json()["credits"],
        100
    );
    // Voided: the pre-order is refunded and the coins taken back.
    let void = json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
                      "voidedPurchaseNotification": {"purchaseToken": "pre-tok", "orderId": "GPA.3", "productType": 2, "refundType": 1}});
    assert_eq!(
        push(&s, good_token(), "m-void-pre", &void).await.status,
        200
    );
    assert_eq!(
        s.call("di", "GET", "/entitlements", None).await.json()["credits"],
        0
    );
    assert_eq!(
        s.call("di", "GET", &format!("/orders/{order_id}"), None)
            .await
            .json()["state"],
        "REFUNDED"
    );
}

#[tokio::test]
async fn a_purchase_bound_to_another_account_is_refused() {
    let (g, s, _) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let (_, ann_account) = google_order(&s, "ann", "vip").await;
    g.set_subscription(
        "ann-tok",
        subscription(
            "SUBSCRIPTION_STATE_ACTIVE",
            T0 + DAY,
            Some(&ann_account),
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        ),
    );
    // A token for one product never unlocks another.
    assert_eq!(submit(&s, "ann", "ann-tok", "vipplus_monthly").await, 202);
    run_jobs(&s).await;
    let e = s.call("ann", "GET", "/entitlements", None).await.json();
    assert!(e["grants"].as_array().unwrap().is_empty(), "{e}");
    assert_eq!(submit(&s, "eve", "ann-tok", "vip_monthly").await, 202);
    run_jobs(&s).await;
    assert_eq!(vip(&s, "eve").await, None);
    assert_eq!(submit(&s, "ann", "ann-tok", "vip_monthly").await, 202);
    run_jobs(&s).await;
    assert_eq!(vip(&s, "ann").await, at(T0 + DAY));
}

async fn concurrent(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (g, s, _) = setup(store).await;
    let stamp = tollgate::clock::Clock::now_ms(&tollgate::clock::SystemClock);
    let (coin, sub) = (format!("coin-{stamp}"), format!("sub-{stamp}"));
    let account = google_order(&s, "dup", "coins-100").await.1;
    g.set_product("coins_100", &coin, product_purchase(0, Some(&account)));
    g.set_subscription(
        &sub,
        subscription(
            "SUBSCRIPTION_STATE_ACTIVE",
            T0 + DAY,
            Some(&account),
            "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        ),
    );
    let app = s.app.clone();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (app, coin, sub) = (app.clone(), coin.clone(), sub.clone());
        tasks.push(tokio::spawn(async move {
            use tollgate::service::google_purchases::verify;
            let a = verify(&app, &coin, "coins_100", Some("dup"), None).await;
            let b = verify(&app, &sub, "vip_monthly", Some("dup"), None).await;
            (a, b)
        }));
    }
    let (mut granted, mut active) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        granted += usize::from(a == Ok(PurchaseStatus::Granted));
        active += usize::from(b == Ok(PurchaseStatus::Subscription(PurchaseState::Active)));
        assert!(
            matches!(a, Ok(PurchaseStatus::Granted | PurchaseStatus::Duplicate)),
            "{a:?}"
        );
        assert!(
            matches!(
                b,
                Ok(PurchaseStatus::Subscription(PurchaseState::Active) | PurchaseStatus::Duplicate)
            ),
            "{b:?}"
        );
    }
    assert_eq!((granted, active), (1, 1));
    let e = s.call("dup", "GET", "/entitlements", None).await.json();
    assert_eq!(e["credits"], 100, "{e}");
    assert_eq!(
        e["grants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["scope"] == "channel:vip")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_grant_under_64_duplicates_memory() {
    concurrent(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_grant_under_64_duplicates_dynamo() {
    concurrent(Backend::Dynamo).await;
}

fn queued(s: &TestServer) -> usize {
    match s.app.queue.as_ref() {
        Some(tollgate::app::Queue::Memory(q)) => q.len(),
        _ => panic!("the test app has an in-process queue"),
    }
}

#[tokio::test]
async fn a_subscription_first_seen_cancelled_in_grace_or_on_hold_is_acknowledged() {
    let (g, s, clock) = setup(store_for(Backend::Memory).await.unwrap()).await;
    let (_, account) = google_order(&s, "ack", "vip").await;
    let states = [
        "SUBSCRIPTION_STATE_CANCELED",
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
        "SUBSCRIPTION_STATE_ON_HOLD",
    ];
    for (i, state) in states.iter().enumerate() {
        let token = format!("first-seen-{i}");
        g.set_subscription(
            &token,
            subscription(
                state,
                T0 + DAY,
                Some(&account),
                "ACKNOWLEDGEMENT_STATE_PENDING",
            ),
        );
        assert_eq!(submit(&s, "ack", &token, "vip_monthly").await, 202);
    }
    run_jobs(&s).await;
    clock.advance(1);
    run_jobs(&s).await;
    g.with(|p| {
        for (i, state) in states.iter().enumerate() {
            let token = format!("first-seen-{i}");
            assert!(
                p.acked.contains(&token),
                "{token} ({state}) not acknowledged: {:?}",
                p.acked
            );
        }
    });
    // A cancelled subscription still grants to the end of its period.
    assert_eq!(
        s.call("ack", "GET", "/entitlements/vip", None).await.json()["can_use"],
        true
    );
}

#[tokio::test]
async fn a_pending_one_time_purchase_completed_later_settles_without_the_app() {
    let (g, s, clock) = setup(store_for(Backend::Memory).await.unwrap()).await;
    // With a pre-order: the app hands over the token while Google still waits for the money.
    let (order_id, account) = google_order(&s, "pen", "coins-100").await;
    g.set_product("coins_100", "pend-tok", product_purchase(2, Some(&account)));
    let r = s
        .call("pen", "POST", "/purchases/google", Some(json!({"purchase_token": "pend-tok", "product_id": "coins_100", "order_id": order_id})))
        .await;
    assert_eq!(r.status, 202);
    run_jobs(&s).await;
    assert_eq!(
        s.call("pen", "GET", "/entitlements", None).await.json()["credits"],
        0
    );
    // Without one: the token alone, handed over by the buyer.
    g.set_product(
        "coins_100",
        "pend-bare",
        product_purchase(2, Some(&account)),
    );
    assert_eq!(submit(&s, "pen", "pend-bare", "coins_100").await, 202);
    run_jobs(&s).await;
    g.with(|p| {
        assert!(
            p.acked.is_empty(),
            "a pending purchase cannot be acknowledged"
        )
    });
    // The money arrives; Google says so with ONE_TIME_PRODUCT_PURCHASED, token and SKU only.
    for (i, token) in ["pend-tok", "pend-bare"].iter().enumerate() {
        g.set_product("coins_100", token, product_purchase(0, Some(&account)));
        let n = json!({"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
                       "oneTimeProductNotification": {"version": "1.0", "notificationType": 1,
                                                      "purchaseToken": token, "sku": "coins_100"}});
        assert_eq!(
            push(&s, good_token(), &format!("m-pend-{i}"), &n)
                .await
                .json()["result"],
            "one_time"
        );
    }
    clock.advance(1);
    run_jobs(&s).await;
    clock.advance(1);
    run_jobs(&s).await;
    assert_eq!(
        s.call("pen", "GET", "/entitlements", None).await.json()["credits"],
        200
    );
    assert_eq!(
        s.call("pen", "GET", &format!("/orders/{order_id}"), None)
            .await
            .json()["state"],
        "PAID"
    );
    g.with(|p| {
        for token in ["pend-tok", "pend-bare"] {
            assert!(p.acked.contains(&token.to_string()), "{token}");
            assert!(p.consumed.contains(&token.to_string()), "{token}");
        }
    });
}

async fn concurrent_submissions(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (g, s, clock) = setup(store).await;
    let s = Arc::new(s);
    let stamp = tollgate::clock::Clock::now_ms(&tollgate::clock::SystemClock);
    let token = format!("burst-{stamp}");
    let account = google_order(&s, "burst", "coins-100").await.1;
    g.set_product("coins_100", &token, product_purchase(0, Some(&account)));
    assert_eq!(queued(&s), 0);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (s, token) = (s.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let r = s
                .call(
                    "burst",
                    "POST",
                    "/purchases/google",
                    Some(json!({"purchase_token": token, "product_id": "coins_100"})),
                )
                .await;
            (r.status, r.json()["status"].clone())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), (202, json!("queued")));
    }
    assert_eq!(
        queued(&s),
        1,
        "one verification job for 30 identical requests"
    );
    // Another product or account is another request; past the window the same one queues.
    assert_eq!(submit(&s, "burst", &token, "vip_monthly").await, 202);
    assert_eq!(queued(&s), 2);
    clock.advance(tollgate::service::google_purchases::VERIFY_DEDUPE_SECONDS);
    assert_eq!(submit(&s, "burst", &token, "coins_100").await, 202);
    assert_eq!(queued(&s), 3);
    run_jobs(&s).await;
    assert_eq!(
        s.call("burst", "GET", "/entitlements", None).await.json()["credits"],
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_identical_submissions_queue_one_job_memory() {
    concurrent_submissions(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_identical_submissions_queue_one_job_dynamo() {
    concurrent_submissions(Backend::Dynamo).await;
}
