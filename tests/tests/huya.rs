//! Huya end to end: a callback (GET or POST) creates the paid order and its grant for
//! `huya:<profileId>` in one transaction, deduped by Huya's orderId; durations stack;
//! every rejection changes nothing; 64 concurrent duplicates grant once on both stores.

use serde_json::Value;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate_tests::huya as hy;
use tollgate_tests::*;

async fn setup(backend: Backend) -> Option<Arc<TestServer>> {
    let store = store_for(backend).await?;
    let app = app_with(store, ManualClock::at(T0), &hy::env());
    Some(Arc::new(TestServer::start(app).await))
}

async fn post(s: &TestServer, f: &[(&'static str, String)], secret: &str) -> Reply {
    let (auth, body) = hy::post(f, secret);
    s.request(
        "POST",
        "/callbacks/huya",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

async fn get(s: &TestServer, f: &[(&'static str, String)], secret: &str) -> Reply {
    let (auth, query) = hy::get(f, secret);
    s.request(
        "GET",
        &format!("/callbacks/huya?{query}"),
        &[("authorization", &auth)],
        "",
    )
    .await
}

async fn entitlements(s: &TestServer, user: &str) -> Value {
    s.call(user, "GET", "/entitlements", None).await.json()
}

fn assert_ok(r: &Reply) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], 0);
}

fn assert_refused(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["msg"].is_string());
}

#[tokio::test]
async fn post_and_get_callbacks_create_paid_orders_whose_durations_stack() {
    let s = setup(Backend::Memory).await.unwrap();
    let user = "huya:profile-42";
    assert_ok(
        &post(
            &s,
            &hy::fields("HY-1", "profile-42", "hy-pass", "1", T0),
            hy::EXT_SECRET,
        )
        .await,
    );
    let e = entitlements(&s, user).await;
    assert_eq!(e["grants"].as_array().unwrap().len(), 1);
    assert_eq!(
        e["grants"][0]["valid_until"],
        tollgate::domain::ids::rfc3339(T0 + 7 * DAY)
    );
    // The order exists, already paid, at the catalog price, and belongs to the buyer.
    let id = tollgate::providers::huya::order_id_for("HY-1", T0);
    let o = s
        .call(user, "GET", &format!("/orders/{id}"), None)
        .await
        .json();
    assert_eq!(o["state"], "PAID");
    assert_eq!(o["provider"], "huya");
    assert_eq!(o["plan_id"], "7d");
    assert_eq!(o["amount"]["amount"], 900);

    // A second purchase (level 2 = 30 days) by GET stacks after the first.
    assert_ok(
        &get(
            &s,
            &hy::fields("HY-2", "profile-42", "hy-pass", "2", T0 + 10),
            hy::EXT_SECRET,
        )
        .await,
    );
    let p = s.call(user, "GET", "/entitlements/pass", None).await.json();
    assert_eq!(
        p["expires_at"],
        tollgate::domain::ids::rfc3339(T0 + 37 * DAY)
    );
    // A product without plans: coins credited once.
    assert_ok(
        &post(
            &s,
            &hy::fields("HY-3", "profile-42", "hy-coins", "1", T0),
            hy::EXT_SECRET,
        )
        .await,
    );
    assert_ok(
        &post(
            &s,
            &hy::fields("HY-3", "profile-42", "hy-coins", "1", T0 + 5),
            hy::EXT_SECRET,
        )
        .await,
    );
    assert_eq!(entitlements(&s, user).await["credits"], 100);
    // Huya cannot be chosen for a Tollgate-side order.
    s.call(
        "someone",
        "POST",
        "/orders",
        Some(serde_json::json!({"product_id": "pass", "plan_id": "7d", "provider": "huya"})),
    )
    .await
    .assert_problem(400);
    // GET is refused for providers that only POST.
    let r = s.request("GET", "/callbacks/sandbox", &[], "").await;
    r.assert_problem(405);
}

#[tokio::test]
async fn every_rejection_changes_nothing() {
    let s = setup(Backend::Memory).await.unwrap();
    let good = hy::fields("HY-9", "profile-7", "hy-pass", "1", T0);
    assert_refused(&post(&s, &good, "wrong-secret").await, 401);
    assert_refused(&get(&s, &good, "wrong-secret").await, 401);
    // Tampered after signing: the level changed.
    let (auth, body) = hy::post(&good, hy::EXT_SECRET);
    let r = s
        .request(
            "POST",
            "/callbacks/huya",
            &[("authorization", &auth)],
            body.replace("\"expenseLevel\":\"1\"", "\"expenseLevel\":\"2\""),
        )
        .await;
    assert_refused(&r, 401);
    assert_refused(
        &s.request("POST", "/callbacks/huya", &[], hy::json_body(&good))
            .await,
        401,
    );
    // Stale and future timestamps (default window 300 s).
    assert_refused(
        &post(
            &s,
            &hy::fields("HY-9", "profile-7", "hy-pass", "1", T0 - 301),
            hy::EXT_SECRET,
        )
        .await,
        401,
    );
    assert_refused(
        &post(
            &s,
            &hy::fields("HY-9", "profile-7", "hy-pass", "1", T0 + 301),
            hy::EXT_SECRET,
        )
        .await,
        401,
    );
    // Unknown extUuid, goods, level.
    let mut f = good.clone();
    f[3].1 = "someone-elses-ext".into();
    assert_refused(&post(&s, &f, hy::EXT_SECRET).await, 403);
    assert_refused(
        &post(
            &s,
            &hy::fields("HY-9", "profile-7", "hy-nope", "1", T0),
            hy::EXT_SECRET,
        )
        .await,
        422,
    );
    assert_refused(
        &post(
            &s,
            &hy::fields("HY-9", "profile-7", "hy-pass", "3", T0),
            hy::EXT_SECRET,
        )
        .await,
        422,
    );
    // Malformed: not JSON, missing field, bad orderTime.
    let junk = "not json";
    let auth = hy::authorization(hy::EXT_SECRET, &T0.to_string(), junk.as_bytes());
    assert_refused(
        &s.request("POST", "/callbacks/huya", &[("authorization", &auth)], junk)
            .await,
        400,
    );
    let mut f = good.clone();
    f[1].1 = "2027-01-15".into();
    assert_refused(&post(&s, &f, hy::EXT_SECRET).await, 400);
    let f: Vec<_> = good
        .iter()
        .filter(|(k, _)| *k != "profileId")
        .cloned()
        .collect();
    assert_refused(&get(&s, &f, hy::EXT_SECRET).await, 400);

    let e = entitlements(&s, "huya:profile-7").await;
    assert!(e["grants"].as_array().unwrap().is_empty(), "{e}");
    let id = tollgate::providers::huya::order_id_for("HY-9", T0);
    s.call("huya:profile-7", "GET", &format!("/orders/{id}"), None)
        .await
        .assert_problem(404);
    assert_ok(&post(&s, &good, hy::EXT_SECRET).await);
}

#[tokio::test]
async fn the_timestamp_window_is_configurable() {
    let store = store_for(Backend::Memory).await.unwrap();
    let mut env = hy::env();
    env.push(("HUYA_MAX_SKEW_SECONDS", "30".into()));
    let s = TestServer::start(app_with(store, ManualClock::at(T0), &env)).await;
    assert_refused(
        &post(
            &s,
            &hy::fields("HY-5", "p", "hy-pass", "1", T0 - 31),
            hy::EXT_SECRET,
        )
        .await,
        401,
    );
    assert_ok(
        &post(
            &s,
            &hy::fields("HY-5", "p", "hy-pass", "1", T0 - 30),
            hy::EXT_SECRET,
        )
        .await,
    );
}

async fn concurrent(backend: Backend) {
    let Some(s) = setup(backend).await else {
        return;
    };
    let f = hy::fields("HY-64", "profile-64", "hy-pass", "2", T0);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let r = if i % 2 == 0 {
                post(&s, &f, hy::EXT_SECRET).await
            } else {
                get(&s, &f, hy::EXT_SECRET).await
            };
            r.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let e = entitlements(&s, "huya:profile-64").await;
    assert_eq!(
        e["grants"].as_array().unwrap().len(),
        1,
        "exactly one grant: {e}"
    );
    assert_eq!(
        e["grants"][0]["valid_until"],
        tollgate::domain::ids::rfc3339(T0 + 30 * DAY)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_callbacks_grant_once_memory() {
    concurrent(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_callbacks_grant_once_dynamo() {
    concurrent(Backend::Dynamo).await;
}
