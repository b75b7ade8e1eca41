//! Refunds an operator starts (`POST /admin/orders/{id}/refunds`), end to end on both stores:
//! the local server against fake WeChat Pay and Alipay servers on loopback, which count the
//! refund calls they receive and never refund one id twice. Whole and partial refunds,
//! partials adding up, the policy that partial refunds revoke, a lost answer or notification
//! finished by the sweeper, a provider's refusal, repeated and concurrent requests, orders
//! the seller cannot refund, and who may ask.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::service::sweep::sweep;
use tollgate::store::{SettleOutcome, Settlement, Store};
use tollgate_tests::alipay::{self as ali, FakeAlipay};
use tollgate_tests::fake::RefundMode;
use tollgate_tests::wechat::{self as wx, FakeWechat};
use tollgate_tests::*;

struct Env {
    s: Arc<TestServer>,
    clock: ManualClock,
    store: Arc<dyn Store>,
    wechat: FakeWechat,
    alipay: FakeAlipay,
}

async fn setup(backend: Backend, extra: &[(&'static str, String)]) -> Option<Env> {
    let store = store_for(backend).await?;
    let wechat = FakeWechat::start(T0).await;
    let alipay = FakeAlipay::start().await;
    let mut vars = wx::env(&wechat.server.base);
    vars.extend(ali::env(&format!("{}/gateway.do", alipay.server.base)));
    vars.retain(|(k, _)| *k != "PROVIDERS");
    vars.push(("PROVIDERS", "sandbox,wechat,alipay".into()));
    vars.extend(extra.iter().cloned());
    let clock = ManualClock::at(T0);
    let app = app_with(store.clone(), clock.clone(), &vars);
    Some(Env {
        s: Arc::new(TestServer::start(app).await),
        clock,
        store,
        wechat,
        alipay,
    })
}

/// Both stores, each test: DynamoDB (moto) only when the test command provides it.
async fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Memory];
    if std::env::var("TOLLGATE_MOTO_ENDPOINT").is_ok() {
        b.push(Backend::Dynamo);
    }
    b
}

impl Env {
    /// A paid WeChat Pay order of `user` (the 9.00 pass): its id and transaction id.
    async fn paid_wechat(&self, user: &str) -> (String, String) {
        let r = self
            .s
            .call(
                user,
                "POST",
                "/orders",
                Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["order_id"].as_str().unwrap().to_owned();
        let txn = format!("42000{}", &id[10..]);
        let body = wx::notification(
            "TRANSACTION.SUCCESS",
            &wx::transaction(&id, &txn, 900),
            wx::API_V3_KEY,
        );
        assert_eq!(self.wechat_notify(&body).await.status, 204);
        (id, txn)
    }

    async fn wechat_notify(&self, body: &[u8]) -> Reply {
        let headers = wx::signed_headers(body, T0, &wx::platform_signer(), wx::PUB_KEY_ID);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.s
            .request("POST", "/callbacks/wechat", &h, body.to_vec())
            .await
    }

    /// A paid Alipay order of `user` (the 9.00 pass).
    async fn paid_alipay(&self, user: &str) -> String {
        let r = self
            .s
            .call(
                user,
                "POST",
                "/orders",
                Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "alipay"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["order_id"].as_str().unwrap().to_owned();
        let mut f = ali::fields(&id, "TRADE_SUCCESS", "9.00");
        // Each payment its own trade_no.
        f.insert("trade_no".into(), format!("2027{}", &id[10..]));
        let r = self.alipay_notify(&f).await;
        assert_eq!(r.body.as_ref(), b"success", "{}", r.status);
        id
    }

    async fn alipay_notify(&self, f: &std::collections::BTreeMap<String, String>) -> Reply {
        self.s
            .request(
                "POST",
                "/callbacks/alipay",
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                ali::notification(f, &ali::alipay_signer()),
            )
            .await
    }

    /// An operator's refund request with `key`.
    async fn refund(&self, order: &str, key: &str, body: Value) -> Reply {
        refund_as(&self.s, &admin_bearer("ops"), order, key, body).await
    }

    async fn order(&self, id: &str) -> Value {
        let r = self
            .s
            .admin("GET", &format!("/admin/orders/{id}"), None)
            .await;
        assert_eq!(r.status, 200);
        r.json()
    }

    async fn live_grants(&self, user: &str) -> usize {
        let e = self.s.call(user, "GET", "/entitlements", None).await.json();
        e["grants"].as_array().map_or(0, Vec::len)
    }
}

async fn refund_as(s: &TestServer, auth: &str, order: &str, key: &str, body: Value) -> Reply {
    s.request(
        "POST",
        &format!("/admin/orders/{order}/refunds"),
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
        body.to_string(),
    )
    .await
}

fn assert_refund(r: &Reply, status: u16, state: &str) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["state"], state, "{v}");
    v
}

#[tokio::test]
async fn a_whole_wechat_refund_ends_access_when_confirmed_and_its_notification_counts_nothing_more()
{
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let (id, txn) = e.paid_wechat("w-full").await;
        assert_eq!(e.live_grants("w-full").await, 1);
        let r = e
            .refund(&id, "full-1", json!({"reason": "stream broke"}))
            .await;
        let v = assert_refund(&r, 201, "CONFIRMED");
        assert_eq!(v["amount"], json!({"amount": 900, "currency": "CNY"}));
        assert_eq!(v["remaining"]["amount"], 0);
        assert_eq!(v["requested_by"], "ops");
        assert_eq!(v["reason"], "stream broke");
        assert!(v["refund_id"].as_str().unwrap().starts_with('R'));
        // What WeChat Pay was asked, signed by the merchant.
        let seen = e.wechat.server.seen();
        let call = seen
            .iter()
            .find(|s| s.target == "/v3/refund/domestic/refunds")
            .expect("a refund call");
        assert!(wx::authorization_ok(call));
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["out_trade_no"], id.as_str());
        assert_eq!(body["transaction_id"], txn.as_str());
        assert_eq!(body["out_refund_no"], v["refund_id"]);
        assert_eq!(body["reason"], "stream broke");
        assert_eq!(
            body["notify_url"],
            "https://tollgate.example.com/callbacks/wechat"
        );
        assert_eq!(
            body["amount"],
            json!({"refund": 900, "total": 900, "currency": "CNY"})
        );
        let o = e.order(&id).await;
        assert_eq!(o["state"], "REFUNDED");
        assert_eq!(o["refunded_amount"], 900);
        assert_eq!(o["refund_requested"], 0, "the hold is released");
        assert_eq!(e.live_grants("w-full").await, 0, "access ended");
        // WeChat Pay's REFUND.SUCCESS for the same refund: acknowledged, nothing counted.
        let made = e
            .wechat
            .refunds
            .get(v["refund_id"].as_str().unwrap())
            .unwrap();
        let note = wx::notification(
            "REFUND.SUCCESS",
            &wx::refund_numbered(&id, &txn, 900, 900, made["refund_id"].as_str().unwrap()),
            wx::API_V3_KEY,
        );
        assert_eq!(e.wechat_notify(&note).await.status, 204);
        let o = e.order(&id).await;
        assert_eq!(o["refunded_amount"], 900);
        assert_eq!(o["refund_ids"].as_array().unwrap().len(), 1);
        // Nothing remains: another request is refused with what remains.
        let r = e.refund(&id, "full-2", json!({"reason": "again"})).await;
        let p = r.assert_problem(422);
        assert_eq!(p["type"], "https://tollgate.dev/problems/refund-refused");
        assert!(
            p["detail"].as_str().unwrap().contains("nothing remains"),
            "{p}"
        );
        assert_eq!(p["remaining"]["amount"], 0);
        // The first request again, the order REFUNDED since: the same record, no call.
        let replay = e
            .refund(&id, "full-1", json!({"reason": "stream broke"}))
            .await;
        assert_eq!(
            assert_refund(&replay, 201, "CONFIRMED")["refund_id"],
            v["refund_id"]
        );
        assert_eq!(e.wechat.refunds.calls(), 1);
    }
}

#[tokio::test]
async fn partial_refunds_keep_access_and_add_up_to_a_whole_one() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let (id, _) = e.paid_wechat("w-part").await;
        let v = assert_refund(
            &e.refund(&id, "p-1", json!({"amount": 300, "reason": "late start"}))
                .await,
            201,
            "CONFIRMED",
        );
        assert_eq!(v["remaining"]["amount"], 600);
        let o = e.order(&id).await;
        assert_eq!(
            (o["state"].as_str(), o["refunded_amount"].as_i64()),
            (Some("PAID"), Some(300))
        );
        assert_eq!(
            e.live_grants("w-part").await,
            1,
            "a partial refund keeps access"
        );
        // More than remains: refused, naming what remains; nothing asked, nothing held.
        let p = e
            .refund(&id, "p-2", json!({"amount": 601, "reason": "too much"}))
            .await
            .assert_problem(422);
        assert_eq!(p["remaining"], json!({"amount": 600, "currency": "CNY"}));
        assert!(p["detail"].as_str().unwrap().contains("6.00"), "{p}");
        for bad in [
            json!({"amount": 0, "reason": "x"}),
            json!({"amount": -5, "reason": "x"}),
        ] {
            e.refund(&id, "p-bad", bad).await.assert_problem(422);
        }
        assert_eq!(e.wechat.refunds.calls(), 1);
        assert_eq!(e.order(&id).await["refund_requested"], 0);
        // The rest (no amount: all that remains) completes it and ends access.
        let v = assert_refund(
            &e.refund(&id, "p-3", json!({"reason": "the rest"})).await,
            201,
            "CONFIRMED",
        );
        assert_eq!(v["amount"]["amount"], 600);
        let o = e.order(&id).await;
        assert_eq!(
            (o["state"].as_str(), o["refunded_amount"].as_i64()),
            (Some("REFUNDED"), Some(900))
        );
        assert_eq!(e.live_grants("w-part").await, 0);
    }
}

#[tokio::test]
async fn partial_refunds_revoke_when_the_policy_says_so() {
    for backend in backends().await {
        let e = setup(backend, &[("PARTIAL_REFUND_REVOKES", "true".into())])
            .await
            .unwrap();
        let (id, _) = e.paid_wechat("w-policy").await;
        assert_refund(
            &e.refund(&id, "pol-1", json!({"amount": 100, "reason": "goodwill"}))
                .await,
            201,
            "CONFIRMED",
        );
        let o = e.order(&id).await;
        // Still PAID (more may be refunded), its access ended.
        assert_eq!(
            (o["state"].as_str(), o["refunded_amount"].as_i64()),
            (Some("PAID"), Some(100))
        );
        assert!(o["access_revoked_at"].is_string(), "{o}");
        assert_eq!(e.live_grants("w-policy").await, 0);
        // The rest completes it as usual.
        assert_refund(
            &e.refund(&id, "pol-2", json!({"reason": "rest"})).await,
            201,
            "CONFIRMED",
        );
        assert_eq!(e.order(&id).await["state"], "REFUNDED");
    }
}

#[tokio::test]
async fn a_lost_answer_or_notification_is_finished_by_the_sweeper() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        // Processing at WeChat Pay, and its notification lost: the sweeper asks.
        let (id, _) = e.paid_wechat("w-sweep").await;
        e.wechat.refunds.set_mode(RefundMode::Process);
        let v = assert_refund(
            &e.refund(&id, "s-1", json!({"reason": "broke"})).await,
            202,
            "PENDING",
        );
        let no = v["refund_id"].as_str().unwrap().to_owned();
        assert_eq!(e.live_grants("w-sweep").await, 1, "not confirmed yet");
        assert_eq!(e.order(&id).await["refund_requested"], 900);
        // Not due yet: nothing asked.
        assert_eq!(sweep(&e.s.app, i64::MAX).await.refunds.examined, 0);
        e.wechat.refunds.set_status(&no, "SUCCESS");
        e.clock.advance(61);
        let report = sweep(&e.s.app, i64::MAX).await;
        assert_eq!(report.refunds.confirmed, 1, "{report:?}");
        assert_eq!(e.order(&id).await["state"], "REFUNDED");
        assert_eq!(e.order(&id).await["refund_requested"], 0);
        assert_eq!(e.live_grants("w-sweep").await, 0);
        assert_eq!(
            sweep(&e.s.app, i64::MAX).await.refunds.examined,
            0,
            "left the index"
        );

        // The answer lost on the way back: REQUESTED, then found by the query.
        let (id, _) = e.paid_wechat("w-lost").await;
        e.wechat.refunds.set_mode(RefundMode::LoseAnswer);
        assert_refund(
            &e.refund(&id, "s-2", json!({"reason": "lost"})).await,
            202,
            "REQUESTED",
        );
        e.clock.advance(61);
        assert_eq!(sweep(&e.s.app, i64::MAX).await.refunds.confirmed, 1);
        assert_eq!(e.order(&id).await["state"], "REFUNDED");

        // The call never got through: sent again under the same id, refunded once.
        let (id, _) = e.paid_wechat("w-down").await;
        e.wechat.refunds.set_mode(RefundMode::Down);
        let calls = e.wechat.refunds.calls();
        assert_refund(
            &e.refund(&id, "s-3", json!({"reason": "down"})).await,
            202,
            "REQUESTED",
        );
        e.wechat.refunds.set_mode(RefundMode::Succeed);
        e.clock.advance(61);
        assert_eq!(sweep(&e.s.app, i64::MAX).await.refunds.confirmed, 1);
        assert_eq!(e.wechat.refunds.calls(), calls + 2, "sent again once");
        assert_eq!(e.order(&id).await["state"], "REFUNDED");
        assert_eq!(e.wechat.refunds.made(), 3);
    }
}

#[tokio::test]
async fn a_notification_before_the_answer_counts_once_and_the_sweeper_closes_the_request() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let (id, txn) = e.paid_wechat("w-note-first").await;
        e.wechat.refunds.set_mode(RefundMode::Process);
        let v = assert_refund(
            &e.refund(&id, "n-1", json!({"amount": 300, "reason": "partial"}))
                .await,
            202,
            "PENDING",
        );
        let no = v["refund_id"].as_str().unwrap().to_owned();
        let made = e.wechat.refunds.get(&no).unwrap();
        let refund_id = made["refund_id"].as_str().unwrap();
        // WeChat Pay's REFUND.SUCCESS arrives first: counted by its refund_id.
        let note = wx::notification(
            "REFUND.SUCCESS",
            &wx::refund_numbered(&id, &txn, 900, 300, refund_id),
            wx::API_V3_KEY,
        );
        assert_eq!(e.wechat_notify(&note).await.status, 204);
        let o = e.order(&id).await;
        assert_eq!(
            (
                o["refunded_amount"].as_i64(),
                o["refund_requested"].as_i64()
            ),
            (Some(300), Some(300))
        );
        // The sweeper's query confirms the same refund: nothing counted twice, hold released.
        e.wechat.refunds.set_status(&no, "SUCCESS");
        e.clock.advance(61);
        assert_eq!(sweep(&e.s.app, i64::MAX).await.refunds.confirmed, 1);
        let o = e.order(&id).await;
        assert_eq!(
            (
                o["refunded_amount"].as_i64(),
                o["refund_requested"].as_i64()
            ),
            (Some(300), Some(0))
        );
        assert_eq!(o["state"], "PAID");
        // The request reads CONFIRMED to a replay.
        assert_refund(
            &e.refund(&id, "n-1", json!({"amount": 300, "reason": "partial"}))
                .await,
            201,
            "CONFIRMED",
        );
    }
}

#[tokio::test]
async fn a_refused_refund_fails_counts_nothing_and_releases_its_amount() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let (id, _) = e.paid_wechat("w-refused").await;
        e.wechat
            .refunds
            .set_mode(RefundMode::Refuse("NOT_ENOUGH".into()));
        let r = e.refund(&id, "f-1", json!({"reason": "no money"})).await;
        let p = r.assert_problem(422);
        assert_eq!(p["type"], "https://tollgate.dev/problems/refund-failed");
        assert_eq!(p["refund"]["state"], "FAILED");
        assert_eq!(p["refund"]["failure"], "NOT_ENOUGH");
        assert_eq!(p["refund"]["remaining"]["amount"], 900);
        let o = e.order(&id).await;
        assert_eq!(o["state"], "PAID");
        assert_eq!(o["refunded_amount"], 0);
        assert_eq!(o["refund_requested"], 0);
        assert_eq!(e.live_grants("w-refused").await, 1);
        // The same key again: the same failed request, nothing asked again.
        e.refund(&id, "f-1", json!({"reason": "no money"}))
            .await
            .assert_problem(422);
        assert_eq!(e.wechat.refunds.calls(), 1);
        // The whole amount is free again for a new request.
        e.wechat.refunds.set_mode(RefundMode::Succeed);
        assert_refund(
            &e.refund(&id, "f-2", json!({"reason": "retry"})).await,
            201,
            "CONFIRMED",
        );
    }
}

#[tokio::test]
async fn the_same_key_makes_one_refund_at_the_provider_even_twenty_at_once() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let (id, _) = e.paid_wechat("w-dup").await;
        let first = assert_refund(
            &e.refund(&id, "dup-1", json!({"amount": 200, "reason": "dup"}))
                .await,
            201,
            "CONFIRMED",
        );
        let again = assert_refund(
            &e.refund(&id, "dup-1", json!({"amount": 200, "reason": "dup"}))
                .await,
            201,
            "CONFIRMED",
        );
        assert_eq!(first["refund_id"], again["refund_id"]);
        // Another body under the same key is refused.
        let p = e
            .refund(&id, "dup-1", json!({"amount": 300, "reason": "dup"}))
            .await
            .assert_problem(422);
        assert_eq!(
            p["type"],
            "https://tollgate.dev/problems/idempotency-key-reused"
        );
        assert_eq!(e.wechat.refunds.calls(), 1);

        // Twenty at once under one new key: one request, one call.
        let (id, _) = e.paid_wechat("w-dup20").await;
        let calls = e.wechat.refunds.calls();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = e.s.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    refund_as(
                        &s,
                        &admin_bearer("ops"),
                        &id,
                        "dup-20",
                        json!({"reason": "x"}),
                    )
                    .await
                })
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        for t in tasks {
            let r = t.await.unwrap();
            assert!(
                matches!(r.status, 201 | 202),
                "{}",
                String::from_utf8_lossy(&r.body)
            );
            ids.insert(r.json()["refund_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(e.wechat.refunds.calls(), calls + 1, "one refund call");
        // One audit record, by the operator, with the request's amount and reason.
        let audit =
            e.s.admin("GET", "/admin/audit?user_id=w-dup20", None)
                .await
                .json();
        let records = audit["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{audit}");
        assert_eq!(records[0]["action"], "refund");
        assert_eq!(records[0]["actor"], "ops");
        assert_eq!(records[0]["order_id"].as_str(), Some(id.as_str()));
        assert_eq!(records[0]["after"]["amount"], 900);
        assert_eq!(records[0]["reason"], "x");
        let o = e.order(&id).await;
        assert_eq!(
            (o["state"].as_str(), o["refunded_amount"].as_i64()),
            (Some("REFUNDED"), Some(900))
        );
    }
}

#[tokio::test]
async fn concurrent_requests_never_ask_for_more_than_was_paid() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let (id, _) = e.paid_wechat("w-race").await;
        // Twenty requests of 3.00 under different keys against a 9.00 order.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = e.s.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    refund_as(
                        &s,
                        &admin_bearer("ops"),
                        &id,
                        &format!("race-{i}"),
                        json!({"amount": 300, "reason": "race"}),
                    )
                    .await
                })
            })
            .collect();
        let mut confirmed = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                201 => confirmed += 1,
                422 | 503 => {}
                other => panic!("{other}: {}", String::from_utf8_lossy(&r.body)),
            }
        }
        assert_eq!(confirmed, 3);
        assert_eq!(e.wechat.refunds.made(), 3, "never more asked than was paid");
        let o = e.order(&id).await;
        assert_eq!(
            (o["state"].as_str(), o["refunded_amount"].as_i64()),
            (Some("REFUNDED"), Some(900))
        );
        assert_eq!(o["refund_requested"], 0);
    }
}

#[tokio::test]
async fn alipay_refunds_count_once_whatever_the_notification_says() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        let id = e.paid_alipay("a-part").await;
        let v = assert_refund(
            &e.refund(&id, "a-1", json!({"amount": 400, "reason": "partial"}))
                .await,
            201,
            "CONFIRMED",
        );
        let seen = e.alipay.server.seen();
        let call = seen.last().unwrap();
        assert!(ali::request_sign_ok(&String::from_utf8_lossy(&call.body)));
        let form = ali::form(call);
        assert_eq!(form["method"], "alipay.trade.refund");
        let biz: Value = serde_json::from_str(&form["biz_content"]).unwrap();
        assert_eq!(
            biz,
            json!({"out_trade_no": id, "out_request_no": v["refund_id"],
                   "refund_amount": "4.00", "refund_reason": "partial"})
        );
        assert_eq!(e.order(&id).await["refunded_amount"], 400);
        // Alipay's notification of it (refund_fee is the running total): nothing more.
        let mut f = ali::fields(&id, "TRADE_CLOSED", "9.00");
        f.insert("trade_no".into(), format!("2027{}", &id[10..]));
        f.insert("refund_fee".into(), "4.00".into());
        f.insert("out_biz_no".into(), v["refund_id"].as_str().unwrap().into());
        assert_eq!(e.alipay_notify(&f).await.body.as_ref(), b"success");
        assert_eq!(e.order(&id).await["refunded_amount"], 400);
        // The rest; then a refusal leaves the order as it was.
        assert_refund(
            &e.refund(&id, "a-2", json!({"reason": "rest"})).await,
            201,
            "CONFIRMED",
        );
        let o = e.order(&id).await;
        assert_eq!(
            (o["state"].as_str(), o["refunded_amount"].as_i64()),
            (Some("REFUNDED"), Some(900))
        );
        assert_eq!(e.live_grants("a-part").await, 0);

        let id = e.paid_alipay("a-refused").await;
        e.alipay
            .refunds
            .set_mode(RefundMode::Refuse("ACQ.TRADE_NOT_ALLOW_REFUND".into()));
        let p = e
            .refund(&id, "a-3", json!({"reason": "x"}))
            .await
            .assert_problem(422);
        assert_eq!(p["refund"]["failure"], "ACQ.TRADE_NOT_ALLOW_REFUND");
        assert_eq!(e.order(&id).await["refund_requested"], 0);

        // An answer lost: the sweeper's query finds the refund made.
        e.alipay.refunds.set_mode(RefundMode::LoseAnswer);
        assert_refund(
            &e.refund(&id, "a-4", json!({"reason": "lost"})).await,
            202,
            "REQUESTED",
        );
        e.clock.advance(61);
        assert_eq!(sweep(&e.s.app, i64::MAX).await.refunds.confirmed, 1);
        assert_eq!(e.order(&id).await["state"], "REFUNDED");
        assert!(e.alipay.refunds.queries() >= 1);
    }
}

#[tokio::test]
async fn sandbox_refunds_are_confirmed_at_once() {
    let e = setup(Backend::Memory, &[]).await.unwrap();
    let id = e.s.buy("sbx", "pass", Some("7d")).await;
    assert_refund(
        &e.refund(&id, "sbx-1", json!({"reason": "test"})).await,
        201,
        "CONFIRMED",
    );
    assert_eq!(e.order(&id).await["state"], "REFUNDED");
    assert_eq!(e.live_grants("sbx").await, 0);
}

/// A paid order of `provider` written straight into the store (the app stores and Huya
/// create theirs through their own flows).
async fn paid_order_of(store: &dyn Store, provider: &str, seed: u64) -> String {
    let mut o = conformance::pending(seed, &format!("{provider}-user"), T0);
    o.provider = provider.into();
    let st = Settlement {
        order_id: o.order_id.clone(),
        user_id: o.user_id.clone(),
        expected_state: tollgate::domain::OrderState::Pending,
        amount: o.amount,
        provider: provider.into(),
        provider_txn_id: format!("{provider}-txn-{seed}"),
        paid_at: T0,
        product_id: o.product_id.clone(),
        grants: o.grants_at(T0),
        credits: 0,
        recorded_at: T0,
        stream_id: None,
    };
    store.create_order(&o, None, &UNCAPPED, T0).await.unwrap();
    assert_eq!(store.settle(&st).await.unwrap(), SettleOutcome::Settled);
    o.order_id.to_string()
}

#[tokio::test]
async fn the_seller_cannot_refund_store_purchases_or_huya_sales() {
    for backend in backends().await {
        let e = setup(backend, &[]).await.unwrap();
        for (provider, seed, words) in [
            ("apple", 901, "reportaproblem.apple.com"),
            ("google", 902, "orders.refund"),
            ("huya", 903, "Huya"),
        ] {
            let id = paid_order_of(&*e.store, provider, seed).await;
            let p = e
                .refund(&id, "store-1", json!({"reason": "x"}))
                .await
                .assert_problem(422);
            assert!(p["detail"].as_str().unwrap().contains(words), "{p}");
        }
    }
}

#[tokio::test]
async fn only_admins_refund_and_bad_requests_change_nothing() {
    let e = setup(Backend::Memory, &[]).await.unwrap();
    let (id, _) = e.paid_wechat("w-auth").await;
    let body = json!({"reason": "x"});
    let support = bearer_with_scope("helper", Some(tollgate::api::auth::SUPPORT_ROLE));
    refund_as(&e.s, &support, &id, "k", body.clone())
        .await
        .assert_problem(403);
    refund_as(&e.s, &bearer("w-auth"), &id, "k", body.clone())
        .await
        .assert_problem(403);
    let r =
        e.s.request(
            "POST",
            &format!("/admin/orders/{id}/refunds"),
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "k"),
            ],
            body.to_string(),
        )
        .await;
    r.assert_problem(401);
    // Without a key, without a reason, too long a reason, unknown fields, unknown order.
    let r =
        e.s.admin(
            "POST",
            &format!("/admin/orders/{id}/refunds"),
            Some(body.clone()),
        )
        .await;
    r.assert_problem(400);
    e.refund(&id, "k", json!({})).await.assert_problem(400);
    e.refund(&id, "k", json!({"reason": "  "}))
        .await
        .assert_problem(400);
    e.refund(&id, "k", json!({"reason": "x".repeat(81)}))
        .await
        .assert_problem(400);
    e.refund(&id, "k", json!({"reason": "x", "amount": "9.00"}))
        .await
        .assert_problem(400);
    e.refund(&id, "k", json!({"reason": "x", "extra": 1}))
        .await
        .assert_problem(400);
    e.refund("01JZZZZZZZZZZZZZZZZZZZZZZZ", "k", body.clone())
        .await
        .assert_problem(404);
    e.refund("not-an-id", "k", body.clone())
        .await
        .assert_problem(404);
    assert_eq!(e.wechat.refunds.calls(), 0);
    let o = e.order(&id).await;
    assert_eq!(
        (
            o["refunded_amount"].as_i64(),
            o["refund_requested"].as_i64()
        ),
        (Some(0), Some(0))
    );
    // An unpaid order is not refunded.
    let r =
        e.s.call(
            "w-auth",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "wechat"})),
        )
        .await;
    let pending = r.json()["order_id"].as_str().unwrap().to_owned();
    let p = e.refund(&pending, "k", body).await.assert_problem(422);
    assert!(p["detail"].as_str().unwrap().contains("PENDING"), "{p}");
}
