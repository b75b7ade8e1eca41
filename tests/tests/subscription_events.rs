//! Store subscriptions' events and figures on both stores: each App Store and Play message
//! that renews, puts in grace, expires, revokes or restores a subscription writes exactly one event
//! and counts once, in the write that changes the purchase record; duplicates (again, and
//! 20 at once) change, tell and count nothing more; a failure injected into the write
//! leaves neither the change nor its event nor its figures.
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::event::{event_id, EventType};
use tollgate::domain::stats::StatsZone;
use tollgate::store::{DynamoStore, MemoryStore, Store};
use tollgate_tests::apple::{apple_app, notification, renewal, sign, transaction};
use tollgate_tests::fake_google::{subscription, FakeGoogle};
use tollgate_tests::faults::{occupy_event_id, EventIds};
use tollgate_tests::{moto_store, TestServer, DAY, T0};

fn stamp() -> i64 {
    use tollgate::clock::Clock;
    tollgate::clock::SystemClock.now_ms()
}

/// The events about `source_id`, by type → how many.
async fn events_of(store: &dyn Store, source_id: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    // A listing reads a bounded number of days: month by month.
    for month in 0..7 {
        let since = T0 - DAY + month * 30 * DAY;
        let page = store
            .events_since(since, since + 30 * DAY - 1, 10_000, None)
            .await
            .unwrap();
        assert!(!page.more);
        for r in page.records {
            if r.event.data["source_id"] == source_id {
                *out.entry(r.event.kind.as_str().to_owned()).or_default() += 1;
            }
        }
    }
    out
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The day's counter `name` (total) in the operator's zone, on the day of `at`.
async fn counter(store: &dyn Store, at: i64, name: &str) -> i64 {
    let day = StatsZone::default().day_of(at);
    store.day_records(&[day]).await.unwrap()[0].count(name)
}

async fn notify(s: &TestServer, jws: &str) -> (u16, Value) {
    let r = s
        .request(
            "POST",
            "/notifications/apple",
            &[("content-type", "application/json")],
            json!({"signedPayload": jws}).to_string(),
        )
        .await;
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

/// `user` hands over the first transaction of a 30-day VIP subscription (`otid`, bought at
/// T0 - 10) from the app: the transaction.
async fn vip_handed_over(s: &TestServer, user: &str, otid: &str) -> Value {
    let t = transaction(
        &format!("{otid}0"),
        otid,
        "com.example.vip",
        T0 - 10,
        Some(T0 + 30 * DAY),
        T0 - 10,
    );
    let r = s
        .call(
            user,
            "POST",
            "/purchases/apple",
            Some(json!({"signed_transaction": sign(&t)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    t
}

async fn apple_events(store: Arc<dyn Store>) {
    let clock = ManualClock::at(T0);
    let s = Arc::new(TestServer::start(apple_app(store.clone(), clock.clone())).await);
    let id = stamp();
    let otid = format!("8{id}");
    let source = format!("apple:{otid}");
    let txn = |n: i64, expires: i64, signed: i64| {
        transaction(
            &format!("{otid}{n}"),
            &otid,
            "com.example.vip",
            signed,
            Some(expires),
            signed,
        )
    };

    // Nobody is known for it yet: one purchase.unattributed, however often Apple says so.
    let first = txn(0, T0 + 30 * DAY, T0 - 10);
    for uuid in ["u-1", "u-2", "u-1"] {
        let n = notification(
            &format!("{id}-{uuid}"),
            "SUBSCRIBED",
            None,
            T0 - 10,
            Some(&first),
            None,
        );
        assert_eq!(notify(&s, &n).await.0, 200);
    }
    assert_eq!(
        events_of(&*store, &source).await,
        counts(&[("purchase.unattributed", 1)])
    );
    assert_eq!(counter(&*store, T0, "sub_starts").await, 0);

    // The app hands it over: a start, no event.
    let r = s
        .call(
            "sue",
            "POST",
            "/purchases/apple",
            Some(json!({"signed_transaction": sign(&first)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(counter(&*store, T0, "sub_starts").await, 1);
    assert_eq!(counter(&*store, T0, "product#vip#sub_starts").await, 1);
    assert_eq!(counter(&*store, T0, "provider#apple#sub_starts").await, 1);

    // A renewal, delivered twice: one event, counted once at Apple's price.
    let renew = notification(
        &format!("{id}-renew-1"),
        "DID_RENEW",
        None,
        T0,
        Some(&txn(1, T0 + 60 * DAY, T0)),
        None,
    );
    assert_eq!(notify(&s, &renew).await.1["result"], "granted");
    assert_eq!(notify(&s, &renew).await.1["result"], "duplicate");
    // The next renewal, 20 copies at once under distinct notification ids.
    let next = txn(2, T0 + 90 * DAY, T0 + 1);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (s, next) = (s.clone(), next.clone());
        let n = notification(
            &format!("{id}-renew-2-{i}"),
            "DID_RENEW",
            None,
            T0 + 1,
            Some(&next),
            None,
        );
        tasks.push(tokio::spawn(async move { notify(&s, &n).await }));
    }
    let mut granted = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        granted += usize::from(body["result"] == "granted");
    }
    assert_eq!(granted, 1);
    assert_eq!(counter(&*store, T0, "sub_renewals").await, 2);
    // transaction() says 4990 milliunits of USD: 4.99.
    assert_eq!(counter(&*store, T0, "sub_renewal_revenue_USD").await, 998);
    assert_eq!(counter(&*store, T0, "product#vip#sub_renewals").await, 2);

    // Auto-renew turned off: a cancellation, counted once.
    let off = notification(
        &format!("{id}-off"),
        "DID_CHANGE_RENEWAL_STATUS",
        Some("AUTO_RENEW_DISABLED"),
        T0 + 2,
        Some(&next),
        None,
    );
    assert_eq!(notify(&s, &off).await.0, 200);
    assert_eq!(notify(&s, &off).await.0, 200);
    assert_eq!(counter(&*store, T0, "sub_cancellations").await, 1);

    // Billing fails into a grace period, then the grace period ends.
    let grace_end = T0 + 100 * DAY;
    let fail = notification(
        &format!("{id}-fail"),
        "DID_FAIL_TO_RENEW",
        Some("GRACE_PERIOD"),
        T0 + 3,
        Some(&next),
        Some(&renewal(&otid, Some(grace_end), T0 + 3)),
    );
    assert_eq!(notify(&s, &fail).await.1["result"], "grace");
    clock.set(grace_end + 10);
    let gone = notification(
        &format!("{id}-gone"),
        "GRACE_PERIOD_EXPIRED",
        None,
        grace_end + 5,
        Some(&next),
        Some(&renewal(&otid, Some(grace_end), grace_end + 5)),
    );
    assert_eq!(notify(&s, &gone).await.1["result"], "expired");
    assert_eq!(notify(&s, &gone).await.1["result"], "duplicate");
    assert_eq!(counter(&*store, grace_end + 10, "sub_expirations").await, 1);

    // Refunded: revoked, one refund.
    let mut refunded = next.clone();
    refunded["revocationDate"] = json!((grace_end + 20) * 1000);
    refunded["signedDate"] = json!((grace_end + 20) * 1000);
    let refund = notification(
        &format!("{id}-refund"),
        "REFUND",
        None,
        grace_end + 20,
        Some(&refunded),
        None,
    );
    assert_eq!(notify(&s, &refund).await.1["result"], "revoked");
    assert_eq!(counter(&*store, grace_end + 10, "sub_refunds").await, 1);

    // Another account's pre-order naming this subscription: refused, told once.
    let (_, token) = {
        let r = s
            .call(
                "bob",
                "POST",
                "/orders",
                Some(json!({"product_id": "vip", "provider": "apple"})),
            )
            .await;
        assert_eq!(r.status, 201);
        let o = r.json();
        (
            o["order_id"].as_str().unwrap().to_owned(),
            o["payment"]["app_account_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let mut claimed = txn(3, grace_end + 40 * DAY, grace_end + 30);
    claimed["appAccountToken"] = json!(token);
    for _ in 0..2 {
        let r = s
            .call(
                "bob",
                "POST",
                "/purchases/apple",
                Some(json!({"signed_transaction": sign(&claimed)})),
            )
            .await;
        r.assert_problem(409);
    }
    assert_eq!(
        events_of(&*store, &source).await,
        counts(&[
            ("purchase.conflict", 1),
            ("purchase.unattributed", 1),
            ("subscription.expired", 1),
            ("subscription.grace_period", 1),
            ("subscription.renewed", 2),
            ("subscription.revoked", 1),
        ])
    );
    let stored = store.get_purchase("apple", &otid).await.unwrap().unwrap();
    assert_eq!(stored.user_id, "sue");
}

/// A renewal whose event cannot be written changes nothing: not the purchase, not the
/// figures; Apple's retry (once the obstacle is gone) applies it whole.
async fn apple_all_or_nothing(store: Arc<dyn Store>, occupy: EventIds<'_>) {
    let clock = ManualClock::at(T0);
    let s = TestServer::start(apple_app(store.clone(), clock)).await;
    let id = stamp();
    let otid = format!("9{id}");
    vip_handed_over(&s, "ida", &otid).await;
    let renewal_txn = format!("{otid}1");
    let renewed_id = event_id(
        EventType::SubscriptionRenewed,
        &format!("apple\napple:{otid}\nrenewed\n{renewal_txn}"),
    );
    occupy_event_id(occupy, &renewed_id).await;
    let t1 = transaction(
        &renewal_txn,
        &otid,
        "com.example.vip",
        T0,
        Some(T0 + 60 * DAY),
        T0,
    );
    let n = notification(&format!("{id}-r"), "DID_RENEW", None, T0, Some(&t1), None);
    let (status, _) = notify(&s, &n).await;
    assert!(status >= 500, "{status}");
    let stored = store.get_purchase("apple", &otid).await.unwrap().unwrap();
    assert_eq!(
        stored.last_txn_id.as_deref(),
        Some(format!("{otid}0").as_str())
    );
    assert_eq!(stored.expires_at, Some(T0 + 30 * DAY));
    assert_eq!(counter(&*store, T0, "sub_renewals").await, 0);
    let planted = store.get_event(&renewed_id).await.unwrap().unwrap();
    assert_eq!(planted.event.user_id, "planted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apple_subscription_events_once_memory() {
    apple_events(Arc::new(MemoryStore::new())).await;
    let m = Arc::new(MemoryStore::new());
    apple_all_or_nothing(m.clone(), EventIds::Memory(&m)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apple_subscription_events_once_dynamo() {
    let Some(store) = moto_store().await else {
        return;
    };
    apple_events(Arc::new(store)).await;
    let Some(d) = moto_store().await else {
        return;
    };
    let d: Arc<DynamoStore> = Arc::new(d);
    apple_all_or_nothing(d.clone(), EventIds::Dynamo(&d)).await;
}

fn play_sub(state: &str, expiry: i64, order: &str, price_units: &str) -> Value {
    let mut v = subscription(state, expiry, None, "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED");
    v["lineItems"][0]["latestSuccessfulOrderId"] = json!(order);
    v["lineItems"][0]["autoRenewingPlan"]["recurringPrice"] =
        json!({"currencyCode": "CNY", "units": price_units, "nanos": 500_000_000});
    v
}

async fn google_events(store: Arc<dyn Store>) {
    use tollgate::service::google_purchases::verify;
    let g = FakeGoogle::start().await;
    let clock = ManualClock::at(T0);
    let app = g.app(store.clone(), clock.clone());
    let token = format!("play-sub-{}", stamp());
    let order = "GPA.3333-4444-5555-66666";
    g.set_subscription(
        &token,
        play_sub("SUBSCRIPTION_STATE_ACTIVE", T0 + 30 * DAY, order, "12"),
    );
    verify(&app, &token, "vip_monthly", Some("gus"), None)
        .await
        .unwrap();
    assert_eq!(counter(&*store, T0, "sub_starts").await, 1);
    assert_eq!(counter(&*store, T0, "provider#google#sub_starts").await, 1);

    // Renewed: Play names the new period with a new order id. 20 re-fetches at once.
    clock.set(T0 + 30 * DAY - 60);
    g.set_subscription(
        &token,
        play_sub(
            "SUBSCRIPTION_STATE_ACTIVE",
            T0 + 60 * DAY,
            &format!("{order}..0"),
            "12",
        ),
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            verify(&app, &token, "vip_monthly", None, None).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let day = T0 + 30 * DAY - 60;
    assert_eq!(counter(&*store, day, "sub_renewals").await, 1);
    assert_eq!(
        counter(&*store, day, "sub_renewal_revenue_CNY").await,
        1_250
    );

    // Cancelled (auto-renew off), then in grace, then expired: each once.
    clock.set(T0 + 31 * DAY);
    for state in [
        "SUBSCRIPTION_STATE_CANCELED",
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
    ] {
        g.set_subscription(
            &token,
            play_sub(state, T0 + 60 * DAY, &format!("{order}..0"), "12"),
        );
        for _ in 0..2 {
            clock.advance(1);
            verify(&app, &token, "vip_monthly", None, None)
                .await
                .unwrap();
        }
    }
    clock.advance(1);
    g.set_subscription(
        &token,
        play_sub(
            "SUBSCRIPTION_STATE_EXPIRED",
            T0 + 60 * DAY,
            &format!("{order}..0"),
            "12",
        ),
    );
    verify(&app, &token, "vip_monthly", None, None)
        .await
        .unwrap();
    let day = T0 + 31 * DAY;
    assert_eq!(counter(&*store, day, "sub_cancellations").await, 1);
    assert_eq!(counter(&*store, day, "sub_expirations").await, 1);

    // Another account handing the token over: refused and told once.
    for _ in 0..2 {
        assert!(verify(&app, &token, "vip_monthly", Some("eve"), None)
            .await
            .is_err());
    }
    let source = store
        .get_purchase("google", &token)
        .await
        .unwrap()
        .unwrap()
        .grants[0]
        .source_id
        .clone();
    assert_eq!(
        events_of(&*store, &source).await,
        counts(&[
            ("purchase.conflict", 1),
            ("subscription.expired", 1),
            ("subscription.grace_period", 1),
            ("subscription.renewed", 1),
        ])
    );
}

/// A Play one-time purchase re-fetched for nobody (a notification of a token no account
/// handed over): `purchase.unattributed`, once however often.
async fn play_unattributed(store: Arc<dyn Store>) {
    use tollgate::service::google_purchases::verify;
    use tollgate_tests::fake_google::product_purchase;
    let g = FakeGoogle::start().await;
    let app = g.app(store.clone(), ManualClock::at(T0));
    let token = format!("play-lost-{}", stamp());
    g.set_product("coins_100", &token, product_purchase(0, None));
    for _ in 0..3 {
        let status = verify(&app, &token, "coins_100", None, None).await.unwrap();
        assert_eq!(status.as_str(), "unattributed");
    }
    let page = store
        .events_since(T0 - 10, T0 + 10, 1_000, None)
        .await
        .unwrap();
    let told: Vec<_> = page
        .records
        .iter()
        .filter(|r| r.event.kind == EventType::PurchaseUnattributed)
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].event.data["store_product_id"], "coins_100");
    assert_eq!(told[0].event.user_id, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn play_subscription_events_once_memory() {
    play_unattributed(Arc::new(MemoryStore::new())).await;
    google_events(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn play_subscription_events_once_dynamo() {
    let Some(store) = moto_store().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store);
    play_unattributed(store.clone()).await;
    google_events(store).await;
}

/// Apple's REFUND of transaction `t` (revoked at T0 + 50): the notification's result.
async fn refund(s: &TestServer, id: i64, t: &Value) -> Value {
    let mut refunded = t.clone();
    refunded["revocationDate"] = json!((T0 + 50) * 1000);
    refunded["signedDate"] = json!((T0 + 50) * 1000);
    let n = notification(
        &format!("{id}-ref"),
        "REFUND",
        None,
        T0 + 50,
        Some(&refunded),
        None,
    );
    notify(s, &n).await.1["result"].clone()
}

/// Apple's REFUND_REVERSED of transaction `t` (signed at T0 + 60), 20 copies at once under
/// distinct notification ids: their answers.
async fn reversed_20_at_once(s: &Arc<TestServer>, id: i64, t: &Value) -> Vec<(u16, Value)> {
    let mut reversed = t.clone();
    reversed["signedDate"] = json!((T0 + 60) * 1000);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        let n = notification(
            &format!("{id}-rev-{i}"),
            "REFUND_REVERSED",
            None,
            T0 + 60,
            Some(&reversed),
            None,
        );
        tasks.push(tokio::spawn(async move { notify(&s, &n).await }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// Apple's REFUND_REVERSED of a one-time purchase gives its coins (and grants) back with
/// their events, in the reversal's transaction: 20 copies at once tell once; with the event
/// taken already, the reversal does not happen.
async fn reversal_events(store: Arc<dyn Store>, occupy: Option<EventIds<'_>>) {
    let clock = ManualClock::at(T0);
    let s = Arc::new(TestServer::start(apple_app(store.clone(), clock)).await);
    let id = stamp();
    let user = format!("rev{id}");
    let r = s
        .call(
            &user,
            "POST",
            "/orders",
            Some(json!({"product_id": "coins-100", "provider": "apple"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let o = r.json();
    let order_id = o["order_id"].as_str().unwrap().to_owned();
    let txn = format!("6{id}");
    let mut t = transaction(&txn, &txn, "com.example.coins100", T0 - 5, None, T0);
    t["appAccountToken"] = o["payment"]["app_account_token"].clone();
    let r = s
        .call(
            &user,
            "POST",
            "/purchases/apple",
            Some(json!({"signed_transaction": sign(&t)})),
        )
        .await;
    assert_eq!(r.json()["status"], "granted");
    assert_eq!(refund(&s, id, &t).await, "refunded");
    let stored = store
        .get_order(&tollgate::domain::OrderId::parse(&order_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let cause = format!("reversal:{order_id}:{}", stored.refunded_at.unwrap());
    let credited = event_id(EventType::CoinsCredited, &cause);
    let failing = occupy.is_some();
    if let Some(occupy) = occupy {
        occupy_event_id(occupy, &credited).await;
    }
    let mut restored = 0;
    for (status, body) in reversed_20_at_once(&s, id, &t).await {
        restored += usize::from(body["result"] == "restored");
        assert!(failing || status == 200, "{status} {body}");
    }
    let state = store
        .get_order(&tollgate::domain::OrderId::parse(&order_id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .state;
    let event = store.get_event(&credited).await.unwrap().unwrap();
    if failing {
        assert_eq!(restored, 0);
        assert_eq!(state, tollgate::domain::OrderState::Refunded);
        assert_eq!(event.event.user_id, "planted");
    } else {
        assert_eq!(restored, 1);
        assert_eq!(state, tollgate::domain::OrderState::Paid);
        assert_eq!(event.event.user_id, user);
        assert_eq!(event.event.data["coins"], 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_reversal_events_memory() {
    reversal_events(Arc::new(MemoryStore::new()), None).await;
    let m = Arc::new(MemoryStore::new());
    reversal_events(m.clone(), Some(EventIds::Memory(&m))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_reversal_events_dynamo() {
    let Some(store) = moto_store().await else {
        return;
    };
    reversal_events(Arc::new(store), None).await;
    let Some(d) = moto_store().await else {
        return;
    };
    let d: Arc<DynamoStore> = Arc::new(d);
    reversal_events(d.clone(), Some(EventIds::Dynamo(&d))).await;
}

/// Apple's REFUND_REVERSED of a subscription: revoked, then paid up again. Access is back
/// and `subscription.restored` is told once, though 20 copies arrive at once.
async fn subscription_restored(store: Arc<dyn Store>) {
    let clock = ManualClock::at(T0);
    let s = Arc::new(TestServer::start(apple_app(store.clone(), clock)).await);
    let id = stamp();
    let user = format!("back{id}");
    let otid = format!("5{id}");
    let source = format!("apple:{otid}");
    let t = vip_handed_over(&s, &user, &otid).await;
    let vip = |s: Arc<TestServer>, user: String| async move {
        let r = s.call(&user, "GET", "/entitlements", None).await;
        assert_eq!(r.status, 200);
        r.json()["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["scope"] == "channel:vip")
    };
    assert!(vip(s.clone(), user.clone()).await);

    assert_eq!(refund(&s, id, &t).await, "revoked");
    assert!(!vip(s.clone(), user.clone()).await);

    for (status, body) in reversed_20_at_once(&s, id, &t).await {
        assert_eq!(status, 200, "{body}");
    }
    assert!(vip(s.clone(), user.clone()).await);
    assert_eq!(
        events_of(&*store, &source).await,
        counts(&[("subscription.restored", 1), ("subscription.revoked", 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversed_subscription_refund_restores_once_memory() {
    subscription_restored(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversed_subscription_refund_restores_once_dynamo() {
    let Some(store) = moto_store().await else {
        return;
    };
    subscription_restored(Arc::new(store)).await;
}

/// A renewal Apple sends a minute after Shanghai's midnight is the next day's, in
/// `/admin/stats` as in the counters; the start a minute before it stays on the day before.
async fn renewals_on_the_operators_day(store: Arc<dyn Store>) {
    const SH_MIDNIGHT: i64 = T0 + 8 * 3600; // 2027-01-16 00:00 in Shanghai
    let clock = ManualClock::at(SH_MIDNIGHT - 60);
    let s = TestServer::start(apple_app(store.clone(), clock.clone())).await;
    let id = stamp();
    let otid = format!("7{id}");
    let t = |n: i64, at: i64| {
        transaction(
            &format!("{otid}{n}"),
            &otid,
            "com.example.vip",
            at,
            Some(at + 30 * DAY),
            at,
        )
    };
    let r = s
        .call(
            "dan",
            "POST",
            "/purchases/apple",
            Some(json!({"signed_transaction": sign(&t(0, SH_MIDNIGHT - 60))})),
        )
        .await;
    assert_eq!(r.status, 200);
    clock.set(SH_MIDNIGHT + 60);
    let n = notification(
        &format!("{id}-day"),
        "DID_RENEW",
        None,
        SH_MIDNIGHT + 60,
        Some(&t(1, SH_MIDNIGHT + 60)),
        None,
    );
    assert_eq!(notify(&s, &n).await.1["result"], "granted");
    let r = s
        .admin(
            "GET",
            "/admin/stats?from=2027-01-15&to=2027-01-16&by=provider",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let stats = r.json();
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days[0]["day"], "2027-01-15");
    assert_eq!(days[0]["subscriptions"]["starts"], 1);
    assert_eq!(days[0]["subscriptions"]["renewals"], 0);
    assert_eq!(days[1]["subscriptions"]["starts"], 0);
    assert_eq!(days[1]["subscriptions"]["renewals"], 1);
    assert_eq!(
        days[1]["subscriptions"]["renewal_revenue"],
        json!({"USD": 499})
    );
    assert_eq!(
        stats["total"]["by"]["apple"]["subscriptions"]["renewals"],
        1
    );
    // In UTC both happened on the 15th: the operator's zone is what moved the renewal.
    assert_eq!(
        StatsZone::named("UTC").unwrap().day_of(SH_MIDNIGHT + 60),
        "2027-01-15"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_count_on_the_operators_day_memory() {
    renewals_on_the_operators_day(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_count_on_the_operators_day_dynamo() {
    let Some(store) = moto_store().await else {
        return;
    };
    renewals_on_the_operators_day(Arc::new(store)).await;
}
