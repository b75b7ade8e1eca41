//! Store round-trip budgets per operation, on both stores. On DynamoDB every HTTP request the
//! SDK sends is counted (retries included); on the embedded store every store call. A change
//! that adds a round trip to one of these paths fails here.

use serde_json::json;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::refund::RefundRef;
use tollgate::domain::{Currency, Money, OrderId};
use tollgate::providers::ProviderEvent;
use tollgate::service::payments::{apply, Applied};
use tollgate::service::sweep::sweep;
use tollgate::store::Store;
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::*;

/// Round trips since the last call.
trait Meter: Send + Sync {
    fn take(&self) -> u64;
}

struct Calls(Arc<CountingStore>);
impl Meter for Calls {
    fn take(&self) -> u64 {
        let n = self.0.total_calls();
        self.0.reset();
        n
    }
}

impl Meter for RequestCounter {
    fn take(&self) -> u64 {
        RequestCounter::take(self)
    }
}

async fn budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("MAX_NEW_ORDERS_PER_USER", "3")],
    ))
    .await;
    let create = json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"});
    meter.take();

    let o = s
        .call("rt", "POST", "/orders", Some(create.clone()))
        .await
        .json();
    assert_eq!(meter.take(), 1, "create order: one write");

    let auth = bearer("rt");
    let keyed = |key: &'static str| {
        let (s, auth, body) = (&s, auth.clone(), create.to_string());
        async move {
            s.request(
                "POST",
                "/orders",
                &[("authorization", &auth), ("idempotency-key", key)],
                body,
            )
            .await
            .status
        }
    };
    assert_eq!(keyed("rt-1").await, 201);
    assert_eq!(
        meter.take(),
        1,
        "create with Idempotency-Key: order and key in one transaction"
    );
    assert_eq!(keyed("rt-1").await, 200);
    assert!(
        meter.take() <= 2,
        "replayed create: the failed transaction, then read the order"
    );
    // The user's window of new orders is counted in the same transaction.
    assert_eq!(keyed("rt-2").await, 201);
    assert_eq!(meter.take(), 1, "third create: still one transaction");
    assert_eq!(keyed("rt-3").await, 429);
    assert_eq!(
        meter.take(),
        1,
        "create over the quota: the failed transaction"
    );
    assert_eq!(
        keyed("rt-1").await,
        200,
        "a replay is answered, window full or not"
    );
    assert!(meter.take() <= 2);

    let callback = json!({"order_id": o["order_id"], "transaction_id": "rt-t", "status": "paid",
                          "amount": {"amount": 900, "currency": "CNY"}, "timestamp": T0});
    assert_eq!(s.sandbox_callback(&callback).await.status, 200);
    assert_eq!(meter.take(), 2, "settle: read the order, one transaction");
    assert_eq!(s.sandbox_callback(&callback).await.status, 200);
    assert_eq!(
        meter.take(),
        1,
        "duplicate settle: the read shows it paid, nothing is written"
    );

    assert_eq!(s.call("rt", "GET", "/entitlements", None).await.status, 200);
    assert_eq!(
        meter.take(),
        1,
        "entitlements: one query of the user's partition"
    );
    assert_eq!(
        s.call("rt", "GET", "/entitlements/pass", None).await.status,
        200
    );
    assert_eq!(meter.take(), 1);

    // Support's lookups: an order one read, by transaction id two, a user one query.
    let id = o["order_id"].as_str().unwrap();
    let r = s.admin("GET", &format!("/admin/orders/{id}"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 1, "admin order: one GetItem");
    let r = s
        .admin(
            "GET",
            "/admin/lookup?provider=sandbox&transaction_id=rt-t",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["order_id"], id);
    assert_eq!(
        meter.take(),
        2,
        "lookup: the transaction claim, then the order"
    );
    let r = s.admin("GET", "/admin/users/rt", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        meter.take(),
        1,
        "admin user: one query of the user's partition"
    );
    let r = s.call("rt", "GET", "/orders?limit=5", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 1, "order history: one query of its index");

    // Operators' changes: read what the change replaces, then one transaction (the change,
    // conditioned on that read, and its audit record); a publish check one read.
    let r = s
        .admin("POST", "/admin/streams/concert/publish-key", None)
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        meter.take(),
        2,
        "rotate a publish key: read the key, one transaction"
    );
    let key = r.json()["publish_key"].as_str().unwrap().to_owned();
    let push = json!({"action": "on_publish", "ip": "198.51.100.9", "app": "live",
                      "stream": "concert", "param": format!("?key={key}")});
    let r = s
        .request(
            "POST",
            "/streams/verify",
            &[("content-type", "application/json")],
            push.to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 1, "verify a publish: read the stream's key");
    let ban = json!({"stream_id": "concert", "reason": "restreaming"});
    let r = s.admin("POST", "/admin/users/rt/bans", Some(ban)).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        meter.take(),
        2,
        "ban: query the user's partition, one transaction"
    );
    let r = s
        .admin("DELETE", "/admin/users/rt/bans/concert", None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        meter.take(),
        2,
        "unban: query the user's partition, one transaction"
    );
    let promo = json!({"scopes": ["channel:main"], "days": 3, "reason": "round trips"});
    let admin = admin_bearer("ops");
    let keyed_admin = |path: &'static str, key: &'static str, body: serde_json::Value| {
        let (s, auth) = (&s, admin.clone());
        async move {
            s.request(
                "POST",
                path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                body.to_string(),
            )
            .await
        }
    };
    let r = keyed_admin("/admin/users/rt/grants", "rt-promo", promo.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        meter.take(),
        2,
        "promotion: one transaction, then one query for its windows"
    );
    let source = r.json()["source_id"].as_str().unwrap().replace('#', "%23");
    let r = keyed_admin("/admin/users/rt/grants", "rt-promo", promo).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        meter.take(),
        2,
        "repeated promotion: the failed transaction, then one query"
    );
    let r = s
        .admin(
            "DELETE",
            &format!("/admin/users/rt/grants/{source}"),
            Some(json!({"reason": "round trips"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        meter.take(),
        2,
        "revoke: query the user's partition, one transaction"
    );
    let r = keyed_admin(
        "/admin/users/rt/wallet",
        "rt-coins",
        json!({"amount": 5, "reason": "round trips"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        meter.take(),
        2,
        "wallet: query the user's partition, one transaction"
    );
    let r = s
        .admin("GET", "/admin/audit?user_id=rt&limit=2", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 1, "a user's audit trail: one query");
    let r = s
        .admin("GET", &format!("/admin/audit?since={T0}"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 1, "the audit trail since: one index query");

    // Refunds add up on the order: each is the read and one conditional write; the one that
    // completes what was paid is the read and one transaction (order, grants, figures).
    let order_id = OrderId::parse(o["order_id"].as_str().unwrap()).unwrap();
    let refund = |fen: i64, id: &str| ProviderEvent::Refunded {
        order_id: order_id.clone(),
        provider_txn_id: "rt-t".into(),
        refunded: Money::new(fen, Currency::CNY).unwrap(),
        order_total: Money::new(900, Currency::CNY).unwrap(),
        refund: RefundRef::Single(id.into()),
    };
    assert_eq!(
        apply(&s.app, "sandbox", refund(300, "rt-r1"))
            .await
            .unwrap(),
        Applied::PartialRefundKeptAccess
    );
    assert_eq!(
        meter.take(),
        2,
        "partial refund: read the order, one conditional update"
    );
    assert_eq!(
        apply(&s.app, "sandbox", refund(300, "rt-r1"))
            .await
            .unwrap(),
        Applied::Duplicate
    );
    assert_eq!(
        meter.take(),
        1,
        "repeated partial refund: the read shows it counted"
    );
    assert_eq!(
        apply(&s.app, "sandbox", refund(600, "rt-r2"))
            .await
            .unwrap(),
        Applied::Refunded
    );
    assert_eq!(
        meter.take(),
        2,
        "the refund that completes the total: read the order, one transaction"
    );

    // Apple's REFUND_REVERSED of a one-time purchase: read the order, one transaction
    // (order back to PAID, its grants un-revoked, its coins given back).
    let refunded = s.app.store.get_order(&order_id).await.unwrap().unwrap();
    assert_eq!(
        tollgate::service::refunds::reverse(&s.app, refunded, "rt-t", T0 + 5, "round trips")
            .await
            .unwrap(),
        Applied::RefundReversed
    );
    assert_eq!(
        meter.take(),
        2,
        "refund reversed: read the order, one transaction"
    );

    // The sweeper: one query per shard, then per due order one read and one write.
    clock.advance(10_000);
    meter.take();
    let r = sweep(&s.app, i64::MAX).await;
    assert_eq!(r.expired, 2, "{r:?}"); // the keyed orders; the first one is paid
    assert_eq!(
        meter.take(),
        1 + 16 + 2 * 2,
        "sweep: the refund index and 16 due-index queries + read and expire each of 2 orders"
    );
    let r = sweep(&s.app, i64::MAX).await;
    assert_eq!(r.examined, 0);
    assert_eq!(
        meter.take(),
        1 + 16,
        "an idle sweep costs only the 17 index queries"
    );
}

/// Refunds an operator starts, against the fake WeChat Pay: recorded in one transaction,
/// counted like a reported refund, finished in one more.
async fn refund_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    use tollgate_tests::fake::RefundMode;
    use tollgate_tests::wechat::{self as wx, FakeWechat};
    let fake = FakeWechat::start(T0).await;
    let clock = ManualClock::at(T0);
    let s = TestServer::start(app_with(store, clock.clone(), &wx::env(&fake.server.base))).await;
    let paid = |n: u32| {
        let s = &s;
        async move {
            let r = s
                .call(
                    "rt-refund",
                    "POST",
                    "/orders",
                    Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"})),
                )
                .await;
            let id = r.json()["order_id"].as_str().unwrap().to_owned();
            let body = wx::notification(
                "TRANSACTION.SUCCESS",
                &wx::transaction(&id, &format!("rt-wx-{n}"), 900),
                wx::API_V3_KEY,
            );
            let headers = wx::signed_headers(&body, T0, &wx::platform_signer(), wx::PUB_KEY_ID);
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = s.request("POST", "/callbacks/wechat", &h, body).await;
            assert_eq!(r.status, 204);
            id
        }
    };
    let refund = |id: String, key: &'static str, body: serde_json::Value| {
        let s = &s;
        async move {
            let auth = admin_bearer("ops");
            s.request(
                "POST",
                &format!("/admin/orders/{id}/refunds"),
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                body.to_string(),
            )
            .await
            .status
        }
    };
    let id = paid(1).await;
    meter.take();
    assert_eq!(
        refund(id.clone(), "rt-1", json!({"amount": 300, "reason": "rt"})).await,
        201
    );
    assert_eq!(
        meter.take(),
        4,
        "partial refund started: read the order, record it (one transaction), count it, finish it"
    );
    assert_eq!(
        refund(id.clone(), "rt-1", json!({"amount": 300, "reason": "rt"})).await,
        201
    );
    assert_eq!(
        meter.take(),
        2,
        "repeated request: read the order, the failed transaction returns the request"
    );
    assert_eq!(
        refund(id.clone(), "rt-2", json!({"reason": "rt"})).await,
        201
    );
    assert_eq!(
        meter.take(),
        4,
        "the refund reaching what was paid: read, record, refund transaction, finish"
    );
    let id = paid(2).await;
    fake.refunds.set_mode(RefundMode::Process);
    meter.take();
    assert_eq!(
        refund(id.clone(), "rt-3", json!({"reason": "rt"})).await,
        202
    );
    assert_eq!(
        meter.take(),
        3,
        "a refund the provider processes: read, record, mark it pending"
    );
    fake.refunds
        .set_mode(RefundMode::Refuse("NOT_ENOUGH".into()));
    let other = paid(3).await;
    meter.take();
    assert_eq!(refund(other, "rt-4", json!({"reason": "rt"})).await, 422);
    assert_eq!(
        meter.take(),
        3,
        "a refused refund: read, record, fail it (releasing its hold)"
    );
    let no = fake.server.seen().iter().rev().find_map(|r| {
        (r.target == "/v3/refund/domestic/refunds")
            .then(|| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
            .filter(|b| b["out_trade_no"] == id.as_str())
            .map(|b| b["out_refund_no"].as_str().unwrap().to_owned())
    });
    fake.refunds.set_status(&no.unwrap(), "SUCCESS");
    clock.advance(120);
    meter.take();
    let r = sweep(&s.app, i64::MAX).await;
    assert_eq!(r.refunds.confirmed, 1, "{r:?}");
    assert_eq!(
        meter.take(),
        1 + 16 + 4,
        "sweep of a pending refund: the refund index, the request, the order, the refund \
         transaction, finish it; and the 16 due-index queries"
    );
}

/// With `PARTIAL_REFUND_REVOKES`, a partial refund that ends the access is still the read and
/// one transaction (order, grants, wallet).
async fn revoking_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let s = TestServer::start(test_app_with(
        store,
        ManualClock::at(T0),
        &[("PARTIAL_REFUND_REVOKES", "true")],
    ))
    .await;
    let id = s.buy("rt-revoke", "pass", Some("7d")).await;
    let order_id = OrderId::parse(&id).unwrap();
    meter.take();
    let refund = ProviderEvent::Refunded {
        order_id,
        provider_txn_id: format!("txn-{id}"),
        refunded: Money::new(100, Currency::CNY).unwrap(),
        order_total: Money::new(900, Currency::CNY).unwrap(),
        refund: RefundRef::Single("rt-p1".into()),
    };
    assert_eq!(
        apply(&s.app, "sandbox", refund).await.unwrap(),
        Applied::PartialRefundRevoked
    );
    assert_eq!(
        meter.take(),
        2,
        "partial refund ending access: read the order, one transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    revoking_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    revoking_budgets(Arc::new(store), counter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    refund_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    refund_budgets(Arc::new(store), counter).await;
}

/// A viewer with a long history: checks read the live grants and checkpoints only, so issue,
/// verify and the entitlement routes keep their budgets; the issue that finds enough ended
/// grants folds them (one more transaction); a refund of an archived order costs what any
/// refund costs, then checks read the history once more until the next fold repairs it.
async fn history_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let clock = ManualClock::at(T0);
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["streams"].as_array_mut().unwrap().push(json!({
        "id": "main", "requires_any": ["channel:main"],
        "origin": "https://live.example.com/live/main.m3u8"
    }));
    let catalog = catalog.to_string();
    let s = TestServer::start(test_app_with(
        store.clone(),
        clock.clone(),
        &[("CATALOG_JSON", catalog.as_str())],
    ))
    .await;
    let mut old = Vec::new();
    for _ in 0..20 {
        old.push(s.buy("hist", "pass", Some("7d")).await);
        clock.advance(10 * DAY);
    }
    s.buy("hist", "pass", Some("7d")).await;
    let token = |device: &'static str| {
        let s = &s;
        async move {
            let r = s
                .call(
                    "hist",
                    "POST",
                    "/streams/main/tokens",
                    Some(json!({ "device_id": device })),
                )
                .await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    let verify = |t: serde_json::Value| {
        let s = &s;
        async move {
            s.request(
                "POST",
                "/streams/verify",
                &[("content-type", "application/json")],
                json!({ "token": t["token"] }).to_string(),
            )
            .await
            .status
        }
    };
    meter.take();
    let first = token("d1").await;
    assert_eq!(
        meter.take(),
        3,
        "issue with 20 ended grants: query, sessions write, one fold transaction"
    );
    let items = store.user_items("hist").await.unwrap();
    assert_eq!(items.grants.len(), 1, "{:?}", items.grants);
    assert_eq!(items.checkpoints.len(), 1);
    assert_eq!(store.user_history("hist").await.unwrap().archived.len(), 20);
    meter.take();
    token("d2").await;
    assert_eq!(
        meter.take(),
        2,
        "issue after the fold: query, sessions write"
    );
    assert_eq!(verify(first.clone()).await, 200);
    assert_eq!(meter.take(), 1, "verify: one query");
    let r = s.call("hist", "GET", "/entitlements/pass", None).await;
    assert_eq!(r.json()["had_bought"], true);
    assert_eq!(r.json()["can_use"], true);
    assert_eq!(meter.take(), 1, "product status: one query");

    // A refund of an archived order: the read and one transaction, as always.
    s.refund(&old[4], 900).await;
    assert_eq!(meter.take(), 2, "refund of an archived grant");
    assert_eq!(verify(first.clone()).await, 200);
    assert_eq!(
        meter.take(),
        2,
        "verify while stale: the query, then the history"
    );
    let renewed = token("d1").await;
    assert_eq!(renewed["session_id"], first["session_id"]);
    assert_eq!(
        meter.take(),
        3,
        "renewal while stale: query, history, the fold that repairs it"
    );
    assert_eq!(verify(first.clone()).await, 200);
    assert_eq!(meter.take(), 1, "verify after the repair: one query");
    let r = s.admin("GET", "/admin/users/hist", None).await;
    assert_eq!(r.json()["grants"].as_array().unwrap().len(), 21);
    assert_eq!(meter.take(), 1, "support: one query of the whole partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    history_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    history_budgets(Arc::new(store), counter).await;
}

/// `POST /purchases/google` claims a short-lived marker before queueing: one conditional
/// write, and a repeat is that write failing (the job queue is not the store).
async fn google_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    use tollgate_tests::fake_google::FakeGoogle;
    let g = FakeGoogle::start().await;
    let s = TestServer::start(g.app(store, ManualClock::at(T0))).await;
    let stamp = tollgate::clock::Clock::now_ms(&tollgate::clock::SystemClock);
    let body = json!({"purchase_token": format!("rt-{stamp}"), "product_id": "coins_100"});
    meter.take();
    let r = s
        .call("rt-g", "POST", "/purchases/google", Some(body.clone()))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        meter.take(),
        1,
        "submit: one conditional PutItem of the marker"
    );
    let r = s
        .call("rt-g", "POST", "/purchases/google", Some(body))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        meter.take(),
        1,
        "repeat within the window: the failed PutItem"
    );
    let o = s
        .call(
            "rt-g",
            "POST",
            "/orders",
            Some(json!({"product_id": "coins-100", "provider": "google"})),
        )
        .await
        .json();
    meter.take();
    let with_order = json!({"purchase_token": format!("rt-o-{stamp}"), "product_id": "coins_100",
                            "order_id": o["order_id"]});
    let r = s
        .call("rt-g", "POST", "/purchases/google", Some(with_order))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        meter.take(),
        2,
        "submit for an order: read it, then the marker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_submit_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    google_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_submit_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    google_budgets(Arc::new(store), counter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    budgets(Arc::new(store), counter).await;
}

/// Coins: the wallet read is one query (balance and newest entries), a spend one
/// transaction, an order paid with coins one transaction; a short balance is the failed
/// transaction alone.
async fn coin_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["products"][0]["plans"][0]["coin_price"] = json!(120);
    let catalog = catalog.to_string();
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("CATALOG_JSON", &catalog)],
    ))
    .await;
    s.buy("rt-coins", "coins-100", None).await;
    s.buy("rt-coins", "coins-100", None).await;
    meter.take();
    assert_eq!(s.call("rt-coins", "GET", "/wallet", None).await.status, 200);
    assert_eq!(meter.take(), 1, "wallet read: one query");
    let auth = bearer("rt-coins");
    let post = |path: &'static str, key: &'static str, body: serde_json::Value| {
        let (s, auth) = (&s, auth.clone());
        async move {
            s.request(
                "POST",
                path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                body.to_string(),
            )
            .await
            .status
        }
    };
    let ticket = json!({"product_id": "pass", "plan_id": "7d", "provider": "coins"});
    assert_eq!(post("/orders", "rt-ticket", ticket.clone()).await, 201);
    assert_eq!(meter.take(), 1, "pay with coins: one transaction");
    let gift = json!({"amount": 30, "reason": "gift", "reference": "rt"});
    assert_eq!(post("/wallet/debits", "rt-gift", gift.clone()).await, 201);
    assert_eq!(meter.take(), 1, "debit: one transaction");
    assert_eq!(post("/wallet/debits", "rt-gift", gift).await, 200);
    assert!(meter.take() <= 2, "repeated debit: the failed transaction");
    let big = json!({"amount": 51, "reason": "gift", "reference": "rt"});
    assert_eq!(post("/wallet/debits", "rt-big", big).await, 402);
    assert!(meter.take() <= 2, "short debit: the failed transaction");
    assert_eq!(post("/orders", "rt-ticket-2", ticket).await, 402);
    assert!(
        meter.take() <= 2,
        "short coin order: the failed transaction"
    );
    assert_eq!(
        s.call("rt-coins", "GET", "/wallet?limit=1", None)
            .await
            .status,
        200
    );
    assert_eq!(meter.take(), 1, "a page of the wallet: one query");
    assert_eq!(
        s.call("rt-coins", "GET", "/entitlements", None)
            .await
            .status,
        200
    );
    assert_eq!(meter.take(), 1, "entitlements never read the ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coin_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    coin_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coin_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    coin_budgets(Arc::new(store), counter).await;
}

/// The outbox's reads and writes: a page of events is one query per UTC day it spans, a
/// redelivery four (read, disabled endpoints, the conditional update, read back), one
/// delivery one conditional update.
async fn event_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>, per_day: bool) {
    use tollgate::domain::line::Lines;
    use tollgate::webhook::deliver::{Dispatcher, RetryPolicy};
    let rx = tollgate_tests::webhooks::Receiver::start().await;
    let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    let lines = json!([{"id": "all", "products": {"pattern": "*"},
                        "webhooks": [{"url": rx.url(), "secret": key}]}]);
    catalog["lines"] = lines.clone();
    let catalog = catalog.to_string();
    let s = TestServer::start(test_app_with(
        store.clone(),
        ManualClock::at(T0),
        &[("CATALOG_JSON", catalog.as_str())],
    ))
    .await;
    let create = json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"});
    s.call("rt-ev", "POST", "/orders", Some(create.clone()))
        .await;
    s.call("rt-ev", "POST", "/orders", Some(create)).await;
    meter.take();
    let r = s
        .admin("GET", &format!("/admin/events?since={}", T0 - 10), None)
        .await;
    assert_eq!(r.status, 200);
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(meter.take(), 1, "events of one day: one query");
    s.admin("GET", &format!("/admin/events?since={}", T0 - 86_400), None)
        .await;
    // The embedded store answers any period in one call.
    let two_days = if per_day { 2 } else { 1 };
    assert_eq!(
        meter.take(),
        two_days,
        "events over two days: one query each"
    );
    let id = events[0]["id"].as_str().unwrap();
    let r = s
        .admin("POST", &format!("/admin/events/{id}/redeliver"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        meter.take(),
        4,
        "redeliver: read, disabled endpoints, the update, read back"
    );
    let record = store
        .get_event(events[1]["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let lines = Lines::parse(lines, &[]).unwrap();
    let http = tollgate::providers::outbound::HttpClient::new(
        std::time::Duration::from_secs(5),
        Default::default(),
    )
    .unwrap();
    meter.take();
    Dispatcher::new(http, RetryPolicy::default())
        .deliver(&*store, &lines, record, &Default::default(), T0, false)
        .await
        .unwrap();
    assert_eq!(meter.take(), 1, "one delivery: one conditional update");
    assert_eq!(rx.seen().len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    event_budgets(counting.clone(), Arc::new(Calls(counting)), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    event_budgets(Arc::new(store), counter, true).await;
}

/// Lifetime products: the create is the ownership query and the transaction that also
/// claims the product; a second purchase while the first is payable is the query and the
/// failed transaction; cancelling it adds one conditional update (ending the claim).
async fn lifetime_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["products"].as_array_mut().unwrap().push(json!({
        "id": "course", "title": "Course", "kind": "lifetime", "grants": ["course:rt"],
        "price": {"amount": 1990, "currency": "CNY"}
    }));
    let catalog = catalog.to_string();
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("CATALOG_JSON", &catalog)],
    ))
    .await;
    let body = json!({"product_id": "course", "provider": "sandbox"});
    meter.take();
    let r = s
        .call("rt-life", "POST", "/orders", Some(body.clone()))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        meter.take(),
        2,
        "lifetime create: the ownership query, the transaction"
    );
    let id = r.json()["order_id"].as_str().unwrap().to_owned();
    let refused = s
        .call("rt-life", "POST", "/orders", Some(body.clone()))
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        meter.take() <= 3,
        "refused by the claim: the query and the failed transaction"
    );
    let r = s
        .call("rt-life", "POST", &format!("/orders/{id}/cancel"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 3, "cancel: read, close, end the claim");
    let r = s.call("rt-life", "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201);
    assert_eq!(meter.take(), 2, "created again at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    lifetime_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    lifetime_budgets(Arc::new(store), counter).await;
}

/// The dispatcher function: a stream batch reads the disabled endpoints once, then each
/// inserted record costs its read and one conditional update of its delivery state.
async fn dispatcher_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let rx = tollgate_tests::webhooks::Receiver::start().await;
    let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["lines"] = json!([{"id": "all", "products": {"pattern": "*"},
                               "webhooks": [{"url": rx.url(), "secret": key}]}]);
    let catalog = catalog.to_string();
    let app = test_app_with(
        store.clone(),
        ManualClock::at(T0),
        &[("CATALOG_JSON", catalog.as_str())],
    );
    for seed in 0..3 {
        let o = tollgate_tests::conformance::pending(9_900 + seed, "rt-dispatch", T0);
        store.create_order(&o, None, &UNCAPPED, T0).await.unwrap();
    }
    let page = store.events_since(T0 - 1, T0 + 1, 10, None).await.unwrap();
    assert_eq!(page.records.len(), 3);
    let records: Vec<serde_json::Value> = page
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let keys = json!({"pk": {"S": format!("EVENT#{}", r.event.id)}, "sk": {"S": "EVENT"}});
            json!({"eventName": "INSERT", "eventSource": "aws:dynamodb",
                   "dynamodb": {"Keys": keys, "SequenceNumber": format!("{i}")}})
        })
        .collect();
    meter.take();
    let answer = tollgate::lambda::dispatcher::handle_event(&app, json!({ "Records": records }))
        .await
        .unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(rx.seen().len(), 3);
    assert_eq!(
        meter.take(),
        1 + 3 * 2,
        "disabled endpoints once, then a read and an update per record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    dispatcher_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    dispatcher_budgets(Arc::new(store), counter).await;
}

/// Disabled endpoints: the list is one query; enabling one again the query and one
/// transaction (the delete and the audit record).
async fn endpoint_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let s = TestServer::start(test_app(store.clone(), ManualClock::at(T0))).await;
    let url = "https://hooks.example.com/tollgate";
    store.disable_endpoint(url, T0).await.unwrap();
    meter.take();
    let r = s.admin("GET", "/admin/webhooks/disabled", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(meter.take(), 1, "disabled endpoints: one query");
    let path = "/admin/webhooks/disabled?url=https%3A%2F%2Fhooks.example.com%2Ftollgate";
    assert_eq!(s.admin("DELETE", path, None).await.status, 204);
    assert_eq!(meter.take(), 2, "enable: the query, the transaction");
    assert_eq!(s.admin("DELETE", path, None).await.status, 404);
    assert_eq!(meter.take(), 1, "not disabled: the query alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    endpoint_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    endpoint_budgets(Arc::new(store), counter).await;
}

/// An App Store renewal notification: note seen?, the purchase read, one transaction (the
/// record, its grants, its event and the day's counters), the note recorded. Its repeat is
/// the note read; a purchase.unattributed is one transaction more than the notes.
async fn apple_subscription_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    use tollgate_tests::apple::{apple_app, notification, sign, transaction};
    let s = TestServer::start(apple_app(store, ManualClock::at(T0))).await;
    let stamp = tollgate::clock::Clock::now_ms(&tollgate::clock::SystemClock);
    let otid = format!("5{stamp}");
    let t = |n: i64, signed: i64| {
        transaction(
            &format!("{otid}{n}"),
            &otid,
            "com.example.vip",
            signed,
            Some(T0 + 30 * DAY),
            signed,
        )
    };
    let notify = |jws: String| {
        let s = &s;
        async move {
            s.request(
                "POST",
                "/notifications/apple",
                &[("content-type", "application/json")],
                json!({"signedPayload": jws}).to_string(),
            )
            .await
        }
    };
    let first = t(0, T0 - 10);
    meter.take();
    let unattributed = notification("rt-a-0", "SUBSCRIBED", None, T0 - 10, Some(&first), None);
    assert_eq!(notify(unattributed).await.status, 200);
    assert_eq!(
        meter.take(),
        4,
        "unattributed: note read, purchase read, the event, the note"
    );
    let r = s
        .call(
            "rt-a",
            "POST",
            "/purchases/apple",
            Some(json!({"signed_transaction": sign(&first)})),
        )
        .await;
    assert_eq!(r.status, 200);
    meter.take();
    let renew = notification("rt-a-1", "DID_RENEW", None, T0, Some(&t(1, T0)), None);
    let r = notify(renew.clone()).await;
    assert_eq!(r.json()["result"], "granted");
    assert_eq!(
        meter.take(),
        4,
        "renewal: note read, purchase read, one transaction with its event and counters, the note"
    );
    assert_eq!(notify(renew).await.json()["result"], "duplicate");
    assert_eq!(meter.take(), 1, "repeat: the note read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_subscription_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    apple_subscription_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_subscription_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    apple_subscription_budgets(Arc::new(store), counter).await;
}

/// The first token for a paid grant counts its first access in the sessions write itself (a
/// transaction instead of a put): still two round trips; later tokens as before.
async fn first_access_budgets(store: Arc<dyn Store>, meter: Arc<dyn Meter>) {
    let clock = ManualClock::at(T0);
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["streams"].as_array_mut().unwrap().push(json!({
        "id": "main", "requires_any": ["channel:main"],
        "origin": "https://live.example.com/live/main.m3u8"
    }));
    let catalog = catalog.to_string();
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("CATALOG_JSON", catalog.as_str())],
    ))
    .await;
    s.buy("fa", "pass", Some("7d")).await;
    let token = |device: &'static str| {
        let s = &s;
        async move {
            let r = s
                .call(
                    "fa",
                    "POST",
                    "/streams/main/tokens",
                    Some(json!({ "device_id": device })),
                )
                .await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
    };
    meter.take();
    token("d1").await;
    assert_eq!(
        meter.take(),
        2,
        "first access: query, sessions write with the counters (one transaction)"
    );
    token("d2").await;
    assert_eq!(meter.take(), 2, "another device: query, sessions write");
    token("d1").await;
    assert_eq!(meter.take(), 1, "renewal: the query only");
    let r = s
        .admin("GET", "/admin/stats?from=2027-01-15&to=2027-01-15", None)
        .await;
    assert_eq!(r.json()["total"]["first_access"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_access_budgets_memory() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    first_access_budgets(counting.clone(), Arc::new(Calls(counting))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_access_budgets_dynamo() {
    let Some((store, counter)) = moto_store_counting().await else {
        return;
    };
    first_access_budgets(Arc::new(store), counter).await;
}
