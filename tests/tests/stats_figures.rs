//! `GET /admin/stats` figures on both stores: days in the operator's time zone (a payment a
//! minute before and after Shanghai's midnight lands on two days, which in UTC are one),
//! the breakdowns by product and provider, refunds taken out of net revenue, and dozens of
//! simultaneous payments with duplicate callbacks each counted once.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::{Clock, ManualClock};
use tollgate::domain::stats::StatsZone;
use tollgate::store::{MemoryStore, Store};
use tollgate_tests::*;

/// Shanghai's midnight between 2027-01-15 and 2027-01-16 (16:00 UTC on the 15th).
const SH_MIDNIGHT: i64 = T0 + 8 * 3600;

async fn zoned_store(backend: &Backend, zone: &str) -> Option<Arc<dyn Store>> {
    let zone = StatsZone::named(zone).expect("a known zone");
    match backend {
        Backend::Memory => Some(Arc::new(MemoryStore::new().with_stats_zone(zone))),
        Backend::Dynamo => moto_store()
            .await
            .map(|s| Arc::new(s.with_stats_zone(zone)) as Arc<dyn Store>),
    }
}

fn stats_ok(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Creates an order of `product` (and `plan`) for `user` at the app's time, unpaid.
async fn order(s: &TestServer, user: &str, product: &str, plan: Option<&str>) -> String {
    let mut body = json!({"product_id": product, "provider": "sandbox"});
    if let Some(p) = plan {
        body["plan_id"] = json!(p);
    }
    let r = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["order_id"].as_str().unwrap().to_owned()
}

/// Seeds the history both zones are checked against: 23:59 and 00:01 in Shanghai.
async fn seed(s: &TestServer, clock: &ManualClock) {
    clock.set(SH_MIDNIGHT - 60);
    s.buy("alice", "pass", Some("7d")).await; // 900
    order(s, "bob", "coins-100", None).await; // never paid
    clock.set(SH_MIDNIGHT + 60);
    s.buy("alice", "coins-100", None).await; // 600
    let carol = s.buy("carol", "pass", Some("7d")).await; // 900, refunded in full
    s.refund(&carol, 900).await;
}

async fn operators_day(backend: Backend) {
    let Some(store) = zoned_store(&backend, "Asia/Shanghai").await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app(store, clock.clone())).await;
    seed(&s, &clock).await;

    let r = stats_ok(
        &s.admin(
            "GET",
            "/admin/stats?from=2027-01-15&to=2027-01-16&by=product",
            None,
        )
        .await,
    );
    assert_eq!(r["time_zone"], "Asia/Shanghai");
    let (d15, d16) = (&r["days"][0], &r["days"][1]);
    assert_eq!(d15["day"], "2027-01-15");
    assert_eq!(
        (d15["orders_created"].clone(), d15["orders_paid"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(d15["conversion_rate"], 0.5);
    assert_eq!(d15["revenue"], json!({"CNY": 900}));
    assert_eq!(d15["net_revenue"], json!({"CNY": 900}));
    assert_eq!(d15["by"]["pass"]["orders_paid"], 1);
    assert_eq!(d15["by"]["coins-100"]["orders_created"], 1);
    assert_eq!(d15["by"]["coins-100"]["orders_paid"], 0);
    assert_eq!(d15["by"]["coins-100"]["conversion_rate"], 0.0);

    assert_eq!(d16["day"], "2027-01-16");
    assert_eq!(
        (d16["orders_created"].clone(), d16["orders_paid"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(d16["revenue"], json!({"CNY": 1500}));
    assert_eq!(d16["refunded"], json!({"CNY": 900}));
    assert_eq!(d16["net_revenue"], json!({"CNY": 600}));
    assert_eq!(d16["refunds"], 1);
    // alice paid the day before: a repeat payer; carol is new.
    assert_eq!(
        (
            d16["paying_users"].clone(),
            d16["new_payers"].clone(),
            d16["repeat_payers"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(d16["repurchase_rate"], 0.5);
    assert_eq!(d16["revenue_per_paying_user"], json!({"CNY": 750}));
    assert_eq!(d16["net_revenue_per_paying_user"], json!({"CNY": 300}));
    let pass16 = &d16["by"]["pass"];
    assert_eq!(
        (pass16["revenue"].clone(), pass16["net_revenue"].clone()),
        (json!({"CNY": 900}), json!({"CNY": 0}))
    );
    assert_eq!(d16["by"]["coins-100"]["net_revenue"], json!({"CNY": 600}));

    // The range: alice once among the paying users, and a repeat payer.
    let t = &r["total"];
    assert_eq!(t["day"], "2027-01-15..2027-01-16");
    assert_eq!(
        (t["orders_created"].clone(), t["orders_paid"].clone()),
        (json!(4), json!(3))
    );
    assert_eq!(
        (t["paying_users"].clone(), t["repeat_payers"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(t["net_revenue"], json!({"CNY": 1500}));
    assert_eq!(t["revenue_per_paying_user"], json!({"CNY": 1200}));
    assert_eq!(t["net_revenue_per_paying_user"], json!({"CNY": 750}));
    assert_eq!(t["by"]["pass"]["paying_users"], 2);
    assert_eq!(t["by"]["coins-100"]["paying_users"], 1);

    let p = stats_ok(
        &s.admin(
            "GET",
            "/admin/stats?from=2027-01-16&to=2027-01-16&by=provider",
            None,
        )
        .await,
    );
    assert_eq!(p["days"][0]["by"]["sandbox"]["orders_paid"], 2);
    assert_eq!(p["days"][0]["by"].as_object().unwrap().len(), 1);
    // Without `by`, no breakdown.
    let plain = stats_ok(
        &s.admin("GET", "/admin/stats?from=2027-01-16&to=2027-01-16", None)
            .await,
    );
    assert!(plain["days"][0].get("by").is_none());

    for bad in [
        "/admin/stats?from=2027-01-15&to=2027-01-16&by=",
        "/admin/stats?from=2027-01-15&to=2027-01-16&by=user",
        "/admin/stats?from=2027-01-16&to=2027-01-15",
        "/admin/stats?from=2027-1-15&to=2027-01-16",
        "/admin/stats?from=2027-01-01&to=2027-05-01",
    ] {
        s.admin("GET", bad, None).await.assert_problem(400);
    }
    // A viewer reads no figures.
    assert_eq!(
        s.call(
            "alice",
            "GET",
            "/admin/stats?from=2027-01-15&to=2027-01-16",
            None
        )
        .await
        .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_are_the_operators_memory() {
    operators_day(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_are_the_operators_dynamo() {
    operators_day(Backend::Dynamo).await;
}

/// The same history counted in UTC: both minutes are on the 15th.
async fn utc_day(backend: Backend) {
    let Some(store) = zoned_store(&backend, "UTC").await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[("STATS_TIME_ZONE", "UTC")],
    ))
    .await;
    seed(&s, &clock).await;
    let r = stats_ok(
        &s.admin("GET", "/admin/stats?from=2027-01-15&to=2027-01-16", None)
            .await,
    );
    assert_eq!(r["time_zone"], "UTC");
    assert_eq!(
        (
            r["days"][0]["orders_created"].clone(),
            r["days"][0]["orders_paid"].clone()
        ),
        (json!(4), json!(3))
    );
    assert_eq!(r["days"][1]["orders_created"], 0);
    assert_eq!(r["days"][0]["net_revenue"], json!({"CNY": 1500}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_utc_operator_sees_one_day_memory() {
    utc_day(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_utc_operator_sees_one_day_dynamo() {
    utc_day(Backend::Dynamo).await;
}

const USERS: usize = 6;
const ORDERS: usize = 30;
const DUPLICATES: usize = 3;

/// Thirty orders paid at once, each callback sent three times simultaneously: ninety
/// concurrent callbacks, thirty payments counted.
async fn concurrent(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = Arc::new(TestServer::start(test_app(store, clock.clone())).await);
    let mut orders = Vec::new();
    for i in 0..ORDERS {
        let user = format!("u{}", i % USERS);
        orders.push(order(&s, &user, "coins-100", None).await);
    }
    let now = clock.now();
    let mut tasks = tokio::task::JoinSet::new();
    for id in &orders {
        for _ in 0..DUPLICATES {
            let (s, id) = (s.clone(), id.clone());
            tasks.spawn(async move {
                let cb = json!({"order_id": id, "transaction_id": format!("txn-{id}"), "status": "paid",
                                "amount": {"amount": 600, "currency": "CNY"}, "timestamp": now});
                s.sandbox_callback(&cb).await.status
            });
        }
    }
    let mut statuses = Vec::new();
    while let Some(r) = tasks.join_next().await {
        statuses.push(r.unwrap());
    }
    assert_eq!(statuses.len(), ORDERS * DUPLICATES);
    assert!(statuses.iter().all(|st| *st == 200), "{statuses:?}");
    let r = stats_ok(
        &s.admin(
            "GET",
            "/admin/stats?from=2027-01-15&to=2027-01-15&by=product",
            None,
        )
        .await,
    );
    let d = &r["days"][0];
    assert_eq!(
        (d["orders_created"].clone(), d["orders_paid"].clone()),
        (json!(ORDERS), json!(ORDERS))
    );
    assert_eq!(d["revenue"], json!({"CNY": 600 * ORDERS}));
    assert_eq!(d["paying_users"], USERS);
    assert_eq!(d["repeat_payers"], USERS);
    assert_eq!(d["new_payers"], USERS);
    assert_eq!(d["by"]["coins-100"]["orders_paid"], ORDERS);
    assert_eq!(
        d["revenue_per_paying_user"],
        json!({"CNY": 600 * ORDERS / USERS})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_payments_and_duplicates_count_once_memory() {
    concurrent(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_payments_and_duplicates_count_once_dynamo() {
    concurrent(Backend::Dynamo).await;
}

/// A partial refund that keeps access still takes its money out of the day's net revenue;
/// it is not a refund of the order (that stays PAID and watchable).
async fn partial_refunds_are_refunded_money(backend: Backend) {
    let Some(store) = zoned_store(&backend, "Asia/Shanghai").await else {
        return;
    };
    let clock = ManualClock::at(SH_MIDNIGHT + 3600);
    let s = TestServer::start(test_app(store, clock.clone())).await;
    let dave = s.buy("dave", "pass", Some("7d")).await; // 900
    s.refund(&dave, 300).await;
    let e = s
        .call("dave", "GET", "/entitlements/pass", None)
        .await
        .json();
    assert_eq!(e["can_use"], true, "a partial refund keeps access: {e}");
    let r = stats_ok(
        &s.admin(
            "GET",
            "/admin/stats?from=2027-01-16&to=2027-01-16&by=product",
            None,
        )
        .await,
    );
    let d = &r["days"][0];
    assert_eq!(d["revenue"], json!({"CNY": 900}));
    assert_eq!(d["refunded"], json!({"CNY": 300}));
    assert_eq!(d["net_revenue"], json!({"CNY": 600}));
    assert_eq!(d["refunds"], 0, "the order is still paid");
    assert_eq!(d["by"]["pass"]["net_revenue"], json!({"CNY": 600}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds_are_refunded_money_memory() {
    partial_refunds_are_refunded_money(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds_are_refunded_money_dynamo() {
    partial_refunds_are_refunded_money(Backend::Dynamo).await;
}
