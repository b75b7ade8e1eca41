//! End to end over HTTP against the local server: orders, the sandbox payment page,
//! entitlements, and request and callback refusals changing nothing, on the embedded store.
//! The sandbox's genuine, duplicate, forged, refunded and concurrent callbacks are in the
//! provider conformance suite.

use serde_json::{json, Value};
use tollgate::clock::ManualClock;
use tollgate_tests::*;

async fn server() -> (TestServer, ManualClock) {
    let clock = ManualClock::at(T0);
    let store = store_for(Backend::Memory).await.unwrap();
    (
        TestServer::start(test_app(store, clock.clone())).await,
        clock,
    )
}

async fn create(s: &TestServer, user: &str, body: Value) -> Value {
    let r = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn paid_callback(order: &Value, txn: &str, amount: i64, now: i64) -> Value {
    json!({
        "order_id": order["order_id"], "transaction_id": txn, "status": "paid",
        "amount": {"amount": amount, "currency": "CNY"}, "timestamp": now
    })
}

#[tokio::test]
async fn walkthrough_create_pay_entitled() {
    let (s, _) = server().await;
    let order = create(
        &s,
        "alice",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"}),
    )
    .await;
    assert_eq!(order["state"], "PENDING");
    assert_eq!(order["amount"], json!({"amount": 900, "currency": "CNY"}));
    assert_eq!(
        order["expires_at"],
        tollgate::domain::ids::rfc3339(T0 + 900)
    );
    assert_eq!(order["order_id"].as_str().unwrap().len(), 26);
    let pay_url = order["payment"]["pay_url"].as_str().unwrap().to_owned();
    assert!(pay_url.ends_with(&format!(
        "/sandbox/orders/{}/pay",
        order["order_id"].as_str().unwrap()
    )));

    let path = format!(
        "/sandbox/orders/{}/pay",
        order["order_id"].as_str().unwrap()
    );
    // The owner pays (only the owner may: see local_sandbox_pay.rs).
    let alice = bearer("alice");
    let paid = s
        .request("POST", &path, &[("authorization", &alice)], "")
        .await;
    assert_eq!(paid.status, 200, "{}", String::from_utf8_lossy(&paid.body));
    assert_eq!(paid.json()["callback_status"], 200);

    let got = s
        .call(
            "alice",
            "GET",
            &format!("/orders/{}", order["order_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got.json()["state"], "PAID");
    assert_eq!(got.json()["paid_at"], tollgate::domain::ids::rfc3339(T0));

    let ent = s.call("alice", "GET", "/entitlements", None).await.json();
    assert_eq!(ent["grants"].as_array().unwrap().len(), 1);
    assert_eq!(ent["grants"][0]["scope"], "channel:main");
    assert_eq!(ent["grants"][0]["source_id"], order["order_id"]);
    assert_eq!(
        ent["grants"][0]["valid_until"],
        tollgate::domain::ids::rfc3339(T0 + 7 * DAY)
    );
    let st = s
        .call("alice", "GET", "/entitlements/pass", None)
        .await
        .json();
    assert_eq!(
        st,
        json!({"product_id": "pass", "can_use": true, "expires_at": tollgate::domain::ids::rfc3339(T0 + 7 * DAY), "had_bought": true, "expire": T0 + 7 * DAY})
    );
    // Huya's front-end contract: -1 for a product never bought.
    let never = s
        .call("bob", "GET", "/entitlements/pass", None)
        .await
        .json();
    assert_eq!(never["expire"], -1);
    assert_eq!(never["had_bought"], false);
    // Another user sees nothing of it.
    let bob = s.call("bob", "GET", "/entitlements", None).await.json();
    assert_eq!(bob, json!({"grants": [], "credits": 0}));

    // Refund through the sandbox revokes the access at once.
    let refunded = s
        .request(
            "POST",
            &path,
            &[("authorization", &alice)],
            r#"{"status":"refunded"}"#,
        )
        .await;
    assert_eq!(refunded.json()["callback_status"], 200);
    let ent = s.call("alice", "GET", "/entitlements", None).await.json();
    assert_eq!(ent["grants"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn passes_stack_and_coins_credit() {
    let (s, clock) = server().await;
    for plan in ["7d", "30d"] {
        let o = create(
            &s,
            "carol",
            json!({"product_id": "pass", "plan_id": plan, "provider": "sandbox"}),
        )
        .await;
        let amount = o["amount"]["amount"].as_i64().unwrap();
        assert_eq!(
            s.sandbox_callback(&paid_callback(&o, &format!("t-{plan}"), amount, T0 + 10))
                .await
                .status,
            200
        );
        clock.advance(10);
    }
    let st = s
        .call("carol", "GET", "/entitlements/pass", None)
        .await
        .json();
    assert_eq!(
        st["expires_at"],
        tollgate::domain::ids::rfc3339(T0 + 37 * DAY)
    );
    let coins = create(
        &s,
        "carol",
        json!({"product_id": "coins-100", "provider": "sandbox"}),
    )
    .await;
    assert_eq!(
        s.sandbox_callback(&paid_callback(&coins, "t-coins", 600, T0 + 20))
            .await
            .status,
        200
    );
    assert_eq!(
        s.call("carol", "GET", "/entitlements", None).await.json()["credits"],
        100
    );
}

#[tokio::test]
async fn idempotency_key_semantics() {
    let (s, _) = server().await;
    let body = json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"});
    let send = |b: Value, key: &'static str| {
        let s = &s;
        async move {
            let auth = bearer("dave");
            s.request(
                "POST",
                "/orders",
                &[
                    ("authorization", &auth),
                    ("idempotency-key", key),
                    ("content-type", "application/json"),
                ],
                b.to_string(),
            )
            .await
        }
    };
    let first = send(body.clone(), "k1").await;
    assert_eq!(first.status, 201);
    let again = send(
        json!({"provider": "sandbox", "plan_id": "7d", "product_id": "pass"}),
        "k1",
    )
    .await;
    assert_eq!(again.status, 200, "same key + same body → same order");
    assert_eq!(again.json()["order_id"], first.json()["order_id"]);
    let other = send(
        json!({"product_id": "pass", "plan_id": "30d", "provider": "sandbox"}),
        "k1",
    )
    .await;
    other.assert_problem(422);
    let fresh = send(body, "k2").await;
    assert_eq!(fresh.status, 201);
    assert_ne!(fresh.json()["order_id"], first.json()["order_id"]);
}

#[tokio::test]
async fn bad_requests_get_problems() {
    let (s, _) = server().await;
    // Missing or bad auth.
    s.request("POST", "/orders", &[], "{}")
        .await
        .assert_problem(401);
    s.request(
        "GET",
        "/entitlements",
        &[("authorization", "Bearer nonsense")],
        "",
    )
    .await
    .assert_problem(401);
    // Unknown product, plan problems, store-only product, provider not enabled.
    for (body, slug) in [
        (
            json!({"product_id": "nope", "provider": "sandbox"}),
            "unknown-product",
        ),
        (
            json!({"product_id": "pass", "provider": "sandbox"}),
            "invalid-plan",
        ),
        (
            json!({"product_id": "pass", "plan_id": "1y", "provider": "sandbox"}),
            "invalid-plan",
        ),
        (
            json!({"product_id": "vip", "provider": "sandbox"}),
            "store-only-product",
        ),
        (
            json!({"product_id": "coins-100", "provider": "wechat"}),
            "provider-not-enabled",
        ),
    ] {
        let p = s
            .call("erin", "POST", "/orders", Some(body))
            .await
            .assert_problem(422);
        assert!(p["type"].as_str().unwrap().ends_with(slug), "{p}");
    }
    // A client cannot set the price.
    s.call(
        "erin",
        "POST",
        "/orders",
        Some(json!({"product_id": "coins-100", "provider": "sandbox", "amount": 1})),
    )
    .await
    .assert_problem(400);
    // Malformed JSON, wrong media type, oversized body.
    let auth = bearer("erin");
    s.request("POST", "/orders", &[("authorization", &auth)], "{not json")
        .await
        .assert_problem(400);
    s.request(
        "POST",
        "/orders",
        &[("authorization", &auth), ("content-type", "text/plain")],
        "{}",
    )
    .await
    .assert_problem(415);
    s.request(
        "POST",
        "/orders",
        &[("authorization", &auth)],
        vec![b' '; 70_000],
    )
    .await
    .assert_problem(413);
    // Unknown routes and methods.
    s.request("GET", "/nowhere", &[], "")
        .await
        .assert_problem(404);
    let r = s
        .request("DELETE", "/orders", &[("authorization", &auth)], "")
        .await;
    r.assert_problem(405);
    assert_eq!(r.headers.get("allow").unwrap(), "POST, GET");
    // Bad idempotency keys.
    s.request(
        "POST",
        "/orders",
        &[("authorization", &auth), ("idempotency-key", "has space")],
        r#"{"product_id":"coins-100","provider":"sandbox"}"#,
    )
    .await
    .assert_problem(400);
    // Nothing was created by any of it.
    assert_eq!(
        s.call("erin", "GET", "/entitlements", None).await.json(),
        json!({"grants": [], "credits": 0})
    );
}

#[tokio::test]
async fn orders_are_private_and_cancellable_once() {
    let (s, _) = server().await;
    let o = create(
        &s,
        "frank",
        json!({"product_id": "coins-100", "provider": "sandbox"}),
    )
    .await;
    let path = format!("/orders/{}", o["order_id"].as_str().unwrap());
    s.call("grace", "GET", &path, None)
        .await
        .assert_problem(404);
    s.call("grace", "POST", &format!("{path}/cancel"), None)
        .await
        .assert_problem(404);
    s.call("frank", "GET", "/orders/not-an-id", None)
        .await
        .assert_problem(404);
    let c = s
        .call("frank", "POST", &format!("{path}/cancel"), None)
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.json()["state"], "CANCELLED");
    s.call("frank", "POST", &format!("{path}/cancel"), None)
        .await
        .assert_problem(409);
    // Money that arrives after a cancel is still honoured, as a late payment.
    assert_eq!(
        s.sandbox_callback(&paid_callback(&o, "late-1", 600, T0))
            .await
            .status,
        200
    );
    let got = s.call("frank", "GET", &path, None).await.json();
    assert_eq!(
        (got["state"].clone(), got["late"].clone()),
        (json!("PAID"), json!(true))
    );
}

/// What the sandbox refuses beyond the provider conformance suite (which has forged,
/// tampered, unsigned, stale, wrong-amount, unknown-order and malformed callbacks): another
/// currency, bodies of the wrong shape, a refund of an unpaid order, and a second, different
/// payment of a paid one.
#[tokio::test]
async fn currency_refund_of_unpaid_and_second_payment_are_refused() {
    let (s, clock) = server().await;
    let o = create(
        &s,
        "heidi",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"}),
    )
    .await;
    let good = paid_callback(&o, "t1", 900, T0);
    let mut usd = good.clone();
    usd["amount"]["currency"] = json!("USD");
    s.sandbox_callback(&usd).await.assert_problem(422);
    // Malformed bodies, correctly signed.
    for bad in [
        json!([]),
        json!({"order_id": "x", "transaction_id": "t", "status": "paid", "amount": {"amount": 900, "currency": "CNY"}, "timestamp": T0}),
    ] {
        s.sandbox_callback(&bad).await.assert_problem(400);
    }
    // Refund of an unpaid order.
    let mut refund = good.clone();
    refund["status"] = json!("refunded");
    s.sandbox_callback(&refund).await.assert_problem(409);
    // After all that: still PENDING, no grants.
    let path = format!("/orders/{}", o["order_id"].as_str().unwrap());
    assert_eq!(
        s.call("heidi", "GET", &path, None).await.json()["state"],
        "PENDING"
    );
    assert_eq!(
        s.call("heidi", "GET", "/entitlements", None).await.json()["grants"],
        json!([])
    );
    clock.advance(5);
    assert_eq!(s.sandbox_callback(&good).await.status, 200);
    // A second, different payment for a paid order is refused (it needs a refund, not a grant).
    s.sandbox_callback(&paid_callback(&o, "t2", 900, T0))
        .await
        .assert_problem(409);
    assert_eq!(
        s.call("heidi", "GET", "/entitlements", None).await.json()["grants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// One user firing 50 creates at once: exactly `MAX_NEW_ORDERS_PER_USER` get through, the
/// rest get 429 with the seconds until the window ends; a replay of an accepted key is
/// still answered with its order, and the next window takes orders again.
async fn new_orders_are_capped_per_user(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    // T0 starts a 900 s window (the order lifetime): 600 s of it are left.
    let clock = ManualClock::at(T0 + 300);
    let s = std::sync::Arc::new(TestServer::start(test_app(store, clock.clone())).await);
    let body = json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"}).to_string();
    let auth = bearer("greedy");
    let post = |key: String| {
        let (s, auth, body) = (s.clone(), auth.clone(), body.clone());
        async move {
            s.request(
                "POST",
                "/orders",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", &key),
                ],
                body,
            )
            .await
        }
    };
    let tasks: Vec<_> = (0..50)
        .map(|i| tokio::spawn(post(format!("greedy-{i}"))))
        .collect();
    let (mut created, mut refused) = (Vec::new(), Vec::new());
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        match r.status {
            201 => created.push((i, r.json()["order_id"].as_str().unwrap().to_owned())),
            429 => {
                let p = r.assert_problem(429);
                assert_eq!(p["type"], "https://tollgate.dev/problems/too-many-orders");
                assert_eq!(p["retry_after"], 600);
                assert_eq!(p["limit"], 20);
                assert_eq!(r.headers["retry-after"], "600");
                refused.push(i);
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert_eq!((created.len(), refused.len()), (20, 30));
    // A replay of an accepted key answers its order, though the window is full.
    let (i, id) = &created[0];
    let r = post(format!("greedy-{i}")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["order_id"], id.as_str());
    // A refused key made nothing: it is refused again, not replayed.
    assert_eq!(post(format!("greedy-{}", refused[0])).await.status, 429);
    // Others are not held back by this user.
    let r = s
        .call(
            "patient",
            "POST",
            "/orders",
            Some(serde_json::from_str(&body).unwrap()),
        )
        .await;
    assert_eq!(r.status, 201);
    // The next window takes orders again.
    clock.set(T0 + 900);
    let r = post(format!("greedy-{}", refused[0])).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_orders_are_capped_per_user_on_the_memory_store() {
    new_orders_are_capped_per_user(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_orders_are_capped_per_user_on_dynamodb() {
    new_orders_are_capped_per_user(Backend::Dynamo).await;
}
