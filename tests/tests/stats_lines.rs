//! `GET /admin/stats?by=line` on both stores: a business line's figures are the sum of its
//! products' (read from the per-product counters, grouped by the catalog in force), every
//! line of the catalog is listed, and the total is the same as without a breakdown.

use serde_json::{json, Value};
use tollgate::clock::ManualClock;
use tollgate_tests::*;

/// The test catalog with three lines: the pass and the concert, coins, the store
/// subscriptions.
fn lined_catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    c["lines"] = json!([
        {"id": "shows", "products": {"ids": ["pass", "concert"]}},
        {"id": "coins", "products": {"prefix": "coins-"}},
        {"id": "club", "products": {"pattern": "vip*"}},
    ]);
    c.to_string()
}

fn ok(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

const SUMMED: [&str; 7] = [
    "orders_created",
    "orders_paid",
    "late_payments",
    "refunds",
    "revenue",
    "refunded",
    "net_revenue",
];

/// Adds two figures' counter fields (integers, or per-currency maps).
fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => json!(x.as_i64().unwrap() + y.as_i64().unwrap()),
        (Value::Object(x), Value::Object(y)) => {
            let mut out = x.clone();
            for (k, v) in y {
                let sum = out.get(k).and_then(Value::as_i64).unwrap_or(0) + v.as_i64().unwrap();
                out.insert(k.clone(), json!(sum));
            }
            Value::Object(out)
        }
        _ => panic!("cannot add {a} and {b}"),
    }
}

async fn by_line(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let catalog = lined_catalog();
    let s = TestServer::start(test_app_with(
        store,
        clock.clone(),
        &[
            ("CATALOG_JSON", catalog.as_str()),
            ("STATS_TIME_ZONE", "UTC"),
        ],
    ))
    .await;
    s.buy("alice", "pass", Some("7d")).await; // 900
    let concert = s.buy("bob", "concert", None).await; // 1800, refunded
    s.refund(&concert, 1800).await;
    clock.advance(60);
    s.buy("alice", "coins-100", None).await; // 600, her second payment
    s.buy("carol", "pass", Some("30d")).await; // 3000
    let unpaid = s
        .call(
            "dave",
            "POST",
            "/orders",
            Some(json!({"product_id": "coins-100", "provider": "sandbox"})),
        )
        .await;
    assert_eq!(unpaid.status, 201);

    let q = "/admin/stats?from=2027-01-15&to=2027-01-15";
    let lines = ok(&s.admin("GET", &format!("{q}&by=line"), None).await);
    let products = ok(&s.admin("GET", &format!("{q}&by=product"), None).await);
    let plain = ok(&s.admin("GET", q, None).await);
    let (ld, pd) = (&lines["days"][0], &products["days"][0]);
    let names: Vec<&String> = ld["by"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["club", "coins", "shows"]);
    // Each line's counters are its products' added up.
    for (line, members) in [
        ("shows", &["pass", "concert"][..]),
        ("coins", &["coins-100"]),
    ] {
        for field in SUMMED {
            let sum = members
                .iter()
                .map(|p| pd["by"][*p][field].clone())
                .reduce(|a, b| add(&a, &b))
                .unwrap();
            assert_eq!(ld["by"][line][field], sum, "{line} {field}");
        }
    }
    let shows = &ld["by"]["shows"];
    assert_eq!(
        (
            shows["orders_created"].clone(),
            shows["orders_paid"].clone()
        ),
        (json!(3), json!(3))
    );
    assert_eq!(shows["revenue"], json!({"CNY": 5700}));
    assert_eq!(shows["net_revenue"], json!({"CNY": 3900}));
    assert_eq!(shows["refunds"], 1);
    // alice, bob and carol paid for shows; alice also for coins, her second payment.
    assert_eq!(shows["paying_users"], 3);
    let coins = &ld["by"]["coins"];
    assert_eq!(
        (
            coins["orders_created"].clone(),
            coins["orders_paid"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(coins["conversion_rate"], 0.5);
    assert_eq!(
        (
            coins["paying_users"].clone(),
            coins["repeat_payers"].clone()
        ),
        (json!(1), json!(1))
    );
    // A line with nothing sold is listed with nothing counted.
    assert_eq!(ld["by"]["club"]["orders_created"], 0);
    assert_eq!(ld["by"]["club"]["conversion_rate"], Value::Null);
    // The total is the same with or without the breakdown, and the range's total has it too.
    let mut total = ld.clone();
    total.as_object_mut().unwrap().remove("by");
    assert_eq!(total, plain["days"][0]);
    assert_eq!(lines["total"]["by"]["shows"]["orders_paid"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_is_its_products_memory() {
    by_line(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_is_its_products_dynamo() {
    by_line(Backend::Dynamo).await;
}

/// Without `lines` in the catalog, everything is the one `default` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_default_line_without_lines() {
    let store = store_for(Backend::Memory).await.unwrap();
    let s = TestServer::start(test_app(store, ManualClock::at(T0))).await;
    s.buy("alice", "pass", Some("7d")).await;
    let r = ok(&s
        .admin(
            "GET",
            "/admin/stats?from=2027-01-15&to=2027-01-16&by=line",
            None,
        )
        .await);
    let by = r["total"]["by"].as_object().unwrap();
    assert_eq!(by.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(by["default"]["orders_paid"], 1);
}
