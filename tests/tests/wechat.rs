//! WeChat Pay v3 end to end, what only WeChat Pay has: the local server against a fake
//! WeChat Pay on loopback. Prepay channels and their signed client parameters, platform keys
//! by serial and rotation, partial refunds, query and close reaching the fake correctly
//! signed, configuration errors. Paying, duplicates, refused notifications, refunds and
//! concurrent duplicates are in the provider conformance suite.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::OrderId;
use tollgate::providers::rsa::RsaPrivateKey;
use tollgate::providers::QueryResult;
use tollgate_tests::wechat::{self as wx, FakeWechat};
use tollgate_tests::*;

async fn setup(backend: Backend) -> Option<(Arc<TestServer>, FakeWechat)> {
    let store = store_for(backend).await?;
    let fake = FakeWechat::start(T0).await;
    let app = app_with(store, ManualClock::at(T0), &wx::env(&fake.server.base));
    Some((Arc::new(TestServer::start(app).await), fake))
}

async fn create(s: &TestServer, user: &str, body: Value) -> Value {
    let r = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn notify_with(
    s: &TestServer,
    body: &[u8],
    ts: i64,
    signer: &RsaPrivateKey,
    serial: &str,
) -> Reply {
    let headers = wx::signed_headers(body, ts, signer, serial);
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    s.request("POST", "/callbacks/wechat", &h, body.to_vec())
        .await
}

async fn notify(s: &TestServer, body: &[u8]) -> Reply {
    notify_with(s, body, T0, &wx::platform_signer(), wx::PUB_KEY_ID).await
}

async fn grants(s: &TestServer, user: &str) -> Vec<Value> {
    let e = s.call(user, "GET", "/entitlements", None).await.json();
    e["grants"].as_array().cloned().unwrap_or_default()
}

async fn order_state(s: &TestServer, user: &str, id: &str) -> String {
    let o = s
        .call(user, "GET", &format!("/orders/{id}"), None)
        .await
        .json();
    o["state"].as_str().unwrap_or("").to_owned()
}

fn assert_fail(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["code"], "FAIL", "{v}");
    assert!(v["message"].is_string());
}

#[tokio::test]
async fn native_app_and_jsapi_prepay_with_signed_client_parameters() {
    let (s, fake) = setup(Backend::Memory).await.unwrap();
    let native = create(
        &s,
        "wu",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = native["order_id"].as_str().unwrap();
    assert_eq!(
        native["payment"]["code_url"],
        format!("weixin://wxpay/bizpayurl?pr={id}")
    );
    let seen = fake.server.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        wx::authorization_ok(&seen[0]),
        "request signed with the merchant key"
    );
    assert_eq!(seen[0].target, "/v3/pay/transactions/native");
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["amount"], json!({"total": 900, "currency": "CNY"}));
    assert_eq!(body["out_trade_no"], id);
    assert_eq!(body["mchid"], wx::MCH_ID);
    assert_eq!(body["appid"], wx::APP_ID);
    assert_eq!(body["description"], "Channel pass");
    assert_eq!(
        body["notify_url"],
        "https://tollgate.example.com/callbacks/wechat"
    );
    // Order expiry (T0 + 900 s) in China time.
    assert_eq!(body["time_expire"], "2027-01-15T16:15:00+08:00");

    let app = create(
        &s,
        "wu",
        json!({"product_id": "coins-100", "provider": "wechat", "channel": "app"}),
    )
    .await;
    let p = &app["payment"];
    let prepay = format!("wx{}", app["order_id"].as_str().unwrap());
    assert_eq!(p["prepayid"], prepay);
    assert_eq!(p["partnerid"], wx::MCH_ID);
    assert_eq!(p["package"], "Sign=WXPay");
    let msg = format!(
        "{}\n{}\n{}\n{}\n",
        wx::APP_ID,
        p["timestamp"].as_str().unwrap(),
        p["noncestr"].as_str().unwrap(),
        prepay
    );
    assert!(wx::merchant_public().verify_sha256_b64(msg.as_bytes(), p["sign"].as_str().unwrap()));

    let r = s
        .call(
            "wu",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat", "channel": "jsapi"})),
        )
        .await;
    r.assert_problem(400);
    let r = s
        .call(
            "wu",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat", "channel": "h5"})),
        )
        .await;
    r.assert_problem(400);
    let js = create(
        &s,
        "wu",
        json!({"product_id": "pass", "plan_id": "30d", "provider": "wechat", "channel": "jsapi",
               "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}),
    )
    .await;
    let p = &js["payment"];
    assert_eq!(p["signType"], "RSA");
    let package = format!("prepay_id=wx{}", js["order_id"].as_str().unwrap());
    assert_eq!(p["package"], package);
    let msg = format!(
        "{}\n{}\n{}\n{}\n",
        wx::APP_ID,
        p["timeStamp"].as_str().unwrap(),
        p["nonceStr"].as_str().unwrap(),
        package
    );
    assert!(wx::merchant_public().verify_sha256_b64(msg.as_bytes(), p["paySign"].as_str().unwrap()));
    let last: Value = serde_json::from_slice(&fake.server.seen().last().unwrap().body).unwrap();
    assert_eq!(last["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(
        fake.server.seen().len(),
        3,
        "refused creates never reach WeChat"
    );
}

#[tokio::test]
async fn a_retried_create_never_prepays_twice() {
    let (s, fake) = setup(Backend::Memory).await.unwrap();
    let body = json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"});
    let auth = bearer("zhao");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "k-1"),
    ];
    let first = s
        .request("POST", "/orders", &headers, body.to_string())
        .await;
    assert_eq!(first.status, 201);
    let again = s
        .request("POST", "/orders", &headers, body.to_string())
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(first.json()["order_id"], again.json()["order_id"]);
    assert_eq!(fake.server.seen().len(), 1);
}

#[tokio::test]
async fn partial_and_abnormal_refunds_keep_access() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "li",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    let paid = wx::notification(
        "TRANSACTION.SUCCESS",
        &wx::transaction(id, "4200000001", 900),
        wx::API_V3_KEY,
    );
    assert_eq!(notify(&s, &paid).await.status, 204);
    // A partial refund keeps access; REFUND.ABNORMAL changes nothing.
    let partial = wx::notification(
        "REFUND.SUCCESS",
        &wx::refund(id, "4200000001", 900, 100),
        wx::API_V3_KEY,
    );
    assert_eq!(notify(&s, &partial).await.status, 204);
    let abnormal = wx::notification(
        "REFUND.ABNORMAL",
        &wx::refund(id, "4200000001", 900, 900),
        wx::API_V3_KEY,
    );
    assert_eq!(notify(&s, &abnormal).await.status, 204);
    assert_eq!(order_state(&s, "li", id).await, "PAID");
    assert_eq!(grants(&s, "li").await.len(), 1);
    // The partial refund is counted; the abnormal one is not.
    assert_eq!(counted(&s, id).await, (100, 1));
}

const TXN: &str = "4200000001";

/// A paid 9.00 CNY WeChat order of `user`; returns its id.
async fn paid_order(s: &TestServer, user: &str) -> String {
    let o = create(
        s,
        user,
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap().to_owned();
    let paid = wx::notification(
        "TRANSACTION.SUCCESS",
        &wx::transaction(&id, TXN, 900),
        wx::API_V3_KEY,
    );
    assert_eq!(notify(s, &paid).await.status, 204);
    id
}

/// WeChat Pay's REFUND.SUCCESS for refund `refund_id` of `refunded` fen of the 900.
fn refunded(id: &str, refunded: i64, refund_id: &str) -> Vec<u8> {
    wx::notification(
        "REFUND.SUCCESS",
        &wx::refund_numbered(id, TXN, 900, refunded, refund_id),
        wx::API_V3_KEY,
    )
}

/// Refunds counted by the day's figures around T0.
async fn refunds_counted(s: &TestServer) -> i64 {
    let r = s
        .admin("GET", "/admin/stats?from=2027-01-14&to=2027-01-16", None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["days"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["refunds"].as_i64())
        .sum()
}

/// What the order records of its refunds: the total counted and how many refunds.
async fn counted(s: &TestServer, id: &str) -> (i64, usize) {
    let o = s
        .app
        .store
        .get_order(&OrderId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    (o.refunded_amount, o.refund_ids.len())
}

async fn assert_refunded(s: &TestServer, user: &str, id: &str) {
    assert_eq!(order_state(s, user, id).await, "REFUNDED");
    assert!(grants(s, user).await.is_empty(), "access revoked");
    assert_eq!(refunds_counted(s).await, 1, "revoked exactly once");
}

async fn assert_access_kept(s: &TestServer, user: &str, id: &str) {
    assert_eq!(order_state(s, user, id).await, "PAID");
    assert_eq!(grants(s, user).await.len(), 1, "access kept");
    assert_eq!(refunds_counted(s).await, 0);
}

#[tokio::test]
async fn a_one_fen_refund_keeps_access_and_is_counted() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let id = paid_order(&s, "zhou").await;
    assert_eq!(notify(&s, &refunded(&id, 1, "R-1")).await.status, 204);
    assert_access_kept(&s, "zhou", &id).await;
    assert_eq!(counted(&s, &id).await, (1, 1));
    // The fen was counted: the other 8.99 is exactly what remains, and it revokes.
    assert_eq!(notify(&s, &refunded(&id, 899, "R-2")).await.status, 204);
    assert_refunded(&s, "zhou", &id).await;
    assert_eq!(counted(&s, &id).await, (900, 2));
}

#[tokio::test]
async fn partial_refunds_adding_up_to_the_total_revoke() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let id = paid_order(&s, "wu").await;
    assert_eq!(notify(&s, &refunded(&id, 400, "R-a")).await.status, 204);
    assert_access_kept(&s, "wu", &id).await;
    assert_eq!(counted(&s, &id).await, (400, 1));
    assert_eq!(notify(&s, &refunded(&id, 500, "R-b")).await.status, 204);
    assert_refunded(&s, "wu", &id).await;
}

#[tokio::test]
async fn a_repeated_partial_refund_notification_counts_once() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let id = paid_order(&s, "zheng").await;
    for _ in 0..3 {
        assert_eq!(notify(&s, &refunded(&id, 300, "R-x")).await.status, 204);
        assert_access_kept(&s, "zheng", &id).await;
        assert_eq!(counted(&s, &id).await, (300, 1));
    }
    // Counted once, 600 remain: a 601 refund is more than that, 600 ends it.
    assert_fail(&notify(&s, &refunded(&id, 601, "R-y")).await, 409);
    assert_access_kept(&s, "zheng", &id).await;
    assert_eq!(notify(&s, &refunded(&id, 600, "R-z")).await.status, 204);
    assert_refunded(&s, "zheng", &id).await;
    assert_eq!(counted(&s, &id).await, (900, 2));
    // Repeats after the end are still acknowledged without a second effect.
    assert_eq!(notify(&s, &refunded(&id, 300, "R-x")).await.status, 204);
    assert_eq!(notify(&s, &refunded(&id, 600, "R-z")).await.status, 204);
    assert_refunded(&s, "zheng", &id).await;
}

#[tokio::test]
async fn a_refund_in_another_currency_is_refused_and_changes_nothing() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let id = paid_order(&s, "feng").await;
    for (refund, total) in [(900, 900), (1, 900), (100_000_000_000_000, 900)] {
        let mut r = wx::refund_numbered(&id, TXN, total, refund, "R-usd");
        r["amount"]["currency"] = json!("USD");
        let body = wx::notification("REFUND.SUCCESS", &r, wx::API_V3_KEY);
        assert_fail(&notify(&s, &body).await, 409);
        assert_access_kept(&s, "feng", &id).await;
        assert_eq!(counted(&s, &id).await, (0, 0));
    }
    // Nothing was counted: the whole 9.00 CNY still refunds in one.
    assert_eq!(notify(&s, &refunded(&id, 900, "R-cny")).await.status, 204);
    assert_refunded(&s, "feng", &id).await;
}

#[tokio::test]
async fn a_refund_above_what_was_paid_is_refused() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let id = paid_order(&s, "chen").await;
    assert_fail(&notify(&s, &refunded(&id, 901, "R-big")).await, 409);
    assert_access_kept(&s, "chen", &id).await;
    assert_eq!(counted(&s, &id).await, (0, 0));
    assert_eq!(notify(&s, &refunded(&id, 500, "R-1")).await.status, 204);
    assert_fail(&notify(&s, &refunded(&id, 401, "R-2")).await, 409);
    assert_access_kept(&s, "chen", &id).await;
    assert_eq!(counted(&s, &id).await, (500, 1));
    assert_eq!(notify(&s, &refunded(&id, 400, "R-3")).await.status, 204);
    assert_refunded(&s, "chen", &id).await;
    // Nothing remains once refunded whole.
    assert_fail(&notify(&s, &refunded(&id, 1, "R-4")).await, 409);
    assert_refunded(&s, "chen", &id).await;
}

/// 30 partial refunds of 0.30 each, every notification delivered twice, all at once: each
/// refund counts once, and the one that completes the 9.00 revokes, once.
async fn concurrent_partial_refunds(backend: Backend) {
    let Some((s, _fake)) = setup(backend).await else {
        return;
    };
    let id = paid_order(&s, "han").await;
    let mut tasks = Vec::new();
    for n in 0..60 {
        let (s, body) = (s.clone(), refunded(&id, 30, &format!("R-{}", n % 30)));
        tasks.push(tokio::spawn(async move { notify(&s, &body).await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_refunded(&s, "han", &id).await;
    assert_eq!(counted(&s, &id).await, (900, 30));
    // Nothing more remains to refund.
    assert_fail(&notify(&s, &refunded(&id, 30, "R-30")).await, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_partial_refunds_count_once_memory() {
    concurrent_partial_refunds(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_partial_refunds_count_once_dynamo() {
    concurrent_partial_refunds(Backend::Dynamo).await;
}

/// Platform keys are found by serial, a retired certificate key still verifies (rotation),
/// and the notification must decrypt under the APIv3 key. Forged, tampered, unsigned,
/// stale, wrong-merchant/app/amount and unknown-order notifications are in the provider
/// conformance suite.
#[tokio::test]
async fn platform_keys_by_serial_and_the_apiv3_key() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "qian",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    let good = wx::transaction(id, "4200000002", 900);
    let body = wx::notification("TRANSACTION.SUCCESS", &good, wx::API_V3_KEY);
    let signer = wx::platform_signer();

    // The right key under another serial, and an unknown serial.
    assert_fail(
        &notify_with(&s, &body, T0, &signer, wx::CERT_SERIAL).await,
        401,
    );
    assert_fail(
        &notify_with(&s, &body, T0, &signer, "PUB_KEY_ID_0000").await,
        401,
    );
    // Wrong APIv3 key (undecryptable), and bytes that are not JSON.
    let b = wx::notification(
        "TRANSACTION.SUCCESS",
        &good,
        "00000000000000000000000000000000",
    );
    assert_fail(&notify(&s, &b).await, 400);
    assert_fail(&notify(&s, b"\xff\xfe garbage").await, 400);

    assert_eq!(order_state(&s, "qian", id).await, "PENDING");
    assert!(grants(&s, "qian").await.is_empty());
    // The genuine one goes through signed by the certificate key, at the window's edge.
    let cert_signer =
        RsaPrivateKey::from_pem_or_base64(&tollgate_tests::fake::key("wechat_platform2_key.pem"))
            .unwrap();
    let r = notify_with(&s, &body, T0 + 299, &cert_signer, wx::CERT_SERIAL).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(grants(&s, "qian").await.len(), 1);
}

#[tokio::test]
async fn query_and_close_reach_the_fake_signed() {
    let (s, fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "sun",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = tollgate::domain::OrderId::parse(o["order_id"].as_str().unwrap()).unwrap();
    let order = s.app.store.get_order(&id).await.unwrap().unwrap();
    let p = s.app.providers.query("wechat").unwrap().clone();
    assert_eq!(p.query(&order).await.unwrap(), QueryResult::NotPaid);
    fake.trades.set(
        id.as_str(),
        json!({"trade_state": "NOTPAY", "amount": {"total": 900, "currency": "CNY"}}),
    );
    assert_eq!(p.query(&order).await.unwrap(), QueryResult::NotPaid);
    fake.trades.set(
        id.as_str(),
        json!({"trade_state": "SUCCESS", "transaction_id": "4200000009",
               "success_time": "2027-01-15T16:01:00+08:00",
               "amount": {"total": 900, "payer_total": 900, "currency": "CNY"}}),
    );
    match p.query(&order).await.unwrap() {
        QueryResult::Paid(tollgate::providers::ProviderEvent::Paid {
            provider_txn_id,
            amount,
            paid_at,
            ..
        }) => {
            assert_eq!(provider_txn_id, "4200000009");
            assert_eq!(amount.amount, 900);
            assert_eq!(paid_at, Some(T0 + 60));
        }
        other => panic!("{other:?}"),
    }
    p.close(&order).await.unwrap();
    assert_eq!(p.query(&order).await.unwrap(), QueryResult::Closed);
    let seen = fake.server.seen();
    let close = seen.iter().find(|r| r.target.ends_with("/close")).unwrap();
    assert_eq!(close.method, "POST");
    assert_eq!(
        close.target,
        format!("/v3/pay/transactions/out-trade-no/{id}/close")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&close.body).unwrap(),
        json!({"mchid": wx::MCH_ID})
    );
    let query = seen.iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(
        query.target,
        format!(
            "/v3/pay/transactions/out-trade-no/{id}?mchid={}",
            wx::MCH_ID
        )
    );
    assert!(
        seen.iter().all(wx::authorization_ok),
        "every request signed"
    );
}

#[tokio::test]
async fn cancel_closes_at_wechat_first() {
    let (s, fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "wei",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    let r = s
        .call("wei", "POST", &format!("/orders/{id}/cancel"), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["state"], "CANCELLED");
    let seen = fake.server.seen();
    let close = seen.last().unwrap();
    assert_eq!(
        close.target,
        format!("/v3/pay/transactions/out-trade-no/{id}/close")
    );
    assert!(wx::authorization_ok(close));

    // WeChat failing (5xx on close): nothing is cancelled, the client is told to retry.
    let failing =
        tollgate_tests::fake::FakeServer::start(Arc::new(|s: &tollgate_tests::fake::Seen| {
            let (status, body) = if s.target.ends_with("/close") {
                (500, json!({"code": "SYSTEM_ERROR", "message": "try later"}))
            } else {
                (200, json!({"code_url": "weixin://wxpay/bizpayurl?pr=y"}))
            };
            let body = body.to_string().into_bytes();
            tollgate_tests::fake::Answer {
                status,
                headers: wx::signed_headers(&body, T0, &wx::platform_signer(), wx::PUB_KEY_ID),
                body,
            }
        }))
        .await;
    let store = store_for(Backend::Memory).await.unwrap();
    let s = TestServer::start(app_with(
        store,
        ManualClock::at(T0),
        &wx::env(&failing.base),
    ))
    .await;
    let o = create(
        &s,
        "wei",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    let r = s
        .call("wei", "POST", &format!("/orders/{id}/cancel"), None)
        .await;
    r.assert_problem(502);
    assert_eq!(order_state(&s, "wei", id).await, "PENDING");
}

#[tokio::test]
async fn a_base_url_with_a_path_is_signed_with_it() {
    // The fake sits behind a "/proxy" prefix: it checks the signature over the full path.
    let fake = FakeWechat::start(T0).await;
    let store = store_for(Backend::Memory).await.unwrap();
    let prefixed =
        tollgate_tests::fake::FakeServer::start(Arc::new(|s: &tollgate_tests::fake::Seen| {
            let ok = wx::authorization_ok(s) && s.target.starts_with("/proxy/v3/");
            let body = if ok {
                json!({"code_url": "weixin://wxpay/bizpayurl?pr=x"})
            } else {
                json!({"code": "SIGN_ERROR", "message": "bad"})
            };
            let body = body.to_string().into_bytes();
            tollgate_tests::fake::Answer {
                status: if ok { 200 } else { 401 },
                headers: wx::signed_headers(&body, T0, &wx::platform_signer(), wx::PUB_KEY_ID),
                body,
            }
        }))
        .await;
    drop(fake);
    let s = TestServer::start(app_with(
        store,
        ManualClock::at(T0),
        &wx::env(&format!("{}/proxy", prefixed.base)),
    ))
    .await;
    let o = create(
        &s,
        "kong",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    assert_eq!(o["payment"]["code_url"], "weixin://wxpay/bizpayurl?pr=x");
}

#[tokio::test]
async fn unreachable_or_unsigned_provider_is_unavailable() {
    let store = store_for(Backend::Memory).await.unwrap();
    // Nothing listens on port 9 of loopback.
    let app = app_with(store, ManualClock::at(T0), &wx::env("http://127.0.0.1:9"));
    let s = TestServer::start(app).await;
    let r = s
        .call(
            "zhou",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"})),
        )
        .await;
    r.assert_problem(502);
    // A fake whose answers carry no valid WeChat signature is not trusted.
    let fake =
        tollgate_tests::fake::FakeServer::start(Arc::new(|_s: &tollgate_tests::fake::Seen| {
            tollgate_tests::fake::Answer {
                status: 200,
                headers: vec![],
                body: br#"{"code_url":"weixin://x"}"#.to_vec(),
            }
        }))
        .await;
    let store = store_for(Backend::Memory).await.unwrap();
    let s = TestServer::start(app_with(store, ManualClock::at(T0), &wx::env(&fake.base))).await;
    let r = s
        .call(
            "zhou",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"})),
        )
        .await;
    r.assert_problem(502);
}

#[test]
fn missing_or_bad_configuration_names_the_variable() {
    let base = wx::env("http://127.0.0.1:1");
    for (drop, bad) in [
        ("WECHATPAY_MCH_ID", None),
        ("WECHATPAY_API_V3_KEY", Some("short")),
        ("WECHATPAY_MERCHANT_PRIVATE_KEY", Some("not a key")),
        ("WECHATPAY_PLATFORM_KEYS", Some("serial-without-pem")),
        (
            "WECHATPAY_NOTIFY_URL",
            Some("http://insecure.example.com/cb"),
        ),
        ("WECHATPAY_BASE_URL", Some("ftp://x")),
    ] {
        let vars: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| *k != drop || bad.is_some())
            .map(|(k, v)| (*k, if *k == drop { bad.unwrap() } else { v.as_str() }))
            .collect();
        let cfg = test_config(&vars);
        let err = tollgate::app::App::new(
            cfg,
            Arc::new(tollgate::store::MemoryStore::new()),
            Arc::new(ManualClock::at(T0)),
        )
        .err()
        .unwrap_or_else(|| panic!("{drop} accepted"));
        assert!(err.to_string().contains(drop), "{drop}: {err}");
        let text = err.to_string();
        assert!(
            !text.contains("BEGIN") && !text.contains(wx::API_V3_KEY),
            "{text}"
        );
    }
}
