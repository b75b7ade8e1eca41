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

    // Operators against abuse: each admin change is one write; a publish check one read.
    let r = s
        .admin("POST", "/admin/streams/concert/publish-key", None)
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(meter.take(), 1, "rotate a publish key: one UpdateItem");
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
    assert_eq!(meter.take(), 1, "ban: one PutItem in the user's partition");
    let r = s
        .admin("DELETE", "/admin/users/rt/bans/concert", None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(meter.take(), 1, "unban: one conditional DeleteItem");

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
        16 + 2 * 2,
        "sweep: 16 index queries + read and expire each of 2 orders"
    );
    let r = sweep(&s.app, i64::MAX).await;
    assert_eq!(r.examined, 0);
    assert_eq!(
        meter.take(),
        16,
        "an idle sweep costs only the 16 index queries"
    );
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
