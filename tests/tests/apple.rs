//! App Store: signed-data verification as Apple's own library decides it, pre-orders with an
//! appAccountToken, purchases and notifications over HTTP, ordering and dedupe, and exactly
//! one grant per transaction under concurrent duplicates on both stores.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::providers::apple::wire::{AppleRejection, Environment, JwsError};
use tollgate::store::Store;
use tollgate_tests::apple::*;
use tollgate_tests::*;

fn verifier(vars: &[(&'static str, String)]) -> Arc<tollgate::app::App> {
    apple_app_with(
        Arc::new(tollgate::store::MemoryStore::new()),
        ManualClock::at(T0),
        vars,
    )
}

fn vip_txn(signed: i64) -> Value {
    transaction(
        "1000",
        "1000",
        "com.example.vip",
        T0 - 60,
        Some(T0 + 30 * DAY),
        signed,
    )
}

#[test]
fn verification_matrix_matches_apples_library() {
    let app = verifier(&apple_vars("Production", "root.pem"));
    let apple = app.apple.as_ref().unwrap();
    let payload = vip_txn(T0);
    let valid = sign(&payload);
    let t = apple
        .verify_transaction(&valid)
        .expect("valid chain accepted");
    assert_eq!(t.transaction_id, "1000");

    let chain =
        |key: &str, chain: &[&str]| apple.verify_transaction(&sign_with(key, chain, &payload));
    // The x5c root is not trusted by itself: the intermediate must chain to a configured root.
    let other = verifier(&apple_vars("Production", "other_root.pem"));
    assert!(matches!(
        other.apple.as_ref().unwrap().verify_transaction(&valid),
        Err(AppleRejection::Jws(JwsError::Chain(_)))
    ));
    assert!(matches!(
        chain("leaf_nooid", &["leaf_nooid", "intermediate", "root"]),
        Err(AppleRejection::Jws(JwsError::Chain(_)))
    ));
    assert!(matches!(
        chain(
            "leaf_under_nooid",
            &["leaf_under_nooid", "intermediate_nooid", "root"]
        ),
        Err(AppleRejection::Jws(JwsError::Chain(_)))
    ));
    assert_eq!(
        chain("leaf", &["leaf", "intermediate"]),
        Err(AppleRejection::Jws(JwsError::ChainLength))
    );
    assert_eq!(
        chain("leaf", &["leaf", "intermediate", "root", "root"]),
        Err(AppleRejection::Jws(JwsError::ChainLength))
    );
    // Leaf signed by a different intermediate than the one presented.
    assert!(matches!(
        chain("leaf", &["leaf", "intermediate_nooid", "root"]),
        Err(AppleRejection::Jws(JwsError::Chain(_)))
    ));
    // Validity is checked at signedDate: the 30-day leaf is expired at T0 but was valid
    // when it was made.
    assert!(matches!(
        chain("leaf_expired", &["leaf_expired", "intermediate", "root"]),
        Err(AppleRejection::Jws(JwsError::Chain(_)))
    ));
    // Signed while the short-lived leaf was valid (read from the certificate, not the
    // calendar: the test must pass after the leaf has expired too).
    let (leaf_from, _) = certificate_validity("leaf_expired");
    let early = transaction(
        "1001",
        "1001",
        "com.example.vip",
        T0 - 60,
        Some(T0),
        leaf_from + 60,
    );
    assert!(apple
        .verify_transaction(&sign_with(
            "leaf_expired",
            &["leaf_expired", "intermediate", "root"],
            &early
        ))
        .is_ok());

    let mut wrong_bundle = payload.clone();
    wrong_bundle["bundleId"] = json!("com.example.other");
    assert_eq!(
        apple.verify_transaction(&sign(&wrong_bundle)),
        Err(AppleRejection::BundleId)
    );
    let mut sandbox = payload.clone();
    sandbox["environment"] = json!("Sandbox");
    assert_eq!(
        apple.verify_transaction(&sign(&sandbox)),
        Err(AppleRejection::Environment(Environment::Sandbox))
    );
    let both = verifier(&apple_vars("Production,Sandbox", "root.pem"));
    assert!(both
        .apple
        .as_ref()
        .unwrap()
        .verify_transaction(&sign(&sandbox))
        .is_ok());

    let mut h = header_of(&valid);
    for alg in ["ES384", "HS256", "none", "RS256"] {
        h["alg"] = json!(alg);
        assert_eq!(
            apple.verify_transaction(&with_header(&valid, &h)),
            Err(AppleRejection::Jws(JwsError::Algorithm)),
            "{alg}"
        );
    }
    let mut tampered = payload.clone();
    tampered["expiresDate"] = json!((T0 + 3650 * DAY) * 1000);
    assert_eq!(
        apple.verify_transaction(&with_payload(&valid, &tampered)),
        Err(AppleRejection::Jws(JwsError::Signature))
    );
    // Notifications are identified by `data` or `summary`, as in Apple's library.
    let note = |body: Value| apple.verify_notification(&sign(&body));
    let base =
        json!({"notificationType": "TEST", "notificationUUID": "u", "signedDate": T0 * 1000});
    assert_eq!(note(base.clone()).unwrap_err(), AppleRejection::BundleId);
    let mut summary = base.clone();
    summary["summary"] =
        json!({"bundleId": BUNDLE, "appAppleId": APP_APPLE_ID, "environment": "Production"});
    assert!(note(summary.clone()).is_ok());
    summary["summary"]["appAppleId"] = json!(1);
    assert_eq!(note(summary).unwrap_err(), AppleRejection::AppAppleId);
    let mut data = base.clone();
    data["data"] =
        json!({"bundleId": BUNDLE, "appAppleId": APP_APPLE_ID, "environment": "Sandbox"});
    assert_eq!(
        note(data.clone()).unwrap_err(),
        AppleRejection::Environment(Environment::Sandbox)
    );
    data["data"]["environment"] = json!("Production");
    data["data"]["bundleId"] = json!("com.example.other");
    assert_eq!(note(data).unwrap_err(), AppleRejection::BundleId);
    assert!(apple.verify_transaction("not.a.jws").is_err());
    assert!(apple.verify_transaction(&valid.replace('.', "")).is_err());
}

fn now_s() -> i64 {
    use tollgate::clock::Clock;
    tollgate::clock::SystemClock.now()
}

async fn server(store: Arc<dyn Store>) -> (TestServer, ManualClock) {
    let clock = ManualClock::at(T0);
    (
        TestServer::start(apple_app(store, clock.clone())).await,
        clock,
    )
}

async fn order(s: &TestServer, user: &str, product: &str) -> (String, String) {
    let r = s
        .call(
            user,
            "POST",
            "/orders",
            Some(json!({"product_id": product, "provider": "apple"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    let token = o["payment"]["app_account_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 36);
    assert!(o["payment"]["store_product_id"].is_string(), "{o}");
    (o["order_id"].as_str().unwrap().to_owned(), token)
}

async fn purchase(s: &TestServer, user: &str, jws: &str) -> tollgate_tests::Reply {
    s.call(
        user,
        "POST",
        "/purchases/apple",
        Some(json!({"signed_transaction": jws})),
    )
    .await
}

async fn notify(s: &TestServer, jws: &str) -> Value {
    let r = s
        .request(
            "POST",
            "/notifications/apple",
            &[("content-type", "application/json")],
            json!({"signedPayload": jws}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn vip_until(s: &TestServer, user: &str) -> Option<String> {
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
async fn subscription_lifecycle_over_http() {
    let (s, clock) = server(store_for(Backend::Memory).await.unwrap()).await;
    let (order_id, token) = order(&s, "ann", "vip").await;
    let mut t = vip_txn(T0);
    t["appAccountToken"] = json!(token);
    let r = purchase(&s, "ann", &sign(&t)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "granted");
    assert_eq!(r.json()["order_id"], json!(order_id));
    assert_eq!(vip_until(&s, "ann").await, at(T0 + 30 * DAY));
    let o = s
        .call("ann", "GET", &format!("/orders/{order_id}"), None)
        .await
        .json();
    assert_eq!(o["state"], "PAID");
    // Someone else replaying the same signed transaction gets nothing.
    purchase(&s, "mallory", &sign(&t)).await.assert_problem(409);
    assert_eq!(vip_until(&s, "mallory").await, None);

    // Renewal extends; a duplicate delivery of it is recognised.
    let mut renewed = transaction(
        "1001",
        "1000",
        "com.example.vip",
        T0 + 30 * DAY,
        Some(T0 + 60 * DAY),
        T0 + 30 * DAY,
    );
    renewed["appAccountToken"] = json!(token);
    let n = notification(
        "n-renew",
        "DID_RENEW",
        None,
        T0 + 30 * DAY,
        Some(&renewed),
        None,
    );
    assert_eq!(notify(&s, &n).await["result"], "granted");
    assert_eq!(notify(&s, &n).await["result"], "duplicate");
    assert_eq!(vip_until(&s, "ann").await, at(T0 + 60 * DAY));

    // Billing fails with a grace period: access continues to the grace date.
    clock.set(T0 + 60 * DAY + 10);
    let grace_end = T0 + 76 * DAY;
    let fail = notification(
        "n-fail",
        "DID_FAIL_TO_RENEW",
        Some("GRACE_PERIOD"),
        T0 + 60 * DAY + 5,
        Some(&renewed),
        Some(&renewal("1000", Some(grace_end), T0 + 60 * DAY + 5)),
    );
    assert_eq!(notify(&s, &fail).await["result"], "grace");
    assert_eq!(vip_until(&s, "ann").await, at(grace_end));
    let e = s.call("ann", "GET", "/entitlements/vip", None).await.json();
    assert_eq!(e["can_use"], true);

    // Grace expires: access ends at the grace date.
    clock.set(grace_end + 10);
    let gone = notification(
        "n-grace-expired",
        "GRACE_PERIOD_EXPIRED",
        None,
        grace_end + 5,
        Some(&renewed),
        Some(&renewal("1000", Some(grace_end), grace_end + 5)),
    );
    assert_eq!(notify(&s, &gone).await["result"], "expired");
    assert_eq!(
        s.call("ann", "GET", "/entitlements/vip", None).await.json()["can_use"],
        false
    );
}

#[tokio::test]
async fn refund_revokes_at_once_and_late_renewals_never_undo_it() {
    let (s, _) = server(store_for(Backend::Memory).await.unwrap()).await;
    // No pre-order: the purchase binds to the caller.
    let t = vip_txn(T0);
    assert_eq!(
        purchase(&s, "bo", &sign(&t)).await.json()["status"],
        "granted"
    );
    assert_eq!(vip_until(&s, "bo").await, at(T0 + 30 * DAY));

    let renewed = transaction(
        "1001",
        "1000",
        "com.example.vip",
        T0 + 100,
        Some(T0 + 60 * DAY),
        T0 + 100,
    );
    let mut refunded = renewed.clone();
    refunded["revocationDate"] = json!((T0 + 200) * 1000);
    refunded["revocationReason"] = json!(0);
    // The refund arrives first; the renewal signed before it arrives late.
    let refund = notification("n-refund", "REFUND", None, T0 + 200, Some(&refunded), None);
    assert_eq!(notify(&s, &refund).await["result"], "revoked");
    assert_eq!(vip_until(&s, "bo").await, None, "revoked at once");
    let late = notification(
        "n-late-renew",
        "DID_RENEW",
        None,
        T0 + 100,
        Some(&renewed),
        None,
    );
    assert_eq!(notify(&s, &late).await["result"], "duplicate");
    assert_eq!(vip_until(&s, "bo").await, None);
    // The client re-posting the older signed transaction changes nothing either.
    assert_eq!(
        purchase(&s, "bo", &sign(&t)).await.json()["status"],
        "duplicate"
    );
    assert_eq!(vip_until(&s, "bo").await, None);
    // REFUND_REVERSED (signed later, transaction no longer revoked) restores access.
    let reversed = transaction(
        "1001",
        "1000",
        "com.example.vip",
        T0 + 100,
        Some(T0 + 60 * DAY),
        T0 + 300,
    );
    let n = notification(
        "n-reversed",
        "REFUND_REVERSED",
        None,
        T0 + 300,
        Some(&reversed),
        None,
    );
    assert_eq!(notify(&s, &n).await["result"], "granted");
    assert_eq!(vip_until(&s, "bo").await, at(T0 + 60 * DAY));
    // REVOKE (family sharing ended) revokes again.
    let mut revoked = reversed.clone();
    revoked["revocationDate"] = json!((T0 + 400) * 1000);
    let n = notification("n-revoke", "REVOKE", None, T0 + 400, Some(&revoked), None);
    assert_eq!(notify(&s, &n).await["result"], "revoked");
    assert_eq!(vip_until(&s, "bo").await, None);
}

#[tokio::test]
async fn a_crossgrade_revokes_the_scopes_the_new_product_lacks() {
    let (s, _) = server(store_for(Backend::Memory).await.unwrap()).await;
    let plus = transaction(
        "5000",
        "5000",
        "com.example.vipplus",
        T0 - 60,
        Some(T0 + 30 * DAY),
        T0,
    );
    assert_eq!(
        purchase(&s, "flo", &sign(&plus)).await.json()["status"],
        "granted"
    );
    let scopes = |e: Value| -> Vec<String> {
        let mut v: Vec<String> = e["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["scope"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        scopes(s.call("flo", "GET", "/entitlements", None).await.json()),
        ["channel:plus", "channel:vip"]
    );
    let down = transaction(
        "5001",
        "5000",
        "com.example.vip",
        T0 + 100,
        Some(T0 + 60 * DAY),
        T0 + 100,
    );
    let n = notification("n-cross", "DID_RENEW", None, T0 + 100, Some(&down), None);
    assert_eq!(notify(&s, &n).await["result"], "granted");
    assert_eq!(
        scopes(s.call("flo", "GET", "/entitlements", None).await.json()),
        ["channel:vip"]
    );
    assert_eq!(vip_until(&s, "flo").await, at(T0 + 60 * DAY));
}

#[tokio::test]
async fn other_notifications_are_recorded_and_acknowledged() {
    let (s, _) = server(store_for(Backend::Memory).await.unwrap()).await;
    let t = vip_txn(T0);
    for kind in ["TEST", "CONSUMPTION_REQUEST", "SOMETHING_NEW_FROM_APPLE"] {
        let n = notification(&format!("n-{kind}"), kind, None, T0, Some(&t), None);
        assert_eq!(notify(&s, &n).await["result"], "recorded", "{kind}");
        assert_eq!(notify(&s, &n).await["result"], "duplicate", "{kind}");
    }
    // An unknown owner (no token, no purchase yet) is recorded, not guessed.
    let n = notification("n-sub", "SUBSCRIBED", None, T0, Some(&t), None);
    assert_eq!(notify(&s, &n).await["result"], "unattributed");
    // Forged or foreign notifications are refused, so nothing is recorded for them.
    let forged = sign_with(
        "leaf_nooid",
        &["leaf_nooid", "intermediate", "root"],
        &json!({
            "notificationType": "TEST", "notificationUUID": "n-forged", "signedDate": T0 * 1000,
        }),
    );
    let r = s
        .request(
            "POST",
            "/notifications/apple",
            &[("content-type", "application/json")],
            json!({"signedPayload": forged}).to_string(),
        )
        .await;
    r.assert_problem(400);
    let r = s
        .request(
            "POST",
            "/notifications/apple",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    r.assert_problem(400);
}

#[tokio::test]
async fn one_time_purchase_credits_once_and_refund_takes_them_back() {
    let (s, _) = server(store_for(Backend::Memory).await.unwrap()).await;
    let (order_id, token) = order(&s, "cy", "coins-100").await;
    let mut t = transaction("2000", "2000", "com.example.coins100", T0 - 5, None, T0);
    t["appAccountToken"] = json!(token);
    let jws = sign(&t);
    assert_eq!(purchase(&s, "cy", &jws).await.json()["status"], "granted");
    assert_eq!(purchase(&s, "cy", &jws).await.json()["status"], "duplicate");
    assert_eq!(credits(&s, "cy").await, 100);
    // The order's owner only: another user cannot claim it with the token.
    purchase(&s, "eve", &jws).await.assert_problem(409);
    let mut refunded = t.clone();
    refunded["revocationDate"] = json!((T0 + 50) * 1000);
    let n = notification(
        "n-coins-refund",
        "REFUND",
        None,
        T0 + 50,
        Some(&refunded),
        None,
    );
    assert_eq!(notify(&s, &n).await["result"], "refunded");
    assert_eq!(credits(&s, "cy").await, 0);
    let o = s
        .call("cy", "GET", &format!("/orders/{order_id}"), None)
        .await
        .json();
    assert_eq!(o["state"], "REFUNDED");
    // A late ONE_TIME_CHARGE for the same transaction never re-credits.
    let n = notification(
        "n-coins-late",
        "ONE_TIME_CHARGE",
        None,
        T0 + 10,
        Some(&t),
        None,
    );
    assert_eq!(notify(&s, &n).await["result"], "refunded");
    assert_eq!(credits(&s, "cy").await, 0);
    // Orders for products the App Store does not sell are refused.
    let r = s
        .call(
            "cy",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "apple"})),
        )
        .await;
    r.assert_problem(400);
}

async fn concurrent_duplicates(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (s, _) = server(store).await;
    let s = Arc::new(s);
    let stamp = now_s();
    // One-time: 64 concurrent posts of one transaction, half through the pre-order token.
    let (_, token) = order(&s, "dup", "coins-100").await;
    let mut t = transaction(
        &format!("3{stamp}"),
        &format!("3{stamp}"),
        "com.example.coins100",
        T0 - 5,
        None,
        T0,
    );
    t["appAccountToken"] = json!(token);
    let jws = sign(&t);
    // Subscription: 64 concurrent posts and notifications of one signed state.
    let sub = transaction(
        &format!("4{stamp}"),
        &format!("4{stamp}"),
        "com.example.vip",
        T0 - 5,
        Some(T0 + DAY),
        T0,
    );
    let sub_jws = sign(&sub);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        let (jws, sub_jws) = (jws.clone(), sub_jws.clone());
        tasks.push(tokio::spawn(async move {
            let a = purchase(&s, "dup", &jws).await;
            let b = purchase(&s, "dup", &sub_jws).await;
            (
                a.status,
                a.json()["status"].clone(),
                b.status,
                b.json()["status"].clone(),
                i,
            )
        }));
    }
    let (mut granted, mut sub_granted) = (0, 0);
    for t in tasks {
        let (sa, a, sb, b, _) = t.await.unwrap();
        assert_eq!((sa, sb), (200, 200), "{a} {b}");
        granted += usize::from(a == "granted");
        sub_granted += usize::from(b == "granted");
    }
    assert_eq!((granted, sub_granted), (1, 1));
    let e = s.call("dup", "GET", "/entitlements", None).await.json();
    assert_eq!(e["credits"], 100, "{e}");
    let vip: Vec<_> = e["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["scope"] == "channel:vip")
        .collect();
    assert_eq!(vip.len(), 1, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_grant_under_64_duplicates_memory() {
    concurrent_duplicates(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_grant_under_64_duplicates_dynamo() {
    concurrent_duplicates(Backend::Dynamo).await;
}

async fn credits(s: &TestServer, user: &str) -> Value {
    s.call(user, "GET", "/entitlements", None).await.json()["credits"].clone()
}

/// A one-time purchase bought, refunded and then its refund reversed by Apple.
async fn bought_and_refunded(s: &TestServer, user: &str, txn: &str) -> (String, Value) {
    let (order_id, token) = order(s, user, "coins-100").await;
    let mut t = transaction(txn, txn, "com.example.coins100", T0 - 5, None, T0);
    t["appAccountToken"] = json!(token);
    assert_eq!(
        purchase(s, user, &sign(&t)).await.json()["status"],
        "granted"
    );
    let mut refunded = t.clone();
    refunded["revocationDate"] = json!((T0 + 50) * 1000);
    refunded["signedDate"] = json!((T0 + 50) * 1000);
    let n = notification(
        &format!("n-refund-{txn}"),
        "REFUND",
        None,
        T0 + 50,
        Some(&refunded),
        None,
    );
    assert_eq!(notify(s, &n).await["result"], "refunded");
    assert_eq!(credits(s, user).await, 0);
    (order_id, t)
}

async fn order_state(s: &TestServer, user: &str, order_id: &str) -> Value {
    s.call(user, "GET", &format!("/orders/{order_id}"), None)
        .await
        .json()["state"]
        .clone()
}

#[tokio::test]
async fn refund_reversed_returns_a_one_time_purchase_once() {
    let (s, _) = server(store_for(Backend::Memory).await.unwrap()).await;
    let (order_id, t) = bought_and_refunded(&s, "rr", "5000").await;
    let mut reversed = t.clone();
    reversed["signedDate"] = json!((T0 + 60) * 1000);
    let n = notification(
        "n-reversed-1",
        "REFUND_REVERSED",
        None,
        T0 + 60,
        Some(&reversed),
        None,
    );
    assert_eq!(notify(&s, &n).await["result"], "restored");
    assert_eq!(credits(&s, "rr").await, 100, "the coins are given back");
    assert_eq!(order_state(&s, "rr", &order_id).await, "PAID");
    let stored = s
        .app
        .store
        .get_order(&tollgate::domain::OrderId::parse(&order_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.refund_reversed_at, Some(T0 + 60));
    assert!(
        stored
            .refund_reversal_reason
            .as_deref()
            .is_some_and(|r| r.contains("REFUND_REVERSED") && r.contains("5000")),
        "{stored:?}"
    );
    assert_eq!((stored.refunded_amount, stored.refund_ids.len()), (0, 0));
    // The same notification again, and another copy of it: applied once.
    assert_eq!(notify(&s, &n).await["result"], "duplicate");
    let again = notification(
        "n-reversed-2",
        "REFUND_REVERSED",
        None,
        T0 + 61,
        Some(&reversed),
        None,
    );
    assert_eq!(notify(&s, &again).await["result"], "duplicate");
    assert_eq!(credits(&s, "rr").await, 100);
    // The app re-sending the revoked transaction signed before the reversal takes nothing.
    let mut old_revoked = t.clone();
    old_revoked["revocationDate"] = json!((T0 + 50) * 1000);
    old_revoked["signedDate"] = json!((T0 + 50) * 1000);
    assert_eq!(
        purchase(&s, "rr", &sign(&old_revoked)).await.json()["status"],
        "duplicate"
    );
    assert_eq!(credits(&s, "rr").await, 100);
    // A new refund after the reversal counts again and revokes.
    let mut refunded_again = t.clone();
    refunded_again["revocationDate"] = json!((T0 + 70) * 1000);
    refunded_again["signedDate"] = json!((T0 + 70) * 1000);
    let n = notification(
        "n-refund-again",
        "REFUND",
        None,
        T0 + 70,
        Some(&refunded_again),
        None,
    );
    assert_eq!(notify(&s, &n).await["result"], "refunded");
    assert_eq!(credits(&s, "rr").await, 0);
    assert_eq!(order_state(&s, "rr", &order_id).await, "REFUNDED");
}

async fn concurrent_reversals(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (s, _) = server(store).await;
    let s = Arc::new(s);
    let stamp = now_s();
    let user = format!("rrc{stamp}");
    let (order_id, t) = bought_and_refunded(&s, &user, &format!("6{stamp}")).await;
    let mut reversed = t.clone();
    reversed["signedDate"] = json!((T0 + 60) * 1000);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = s.clone();
        // Distinct notifications (Apple's retries carry the same UUID; these do not), so
        // only the order's state condition keeps it to one.
        let n = notification(
            &format!("n-rrc-{stamp}-{i}"),
            "REFUND_REVERSED",
            None,
            T0 + 60,
            Some(&reversed),
            None,
        );
        tasks.push(tokio::spawn(async move {
            notify(&s, &n).await["result"].clone()
        }));
    }
    let mut restored = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r == "restored" || r == "duplicate", "{r}");
        restored += usize::from(r == "restored");
    }
    assert_eq!(restored, 1, "restored exactly once");
    assert_eq!(credits(&s, &user).await, 100, "coins given back once");
    assert_eq!(order_state(&s, &user, &order_id).await, "PAID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_reversed_once_under_30_concurrent_copies_memory() {
    concurrent_reversals(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_reversed_once_under_30_concurrent_copies_dynamo() {
    concurrent_reversals(Backend::Dynamo).await;
}

#[test]
fn storekit_testing_environments_only_when_configured() {
    let mut xcode = vip_txn(T0);
    xcode["environment"] = json!("Xcode");
    let mut local = vip_txn(T0);
    local["environment"] = json!("LocalTesting");
    let default = verifier(&apple_vars("Sandbox", "root.pem"));
    let apple = default.apple.as_ref().unwrap();
    for (t, env) in [
        (&xcode, Environment::Xcode),
        (&local, Environment::LocalTesting),
    ] {
        assert_eq!(
            apple.verify_transaction(&sign(t)),
            Err(AppleRejection::Environment(env)),
            "refused by default"
        );
    }
    let mut vars = apple_vars("Sandbox", "root.pem");
    vars.push(("APPLE_ACCEPT_LOCAL_TESTING", "true".into()));
    let testing = verifier(&vars);
    let apple = testing.apple.as_ref().unwrap();
    for t in [&xcode, &local] {
        assert!(
            apple.verify_transaction(&sign(t)).is_ok(),
            "accepted when configured"
        );
    }
    // Still signed data: a broken chain is refused whatever the environment.
    assert!(apple
        .verify_transaction(&sign_with("leaf", &["leaf", "intermediate"], &xcode))
        .is_err());
}
