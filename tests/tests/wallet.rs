//! Coins end to end over HTTP, on both stores: buy coins, pay for a ticket with them, send
//! a gift, and read every movement in `GET /wallet`; spends never overdraw under
//! concurrency, a retry never debits twice, and a short balance is a 402 that changes
//! nothing.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::*;

/// The test catalog with coin prices on the channel pass's 7-day plan and on a replay.
fn coin_catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    let products = c["products"].as_array_mut().unwrap();
    products[0]["plans"][0]["coin_price"] = json!(120);
    products.push(json!({
        "id": "replay", "title": "Replay", "kind": "pass", "grants": ["replay:final"],
        "plans": [{"id": "1d", "days": 1, "price": {"amount": 300, "currency": "CNY"},
                   "coin_price": 7}]
    }));
    c.to_string()
}

async fn server(store: Arc<dyn Store>) -> (TestServer, ManualClock) {
    let catalog = coin_catalog();
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("CATALOG_JSON", &catalog)],
    ))
    .await;
    (s, clock)
}

async fn keyed(s: &TestServer, user: &str, path: &str, key: Option<&str>, body: &Value) -> Reply {
    let auth = bearer(user);
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    s.request("POST", path, &headers, body.to_string()).await
}

async fn wallet(s: &TestServer, user: &str, query: &str) -> Value {
    let r = s.call(user, "GET", &format!("/wallet{query}"), None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn viewer_journey(store: Arc<dyn Store>) {
    let (s, clock) = server(store).await;
    let user = "coin-viewer";
    let w = wallet(&s, user, "").await;
    assert_eq!(w, json!({"balance": 0, "entries": [], "next_cursor": null}));

    // Buy 100 coins twice (sandbox), pay the 7-day pass with 120 of them.
    let bought = s.buy(user, "coins-100", None).await;
    clock.advance(1);
    s.buy(user, "coins-100", None).await;
    clock.advance(1);
    let ticket = json!({"product_id": "pass", "plan_id": "7d", "provider": "coins"});
    let r = keyed(&s, user, "/orders", Some("ticket-1"), &ticket).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json();
    assert_eq!(order["state"], "PAID");
    assert_eq!(order["amount"], json!({"amount": 120, "currency": "XCN"}));
    assert_eq!(order["provider"], "coins");
    // A retry returns the same order and debits once.
    let again = keyed(&s, user, "/orders", Some("ticket-1"), &ticket).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["order_id"], order["order_id"]);
    let ent = s.call(user, "GET", "/entitlements/pass", None).await;
    assert_eq!(ent.status, 200);
    assert_eq!(ent.json()["can_use"], true, "the coins bought the pass");
    // A gift.
    clock.advance(1);
    let gift = json!({"amount": 30, "reason": "gift: rocket", "reference": "gift-42"});
    let r = keyed(&s, user, "/wallet/debits", Some("gift-42"), &gift).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let entry = r.json();
    assert_eq!(entry["amount"], -30);
    assert_eq!(entry["source"], "spend");
    assert_eq!(entry["reference"], "gift-42");
    let r = keyed(&s, user, "/wallet/debits", Some("gift-42"), &gift).await;
    assert_eq!(r.status, 200, "a repeat answers the same entry");
    assert_eq!(r.json(), entry);
    let other = json!({"amount": 31, "reason": "gift: rocket", "reference": "gift-42"});
    keyed(&s, user, "/wallet/debits", Some("gift-42"), &other)
        .await
        .assert_problem(422);

    // Short: 402 with the balance and the price, nothing changed.
    let p = keyed(
        &s,
        user,
        "/wallet/debits",
        Some("gift-43"),
        &json!({"amount": 51, "reason": "gift", "reference": "g"}),
    )
    .await
    .assert_problem(402);
    assert_eq!(
        (p["balance"].clone(), p["price"].clone()),
        (json!(50), json!(51))
    );
    let p = keyed(&s, user, "/orders", Some("ticket-2"), &ticket)
        .await
        .assert_problem(402);
    assert_eq!(
        (p["balance"].clone(), p["price"].clone()),
        (json!(50), json!(120))
    );

    // Every movement, newest first, each with the balance it left.
    let w = wallet(&s, user, "").await;
    assert_eq!(w["balance"], 50);
    let moves: Vec<(i64, i64, String)> = w["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["amount"].as_i64().unwrap(),
                e["balance_after"].as_i64().unwrap(),
                e["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            (-30, 50, "spend".to_owned()),
            (-120, 80, "spend".to_owned()),
            (100, 200, "order".to_owned()),
            (100, 100, "order".to_owned()),
        ]
    );
    assert_eq!(w["entries"][1]["reference"], order["order_id"]);
    assert_eq!(w["entries"][3]["reference"], json!(bought));
    // Page by page: the same entries and balances.
    let p1 = wallet(&s, user, "?limit=3").await;
    assert_eq!(p1["entries"], json!(w["entries"].as_array().unwrap()[..3]));
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let p2 = wallet(&s, user, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(p2["entries"], json!(w["entries"].as_array().unwrap()[3..]));
    assert_eq!(p2["next_cursor"], Value::Null);
    assert!(p2.get("balance").is_none());
    // Someone else's wallet is their own.
    assert_eq!(wallet(&s, "someone-else", "").await["balance"], 0);
}

async fn bad_requests_change_nothing(store: Arc<dyn Store>) {
    let (s, _clock) = server(store).await;
    let user = "careless";
    s.buy(user, "coins-100", None).await;
    let gift = json!({"amount": 1, "reason": "gift", "reference": "r"});
    keyed(&s, user, "/wallet/debits", None, &gift)
        .await
        .assert_problem(400);
    for bad in [
        json!({"amount": 0, "reason": "gift", "reference": "r"}),
        json!({"amount": -5, "reason": "gift", "reference": "r"}),
        json!({"amount": 1, "reason": "", "reference": "r"}),
        json!({"amount": 1, "reason": "gift", "reference": "x".repeat(201)}),
        json!({"amount": 1, "reason": "gift"}),
        json!({"amount": 1.5, "reason": "gift", "reference": "r"}),
        json!({"amount": 1, "reason": "gift", "reference": "r", "extra": true}),
    ] {
        let r = keyed(&s, user, "/wallet/debits", Some("k"), &bad).await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.status);
        r.assert_problem(r.status);
    }
    // Products without a coin price, and unknown ones, are refused before anything is written.
    for (body, status) in [
        (json!({"product_id": "concert", "provider": "coins"}), 422),
        (
            json!({"product_id": "pass", "plan_id": "30d", "provider": "coins"}),
            422,
        ),
        (json!({"product_id": "nope", "provider": "coins"}), 422),
        (
            json!({"product_id": "pass", "plan_id": "7d", "provider": "coins", "channel": "app"}),
            400,
        ),
    ] {
        keyed(&s, user, "/orders", None, &body)
            .await
            .assert_problem(status);
    }
    for q in [
        "?limit=0",
        "?limit=101",
        "?cursor=nonsense",
        "?cursor=1.2.3",
    ] {
        s.call(user, "GET", &format!("/wallet{q}"), None)
            .await
            .assert_problem(400);
    }
    assert_eq!(s.request("GET", "/wallet", &[], "").await.status, 401);
    let w = wallet(&s, user, "").await;
    assert_eq!(w["balance"], 100);
    assert_eq!(w["entries"].as_array().unwrap().len(), 1);
}

/// 64 gifts of 7 at once against 100 coins: exactly 14 are sent, the other 50 get 402.
async fn concurrent_spends_never_overdraw(store: Arc<dyn Store>) {
    let (s, _clock) = server(store).await;
    let s = Arc::new(s);
    let user = "generous";
    s.buy(user, "coins-100", None).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let gift =
                    json!({"amount": 7, "reason": "gift: heart", "reference": format!("h{i}")});
                keyed(
                    &s,
                    user,
                    "/wallet/debits",
                    Some(&format!("heart-{i}")),
                    &gift,
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let sent = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((sent, refused), (14, 50), "{statuses:?}");
    let w = wallet(&s, user, "?limit=100").await;
    assert_eq!(w["balance"], 2);
    assert_eq!(w["entries"].as_array().unwrap().len(), 15);
    // Eight orders of the 7-coin replay against 2 coins: none.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let body = json!({"product_id": "replay", "plan_id": "1d", "provider": "coins"});
                keyed(&s, user, "/orders", Some(&format!("replay-{i}")), &body)
                    .await
                    .status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 402);
    }
}

/// A refund of coins already spent leaves a debt that blocks spending until repaid; an
/// operator's refund of an order paid with coins gives its coins back and ends its access.
async fn refunds_of_coins(store: Arc<dyn Store>) {
    let (s, clock) = server(store).await;
    let user = "refunded-coins";
    let bought = s.buy(user, "coins-100", None).await;
    clock.advance(1);
    let ticket = json!({"product_id": "pass", "plan_id": "7d", "provider": "coins"});
    let r = keyed(&s, user, "/orders", Some("t"), &ticket).await;
    assert_eq!(r.status, 402, "100 coins do not buy a 120-coin pass");
    let gift = |n: i64, key: &'static str| json!({"amount": n, "reason": "gift", "reference": key});
    assert_eq!(
        keyed(&s, user, "/wallet/debits", Some("g1"), &gift(70, "g1"))
            .await
            .status,
        201
    );
    clock.advance(1);
    s.refund(&bought, 600).await;
    let w = wallet(&s, user, "").await;
    assert_eq!(
        w["balance"], -70,
        "the refund took back coins already spent: a debt"
    );
    assert_eq!(w["entries"][0]["source"], "refund");
    assert_eq!(w["entries"][0]["amount"], -100);
    let p = keyed(&s, user, "/wallet/debits", Some("g2"), &gift(1, "g2"))
        .await
        .assert_problem(402);
    assert_eq!(p["balance"], -70);
    let support = s
        .admin("GET", &format!("/admin/users/{user}"), None)
        .await
        .json();
    assert_eq!(support["credits"], -70, "operators see the debt");
    // Repaid by buying coins again: 100 - 70 = 30 to spend.
    s.buy(user, "coins-100", None).await;
    s.buy(user, "coins-100", None).await;
    assert_eq!(wallet(&s, user, "").await["balance"], 130);
    let r = keyed(&s, user, "/orders", Some("t2"), &ticket).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json()["order_id"].as_str().unwrap().to_owned();
    assert_eq!(wallet(&s, user, "").await["balance"], 10);

    clock.advance(1);
    // An operator refunds the coin order: the coins come back and the pass ends.
    let admin = admin_bearer("ops");
    let refund = |key: &'static str, body: Value| {
        let (s, admin, order) = (&s, admin.clone(), order.clone());
        async move {
            s.request(
                "POST",
                &format!("/admin/orders/{order}/refunds"),
                &[
                    ("authorization", admin.as_str()),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                body.to_string(),
            )
            .await
        }
    };
    let r = refund("part", json!({"amount": 20, "reason": "partial"})).await;
    let p = r.assert_problem(422);
    assert_eq!(
        p["refund"]["failure"], "PARTIAL_NOT_SUPPORTED",
        "coin orders are refunded whole"
    );
    assert_eq!(wallet(&s, user, "").await["balance"], 10);
    let r = refund("whole", json!({"reason": "stream broke"})).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["state"], "CONFIRMED");
    let w = wallet(&s, user, "").await;
    assert_eq!(w["balance"], 130);
    assert_eq!(
        (
            w["entries"][0]["amount"].clone(),
            w["entries"][0]["source"].clone()
        ),
        (json!(120), json!("refund"))
    );
    let o = s
        .call(user, "GET", &format!("/orders/{order}"), None)
        .await
        .json();
    assert_eq!(o["state"], "REFUNDED");
    let ent = s.call(user, "GET", "/entitlements/pass", None).await.json();
    assert_eq!(ent["can_use"], false);
    // A repeat of the refund gives nothing more.
    let again = refund("whole", json!({"reason": "stream broke"})).await;
    assert_eq!(
        again.json()["state"],
        "CONFIRMED",
        "a replay reads the request"
    );
    assert_eq!(wallet(&s, user, "").await["balance"], 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    viewer_journey(store_for(Backend::Memory).await.unwrap()).await;
    bad_requests_change_nothing(store_for(Backend::Memory).await.unwrap()).await;
    concurrent_spends_never_overdraw(store_for(Backend::Memory).await.unwrap()).await;
    refunds_of_coins(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    viewer_journey(store.clone()).await;
    bad_requests_change_nothing(store.clone()).await;
    concurrent_spends_never_overdraw(store.clone()).await;
    refunds_of_coins(store).await;
}
