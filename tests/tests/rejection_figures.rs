//! Refused callbacks as daily figures, on both stores: counted per provider and reason on
//! an item of their own, one update per refusal (never more round trips), while genuine
//! payments land at the same time; a failure to count changes nothing the provider sees. The
//! app stores' refused notifications are counted the same way.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::OrderId;
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::*;

const PAID: usize = 10;
const FORGED: usize = 30;
const UNKNOWN: usize = 5;

/// A callback signed with the wrong key.
async fn forged(s: &TestServer, i: usize) -> Reply {
    let body = json!({"order_id": OrderId::from_parts(1, [i as u8; 10]).as_str(),
                      "transaction_id": format!("forged-{i}"), "status": "paid",
                      "amount": {"amount": 600, "currency": "CNY"}, "timestamp": T0});
    s.request(
        "POST",
        "/callbacks/sandbox",
        &[
            ("x-sandbox-signature", "00112233445566778899aabbccddeeff"),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

/// A genuinely signed callback for an order that does not exist.
fn unknown(i: usize) -> Value {
    json!({"order_id": OrderId::from_parts(2, [i as u8; 10]).as_str(),
           "transaction_id": format!("unknown-{i}"), "status": "paid",
           "amount": {"amount": 600, "currency": "CNY"}, "timestamp": T0})
}

async fn counted(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let s = Arc::new(
        TestServer::start(test_app_with(
            store,
            ManualClock::at(T0),
            &[("STATS_TIME_ZONE", "UTC")],
        ))
        .await,
    );
    let mut orders = Vec::new();
    for i in 0..PAID {
        let body = json!({"product_id": "coins-100", "provider": "sandbox"});
        let r = s
            .call(&format!("u{i}"), "POST", "/orders", Some(body))
            .await;
        assert_eq!(r.status, 201);
        orders.push(r.json()["order_id"].as_str().unwrap().to_owned());
    }
    // Genuine payments, forged callbacks and callbacks for unknown orders, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for id in orders {
        let s = s.clone();
        tasks.spawn(async move {
            let cb = json!({"order_id": id, "transaction_id": format!("txn-{id}"), "status": "paid",
                            "amount": {"amount": 600, "currency": "CNY"}, "timestamp": T0});
            ("paid", s.sandbox_callback(&cb).await.status)
        });
    }
    for i in 0..FORGED {
        let s = s.clone();
        tasks.spawn(async move { ("forged", forged(&s, i).await.status) });
    }
    for i in 0..UNKNOWN {
        let s = s.clone();
        tasks.spawn(async move { ("unknown", s.sandbox_callback(&unknown(i)).await.status) });
    }
    while let Some(r) = tasks.join_next().await {
        let (kind, status) = r.unwrap();
        match kind {
            "paid" => assert_eq!(status, 200),
            "unknown" => assert_eq!(status, 404),
            _ => assert!((400..500).contains(&status), "forged: {status}"),
        }
    }
    let r = s
        .admin("GET", "/admin/stats?from=2027-01-15&to=2027-01-15", None)
        .await;
    assert_eq!(r.status, 200);
    let d = &r.json()["days"][0];
    assert_eq!(d["orders_paid"], PAID);
    let sandbox = &d["rejections"]["sandbox"];
    assert_eq!(sandbox["total"], FORGED + UNKNOWN, "{d}");
    let reasons = sandbox["reasons"].as_object().unwrap();
    assert_eq!(reasons["unknown_order"], UNKNOWN);
    let forged_total: i64 = reasons
        .iter()
        .filter(|(k, _)| *k != "unknown_order")
        .map(|(_, v)| v.as_i64().unwrap())
        .sum();
    assert_eq!(forged_total, FORGED as i64, "{reasons:?}");
    // The range's total adds the days; another day has none.
    let r = s
        .admin("GET", "/admin/stats?from=2027-01-14&to=2027-01-15", None)
        .await
        .json();
    assert_eq!(r["days"][0]["rejections"], json!({}));
    assert_eq!(r["total"]["rejections"], d["rejections"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_are_counted_beside_payments_memory() {
    counted(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_are_counted_beside_payments_dynamo() {
    counted(Backend::Dynamo).await;
}

/// One update per refusal; when it fails, the provider's answer is the same.
#[tokio::test]
async fn counting_costs_one_round_trip_and_never_changes_the_answer() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    let s = TestServer::start(test_app(counting.clone(), ManualClock::at(T0))).await;
    counting.take();
    let first = forged(&s, 1).await;
    let calls = counting.take();
    assert_eq!(calls.get("count_rejection"), Some(&1), "{calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 1, "forged: {calls:?}");
    let unknown_answer = s.sandbox_callback(&unknown(1)).await;
    let calls = counting.take();
    assert_eq!(calls.get("count_rejection"), Some(&1), "{calls:?}");
    assert_eq!(
        calls.values().sum::<u64>(),
        2,
        "unknown order: read, count: {calls:?}"
    );

    counting.fail_next("count_rejection", 2);
    let second = forged(&s, 1).await;
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    let again = s.sandbox_callback(&unknown(1)).await;
    assert_eq!(
        (again.status, &again.body),
        (unknown_answer.status, &unknown_answer.body)
    );
    let r = s
        .admin("GET", "/admin/stats?from=2027-01-15&to=2027-01-15", None)
        .await
        .json();
    assert_eq!(
        r["days"][0]["rejections"]["sandbox"]["total"], 2,
        "the failed counts are lost, nothing else"
    );
}

/// The app stores' notifications refused (Apple's signed payloads that do not verify or are
/// not this app's, Pub/Sub pushes without a valid token or with a body that is not a Play
/// notification) are counted like refused callbacks, by the same codes as the metric, each
/// with the answer it always got; genuine ones are not.
async fn store_notifications_counted(backend: Backend) {
    use tollgate_tests::apple;
    use tollgate_tests::fake_google::{self, FakeGoogle};
    let Some(store) = store_for(backend).await else {
        return;
    };
    let play = FakeGoogle::start().await;
    let mut vars = play.vars();
    vars.extend(apple::apple_vars("Production", "root.pem"));
    vars.retain(|(k, _)| *k != "PROVIDERS");
    vars.push(("PROVIDERS", "sandbox,apple,google".into()));
    vars.push(("STATS_TIME_ZONE", "UTC".into()));
    let counting = CountingStore::new(store);
    let s = TestServer::start(apple::apple_app_with(
        counting.clone(),
        ManualClock::at(T0),
        &vars,
    ))
    .await;
    let post = |path: &'static str, auth: Option<String>, body: String| {
        let s = &s;
        async move {
            let mut headers = vec![("content-type", "application/json".to_owned())];
            if let Some(a) = auth {
                headers.push(("authorization", format!("Bearer {a}")));
            }
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.request("POST", path, &h, body).await
        }
    };
    let apple_body = |jws: &str| json!({ "signedPayload": jws }).to_string();

    // Apple: genuine (acknowledged, not counted), tampered, another app's, not a body at all.
    let genuine = apple::notification("n-1", "TEST", None, T0, None, None);
    let r = post("/notifications/apple", None, apple_body(&genuine)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let tampered = apple::with_payload(
        &genuine,
        &json!({"notificationType": "REFUND", "notificationUUID": "n-1", "signedDate": T0 * 1000}),
    );
    counting.take();
    let r = post("/notifications/apple", None, apple_body(&tampered)).await;
    assert_eq!(r.status, 400);
    let calls = counting.take();
    assert_eq!(calls.get("count_rejection"), Some(&1), "{calls:?}");
    assert_eq!(
        calls.values().sum::<u64>(),
        1,
        "a refusal's one update: {calls:?}"
    );
    let other_app = apple::sign(&json!({
        "notificationType": "TEST", "notificationUUID": "n-2", "version": "2.0",
        "signedDate": T0 * 1000,
        "data": {"appAppleId": 1, "bundleId": "com.example.other", "environment": "Production"},
    }));
    let r = post("/notifications/apple", None, apple_body(&other_app)).await;
    assert_eq!(r.status, 400);
    let r = post("/notifications/apple", None, "{}".into()).await;
    assert_eq!(r.status, 400);

    // Google: genuine, no token, a body that is not a Play notification.
    let token = || {
        Some(fake_google::push_token(
            "push_key.pem",
            fake_google::AUDIENCE,
            fake_google::PUSH_ACCOUNT,
        ))
    };
    let test_note = json!({"version": "1.0", "packageName": fake_google::PACKAGE,
                           "eventTimeMillis": (T0 * 1000).to_string(),
                           "testNotification": {"version": "1.0"}});
    let body = fake_google::push_body("m-1", &test_note);
    assert_eq!(
        post("/notifications/google", token(), body.clone())
            .await
            .status,
        200
    );
    assert_eq!(post("/notifications/google", None, body).await.status, 401);
    let not_play = json!({"message": {"data": "bm90IGpzb24=", "messageId": "m-2"},
                          "subscription": "projects/p/subscriptions/s"});
    let r = post("/notifications/google", token(), not_play.to_string()).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));

    let r = s
        .admin("GET", "/admin/stats?from=2027-01-15&to=2027-01-15", None)
        .await
        .json();
    let rejections = &r["days"][0]["rejections"];
    assert_eq!(
        rejections["apple"],
        json!({"total": 3, "reasons": {"signature": 1, "bundle_id": 1, "malformed": 1}}),
        "{rejections}"
    );
    assert_eq!(
        rejections["google"],
        json!({"total": 2, "reasons": {"push_token": 1, "malformed": 1}}),
        "{rejections}"
    );
}

#[tokio::test]
async fn store_notification_refusals_are_counted_memory() {
    store_notifications_counted(Backend::Memory).await;
}

#[tokio::test]
async fn store_notification_refusals_are_counted_dynamo() {
    store_notifications_counted(Backend::Dynamo).await;
}
