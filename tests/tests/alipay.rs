//! Alipay end to end, what only Alipay has: the local server against a fake Alipay gateway
//! on loopback. Signed order strings and page/wap pay URLs, WAIT_BUYER_PAY, Alipay's own
//! malformed notifications, `refund_fee` as the running total of refunds, query and close
//! reaching the gateway correctly signed. Paying, duplicates (TRADE_FINISHED), refused
//! notifications, refunds (TRADE_CLOSED with refund_fee) and concurrent duplicates are in the
//! provider conformance suite.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::OrderId;
use tollgate::providers::QueryResult;
use tollgate_tests::alipay::{self as ali, FakeAlipay};
use tollgate_tests::*;

async fn setup(backend: Backend) -> Option<(Arc<TestServer>, FakeAlipay)> {
    let store = store_for(backend).await?;
    let fake = FakeAlipay::start().await;
    let gateway = format!("{}/gateway.do", fake.server.base);
    let app = app_with(store, ManualClock::at(T0), &ali::env(&gateway));
    Some((Arc::new(TestServer::start(app).await), fake))
}

async fn create(s: &TestServer, user: &str, body: Value) -> Value {
    let r = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn notify_raw(s: &TestServer, body: String) -> Reply {
    s.request(
        "POST",
        "/callbacks/alipay",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
    )
    .await
}

async fn notify(s: &TestServer, f: &BTreeMap<String, String>) -> Reply {
    notify_raw(s, ali::notification(f, &ali::alipay_signer())).await
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

fn assert_success(r: &Reply) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"success");
}

fn assert_failure(r: &Reply) {
    assert!(r.status >= 400, "{}", r.status);
    assert_eq!(&r.body[..], b"failure");
}

fn params(q: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn order_string_and_pay_urls_are_signed_with_the_order_expiry() {
    let (s, fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "wang",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let order_string = o["payment"]["order_string"].as_str().unwrap();
    assert!(ali::request_sign_ok(order_string), "RSA2 with the app key");
    let p = params(order_string);
    assert_eq!(p["method"], "alipay.trade.app.pay");
    assert_eq!(
        p["notify_url"],
        "https://tollgate.example.com/callbacks/alipay"
    );
    let biz: Value = serde_json::from_str(&p["biz_content"]).unwrap();
    assert_eq!(biz["out_trade_no"], o["order_id"]);
    assert_eq!(biz["total_amount"], "9.00");
    assert_eq!(biz["subject"], "Channel pass");
    // expires_at = T0 + 900 = 2027-01-15T08:15:00Z = 16:15:00 in China.
    assert_eq!(biz["time_expire"], "2027-01-15 16:15:00");

    for (channel, method) in [
        ("page", "alipay.trade.page.pay"),
        ("wap", "alipay.trade.wap.pay"),
    ] {
        let o = create(
            &s,
            "wang",
            json!({"product_id": "coins-100", "provider": "alipay", "channel": channel}),
        )
        .await;
        let url = o["payment"]["pay_url"].as_str().unwrap();
        let (gateway, query) = url.split_once('?').unwrap();
        assert_eq!(gateway, format!("{}/gateway.do", fake.server.base));
        assert!(ali::request_sign_ok(query));
        assert_eq!(params(query)["method"], method);
        let biz: Value = serde_json::from_str(&params(query)["biz_content"]).unwrap();
        assert_eq!(biz["total_amount"], "6.00");
    }
    s.call(
        "wang",
        "POST",
        "/orders",
        Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay", "channel": "qr"})),
    )
    .await
    .assert_problem(400);
    assert!(
        fake.server.seen().is_empty(),
        "paying needs no call to Alipay"
    );
}

/// WAIT_BUYER_PAY is genuine but says nothing happened yet: acknowledged, nothing changes.
#[tokio::test]
async fn waiting_for_the_buyer_is_acknowledged_without_change() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "chen",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    assert_success(&notify(&s, &ali::fields(id, "WAIT_BUYER_PAY", "9.00")).await);
    assert_eq!(order_state(&s, "chen", id).await, "PENDING");
    assert!(grants(&s, "chen").await.is_empty());
}

/// Alipay's own ways to be wrong: an amount with more than two decimals, an empty body, a
/// `sign_type` other than RSA2. Forged, tampered, unsigned, wrong app/seller/amount and
/// unknown-order notifications are in the provider conformance suite.
/// Alipay's `refund_fee` is the total refunded on the trade so far: each notification counts
/// only what it adds, a repeated or older one nothing, and access ends at the whole 9.00.
#[tokio::test]
async fn refund_fee_is_the_running_total() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "lu",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    assert_success(&notify(&s, &ali::fields(id, "TRADE_SUCCESS", "9.00")).await);
    let refunded = |fee: &str, request: Option<&str>| {
        let mut f = ali::fields(id, "TRADE_CLOSED", "9.00");
        f.insert("refund_fee".into(), fee.into());
        f.insert("gmt_refund".into(), "2027-01-15 17:00:00.123".into());
        if let Some(r) = request {
            f.insert("out_biz_no".into(), r.into());
        }
        f
    };
    let counted = |s: Arc<TestServer>| async move {
        let o = s
            .app
            .store
            .get_order(&OrderId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        (o.refunded_amount, o.refund_ids.len())
    };
    for (fee, request, expect) in [
        ("3.00", Some("RQ1"), (300, 1)),
        ("3.00", Some("RQ1"), (300, 1)),
        ("5.00", Some("RQ2"), (500, 2)),
        ("3.00", Some("RQ1"), (500, 2)),
    ] {
        assert_success(&notify(&s, &refunded(fee, request)).await);
        assert_eq!(order_state(&s, "lu", id).await, "PAID");
        assert_eq!(grants(&s, "lu").await.len(), 1, "access kept");
        assert_eq!(counted(s.clone()).await, expect, "refund_fee {fee}");
    }
    assert_success(&notify(&s, &refunded("9.00", None)).await);
    assert_eq!(order_state(&s, "lu", id).await, "REFUNDED");
    assert!(grants(&s, "lu").await.is_empty(), "access revoked");
    assert_eq!(counted(s.clone()).await, (900, 3));
    assert_success(&notify(&s, &refunded("9.00", None)).await);
    // More than was paid is refused, and changes nothing.
    assert_failure(&notify(&s, &refunded("9.01", None)).await);
    assert_eq!(counted(s.clone()).await, (900, 3));
}

#[tokio::test]
async fn inexact_amounts_empty_bodies_and_rsa1_are_refused() {
    let (s, _fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "liu",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let id = o["order_id"].as_str().unwrap();
    let good = ali::fields(id, "TRADE_SUCCESS", "9.00");
    assert_failure(&notify(&s, &ali::fields(id, "TRADE_SUCCESS", "9.001")).await);
    assert_failure(&notify_raw(&s, String::new()).await);
    let mut f = good.clone();
    f.insert("sign_type".into(), "RSA".into());
    assert_failure(&notify(&s, &f).await);

    assert_eq!(order_state(&s, "liu", id).await, "PENDING");
    assert!(grants(&s, "liu").await.is_empty());
    // `+` inside a value survives decoding (the subject holds one), and the real one works.
    assert_success(&notify(&s, &good).await);
    assert_eq!(grants(&s, "liu").await.len(), 1);
}

#[tokio::test]
async fn query_and_close_reach_the_gateway_signed() {
    let (s, fake) = setup(Backend::Memory).await.unwrap();
    let o = create(
        &s,
        "yang",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let id = tollgate::domain::OrderId::parse(o["order_id"].as_str().unwrap()).unwrap();
    let order = s.app.store.get_order(&id).await.unwrap().unwrap();
    let p = s.app.providers.query("alipay").unwrap().clone();
    assert_eq!(
        p.query(&order).await.unwrap(),
        QueryResult::NotPaid,
        "ACQ.TRADE_NOT_EXIST"
    );
    p.close(&order).await.unwrap();
    fake.trades.set(
        id.as_str(),
        json!({"trade_status": "WAIT_BUYER_PAY", "trade_no": "2027011522001", "total_amount": "9.00"}),
    );
    assert_eq!(p.query(&order).await.unwrap(), QueryResult::NotPaid);
    fake.trades.set(
        id.as_str(),
        json!({"trade_status": "TRADE_SUCCESS", "trade_no": "2027011522001", "total_amount": "9.00",
               "send_pay_date": "2027-01-15 16:01:00"}),
    );
    match p.query(&order).await.unwrap() {
        QueryResult::Paid(tollgate::providers::ProviderEvent::Paid {
            provider_txn_id,
            amount,
            paid_at,
            ..
        }) => {
            assert_eq!(provider_txn_id, "2027011522001");
            assert_eq!(amount.amount, 900);
            assert_eq!(paid_at, Some(T0 + 60));
        }
        other => panic!("{other:?}"),
    }
    p.close(&order).await.unwrap();
    assert_eq!(p.query(&order).await.unwrap(), QueryResult::Closed);
    let seen = fake.server.seen();
    assert!(seen
        .iter()
        .all(|r| r.target == "/gateway.do" && r.method == "POST"));
    assert!(seen
        .iter()
        .all(|r| ali::request_sign_ok(&String::from_utf8_lossy(&r.body))));
    let methods: Vec<String> = seen
        .iter()
        .map(|r| ali::form(r)["method"].clone())
        .collect();
    assert_eq!(
        methods,
        [
            "alipay.trade.query",
            "alipay.trade.close",
            "alipay.trade.query",
            "alipay.trade.query",
            "alipay.trade.close",
            "alipay.trade.query"
        ]
    );
}

#[tokio::test]
async fn unsigned_gateway_answers_are_unavailable() {
    let fake = tollgate_tests::fake::FakeServer::start(Arc::new(|_s: &tollgate_tests::fake::Seen| {
        tollgate_tests::fake::Answer {
            status: 200,
            headers: vec![],
            body: br#"{"alipay_trade_query_response":{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"x","trade_no":"1","total_amount":"9.00"}}"#.to_vec(),
        }
    }))
    .await;
    let store = store_for(Backend::Memory).await.unwrap();
    let s = TestServer::start(app_with(store, ManualClock::at(T0), &ali::env(&fake.base))).await;
    let o = create(
        &s,
        "he",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let id = tollgate::domain::OrderId::parse(o["order_id"].as_str().unwrap()).unwrap();
    let order = s.app.store.get_order(&id).await.unwrap().unwrap();
    let p = s.app.providers.query("alipay").unwrap().clone();
    assert!(matches!(
        p.query(&order).await,
        Err(tollgate::providers::ProviderError::Unavailable(_))
    ));
}
