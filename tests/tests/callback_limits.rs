//! The caps of the routes providers call (`api::callback_limits`), over HTTP on the local
//! server: on every route, a request over its provider's body or parameter cap is refused
//! before it is read (413 / 400, in the provider's own failure answer, or problem+json for
//! the app stores), counted as `CallbackRejected` with the reason, and changes nothing. Each
//! refused request is otherwise genuine (correctly signed, padded with JSON whitespace or
//! extra signed fields), so without the caps it would have been applied; the same message
//! within the caps is applied afterwards.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use tollgate::api::callback_limits::{self, CallbackLimits};
use tollgate::clock::ManualClock;
use tollgate::metrics::Recording;
use tollgate_tests::alipay::{self as ali, FakeAlipay};
use tollgate_tests::apple;
use tollgate_tests::fake_google::{self as fg, FakeGoogle};
use tollgate_tests::huya as hy;
use tollgate_tests::wechat::{self as wx, FakeWechat};
use tollgate_tests::*;

/// `n` query parameters: one more than `limits` allow when `n = max_params + 1`.
fn query(n: usize) -> String {
    (0..n)
        .map(|i| format!("p{i}=1"))
        .collect::<Vec<_>>()
        .join("&")
}

fn over_params(l: CallbackLimits) -> String {
    format!("?{}", query(l.max_params + 1))
}

/// `body` followed by JSON whitespace up to one byte over `l`'s body cap: still the same
/// JSON, and signed as sent.
fn padded_json(body: &[u8], l: CallbackLimits) -> Vec<u8> {
    let mut b = body.to_vec();
    b.resize(l.max_body_bytes + 1, b' ');
    b
}

fn rejected(r: &Recording, provider: &str, reason: &str) -> i64 {
    r.total(
        "CallbackRejected",
        &[("Provider", provider), ("Reason", reason)],
    )
}

async fn order_state(s: &TestServer, user: &str, id: &str) -> String {
    let o = s
        .call(user, "GET", &format!("/orders/{id}"), None)
        .await
        .json();
    o["state"].as_str().unwrap_or("").to_owned()
}

async fn create(s: &TestServer, user: &str, body: Value) -> String {
    let r = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["order_id"].as_str().unwrap().to_owned()
}

fn headers(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn sandbox_over_its_caps_is_refused_and_changes_nothing() {
    let s = TestServer::start(test_app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    ))
    .await;
    let id = create(
        &s,
        "u1",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"}),
    )
    .await;
    let body = json!({"order_id": id, "transaction_id": "sbx_cap", "status": "paid",
                      "amount": {"amount": 900, "currency": "CNY"}, "timestamp": T0})
    .to_string();
    let send = |path: String, body: Vec<u8>| {
        let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, &body);
        let s = &s;
        async move {
            s.request(
                "POST",
                &path,
                &[
                    ("x-sandbox-signature", sig.as_str()),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    let rec = Recording::start();
    let l = callback_limits::SANDBOX;
    let r = send("/callbacks/sandbox".into(), padded_json(body.as_bytes(), l)).await;
    let p = r.assert_problem(413);
    assert_eq!(p["type"], "https://tollgate.dev/problems/callback-rejected");
    let r = send(
        format!("/callbacks/sandbox{}", over_params(l)),
        body.clone().into_bytes(),
    )
    .await;
    r.assert_problem(400);
    assert_eq!(rejected(&rec, "sandbox", "body_too_large"), 1);
    assert_eq!(rejected(&rec, "sandbox", "too_many_params"), 1);
    assert_eq!(order_state(&s, "u1", &id).await, "PENDING");
    // Within the caps, the same callback pays.
    let r = send(
        format!("/callbacks/sandbox?{}", query(l.max_params)),
        body.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(order_state(&s, "u1", &id).await, "PAID");
}

#[tokio::test]
async fn wechat_over_its_caps_is_refused_and_changes_nothing() {
    let fake = FakeWechat::start(T0).await;
    let app = app_with(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
        &wx::env(&fake.server.base),
    );
    let s = TestServer::start(app).await;
    let id = create(
        &s,
        "u1",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"}),
    )
    .await;
    let body = wx::notification(
        "TRANSACTION.SUCCESS",
        &wx::transaction(&id, "4200000001", 900),
        wx::API_V3_KEY,
    );
    let send = |path: String, body: Vec<u8>| {
        let h = wx::signed_headers(&body, T0, &wx::platform_signer(), wx::PUB_KEY_ID);
        let s = &s;
        async move { s.request("POST", &path, &headers(&h), body).await }
    };
    let failure = |r: &Reply, status: u16| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], "FAIL");
    };
    let rec = Recording::start();
    let l = callback_limits::WECHAT;
    failure(
        &send("/callbacks/wechat".into(), padded_json(&body, l)).await,
        413,
    );
    failure(
        &send(format!("/callbacks/wechat{}", over_params(l)), body.clone()).await,
        400,
    );
    assert_eq!(rejected(&rec, "wechat", "body_too_large"), 1);
    assert_eq!(rejected(&rec, "wechat", "too_many_params"), 1);
    assert_eq!(order_state(&s, "u1", &id).await, "PENDING");
    let r = send("/callbacks/wechat".into(), body).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(order_state(&s, "u1", &id).await, "PAID");
}

#[tokio::test]
async fn alipay_over_its_caps_is_refused_and_changes_nothing() {
    let fake = FakeAlipay::start().await;
    let gateway = format!("{}/gateway.do", fake.server.base);
    let app = app_with(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
        &ali::env(&gateway),
    );
    let s = TestServer::start(app).await;
    let id = create(
        &s,
        "u1",
        json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"}),
    )
    .await;
    let fields = ali::fields(&id, "TRADE_SUCCESS", "9.00");
    let send = |path: String, f: BTreeMap<String, String>| {
        let s = &s;
        async move {
            s.request(
                "POST",
                &path,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                ali::notification(&f, &ali::alipay_signer()),
            )
            .await
        }
    };
    let failure = |r: &Reply, status: u16| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], b"failure");
    };
    let rec = Recording::start();
    let l = callback_limits::ALIPAY;
    // Extra fields, signed with the rest (Alipay adds fields over time: they are kept).
    let mut many = fields.clone();
    for i in 0..=l.max_params - fields.len() {
        many.insert(format!("extra_{i:03}"), "1".into());
    }
    failure(&send("/callbacks/alipay".into(), many).await, 400);
    let mut long = fields.clone();
    long.insert("body".into(), "x".repeat(l.max_body_bytes));
    failure(&send("/callbacks/alipay".into(), long).await, 413);
    // Query parameters count with the form's.
    failure(
        &send(
            format!("/callbacks/alipay?{}", query(l.max_params - fields.len())),
            fields.clone(),
        )
        .await,
        400,
    );
    assert_eq!(rejected(&rec, "alipay", "body_too_large"), 1);
    assert_eq!(rejected(&rec, "alipay", "too_many_params"), 2);
    assert_eq!(order_state(&s, "u1", &id).await, "PENDING");
    let r = send("/callbacks/alipay".into(), fields).await;
    assert_eq!(&r.body[..], b"success");
    assert_eq!(order_state(&s, "u1", &id).await, "PAID");
}

#[tokio::test]
async fn huya_over_its_caps_by_get_or_post_is_refused_and_sells_nothing() {
    let app = app_with(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
        &hy::env(),
    );
    let s = TestServer::start(app).await;
    let failure = |r: &Reply, status: u16| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert_ne!(r.json()["code"], 0);
    };
    let rec = Recording::start();
    let l = callback_limits::HUYA;
    let f = hy::fields("HY-CAP", "profile-cap", "hy-pass", "1", T0);
    let (auth, q) = hy::get(&f, hy::EXT_SECRET);
    let extra = query(l.max_params + 1 - f.len());
    let r = s
        .request(
            "GET",
            &format!("/callbacks/huya?{q}&{extra}"),
            &[("authorization", &auth)],
            "",
        )
        .await;
    failure(&r, 400);
    let (auth, body) = hy::post(&f, hy::EXT_SECRET);
    let padded = padded_json(body.as_bytes(), l);
    let auth_padded = hy::authorization(hy::EXT_SECRET, &T0.to_string(), &padded);
    let r = s
        .request(
            "POST",
            "/callbacks/huya",
            &[
                ("authorization", auth_padded.as_str()),
                ("content-type", "application/json"),
            ],
            padded,
        )
        .await;
    failure(&r, 413);
    assert_eq!(rejected(&rec, "huya", "body_too_large"), 1);
    assert_eq!(rejected(&rec, "huya", "too_many_params"), 1);
    let user = "huya:profile-cap";
    assert!(s
        .app
        .store
        .user_items(user)
        .await
        .unwrap()
        .grants
        .is_empty());
    let r = s
        .request(
            "POST",
            "/callbacks/huya",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(r.json()["code"], 0, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.app.store.user_items(user).await.unwrap().grants.len(), 1);
}

#[tokio::test]
async fn apple_notifications_over_their_caps_are_refused_and_not_recorded() {
    let app = apple::apple_app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    );
    let s = TestServer::start(app).await;
    let payload = apple::notification("cap-uuid-1", "TEST", None, T0, None, None);
    let body = json!({ "signedPayload": payload }).to_string();
    let send = |path: String, body: Vec<u8>| {
        let s = &s;
        async move {
            s.request("POST", &path, &[("content-type", "application/json")], body)
                .await
        }
    };
    let rec = Recording::start();
    let l = callback_limits::APPLE;
    // Past the cap of every route: the local server stops reading it, and Apple's route
    // still refuses it as its own.
    let mut huge = body.clone().into_bytes();
    huge.resize(l.max_body_bytes + 10_000, b' ');
    send("/notifications/apple".into(), huge)
        .await
        .assert_problem(413);
    send(
        format!("/notifications/apple{}", over_params(l)),
        body.clone().into_bytes(),
    )
    .await
    .assert_problem(400);
    assert_eq!(rejected(&rec, "apple", "body_too_large"), 1);
    assert_eq!(rejected(&rec, "apple", "too_many_params"), 1);
    // Nothing was recorded: the notification is new when it arrives within the caps.
    let r = send("/notifications/apple".into(), body.into_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], "recorded");
}

#[tokio::test]
async fn google_pushes_over_their_caps_are_refused_and_not_recorded() {
    let g = FakeGoogle::start().await;
    let s = TestServer::start(g.app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    ))
    .await;
    let note = json!({"version": "1.0", "packageName": fg::PACKAGE,
                      "eventTimeMillis": (T0 * 1000).to_string(), "testNotification": {"version": "1.0"}});
    let body = fg::push_body("cap-msg-1", &note);
    let auth = format!(
        "Bearer {}",
        fg::push_token("push_key.pem", fg::AUDIENCE, fg::PUSH_ACCOUNT)
    );
    let send = |path: String, body: Vec<u8>| {
        let (s, auth) = (&s, auth.clone());
        async move {
            s.request(
                "POST",
                &path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    let rec = Recording::start();
    let l = callback_limits::GOOGLE;
    send(
        "/notifications/google".into(),
        padded_json(body.as_bytes(), l),
    )
    .await
    .assert_problem(413);
    send(
        format!("/notifications/google{}", over_params(l)),
        body.clone().into_bytes(),
    )
    .await
    .assert_problem(400);
    assert_eq!(rejected(&rec, "google", "body_too_large"), 1);
    assert_eq!(rejected(&rec, "google", "too_many_params"), 1);
    let r = send("/notifications/google".into(), body.into_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["result"], "test");
    assert!(s
        .app
        .store
        .note_seen("google", "cap-msg-1", T0)
        .await
        .unwrap());
}

/// A body past the cap of every route, on a route no provider calls, is still the plain
/// problem+json 413 and counts no callback rejection.
#[tokio::test]
async fn other_routes_keep_the_global_cap() {
    let s = TestServer::start(test_app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    ))
    .await;
    let rec = Recording::start();
    let auth = bearer("u1");
    s.request(
        "POST",
        "/orders",
        &[("authorization", &auth)],
        vec![b' '; tollgate::api::MAX_BODY_BYTES + 1],
    )
    .await
    .assert_problem(413);
    assert_eq!(rec.total("CallbackRejected", &[]), 0);
}
