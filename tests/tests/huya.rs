//! Huya end to end, what only Huya has: callbacks by GET as well as POST, durations that
//! stack across sales, goods and levels resolved against the catalog, a configurable
//! timestamp window. That a callback creates the paid order and its grant once (also under
//! 64 concurrent duplicates), and refuses forgeries changing nothing, is in the provider
//! conformance suite.

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
    assert_eq!(r.headers.get("allow").unwrap(), "POST");
    // Huya's own route takes both; any other method is told so.
    let r = s.request("PUT", "/callbacks/huya", &[], "").await;
    r.assert_problem(405);
    assert_eq!(r.headers.get("allow").unwrap(), "POST, GET");
}

/// Huya's own ways to be wrong: goods or a level the catalog does not sell, a bad
/// orderTime, a GET with a wrong secret or a missing field. Forged, tampered, unsigned,
/// stale, other-extension and other-app callbacks are in the provider conformance suite.
#[tokio::test]
async fn unknown_goods_and_malformed_fields_change_nothing() {
    let s = setup(Backend::Memory).await.unwrap();
    let good = hy::fields("HY-9", "profile-7", "hy-pass", "1", T0);
    assert_refused(&get(&s, &good, "wrong-secret").await, 401);
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
    assert_ok(&get(&s, &good, hy::EXT_SECRET).await);
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
