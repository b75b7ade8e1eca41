//! `GET /admin/stats` against a seeded two-day history with known answers, on both stores;
//! the counters are written by the same transactions that create, settle and refund.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate_tests::*;

async fn buy(s: &TestServer, user: &str, body: Value, pay: bool, clock: &ManualClock) -> Value {
    let o = s.call(user, "POST", "/orders", Some(body)).await;
    assert_eq!(o.status, 201);
    let o = o.json();
    if pay {
        let cb = json!({"order_id": o["order_id"], "transaction_id": format!("st-{}", o["order_id"].as_str().unwrap()),
                        "status": "paid", "amount": o["amount"], "timestamp": tollgate::clock::Clock::now(clock)});
        assert_eq!(s.sandbox_callback(&cb).await.status, 200);
    }
    o
}

async fn history(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app(store, clock.clone())).await;
    let pass = json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"});
    let coins = json!({"product_id": "coins-100", "provider": "sandbox"});
    // Day 1 (2027-01-15): alice 3 orders, pays 2; bob 1 coin order, paid.
    let a1 = buy(&s, "alice", pass.clone(), true, &clock).await;
    buy(&s, "alice", pass.clone(), true, &clock).await;
    buy(&s, "alice", pass.clone(), false, &clock).await;
    buy(&s, "bob", coins.clone(), true, &clock).await;
    // Day 2: alice comes back; carol buys twice; dave never pays; alice's first order is refunded.
    clock.advance(DAY);
    buy(&s, "alice", pass.clone(), true, &clock).await;
    buy(&s, "carol", pass.clone(), true, &clock).await;
    buy(&s, "carol", coins.clone(), true, &clock).await;
    buy(&s, "dave", pass.clone(), false, &clock).await;
    let refund = json!({"order_id": a1["order_id"], "transaction_id": format!("st-{}", a1["order_id"].as_str().unwrap()),
                        "status": "refunded", "amount": a1["amount"], "timestamp": T0 + DAY});
    assert_eq!(s.sandbox_callback(&refund).await.status, 200);

    let r = s
        .admin("GET", "/admin/stats?from=2027-01-14&to=2027-01-16", None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let days = r.json()["days"].clone();
    assert_eq!(days.as_array().unwrap().len(), 3);
    assert_eq!(days[0]["orders_created"], 0);
    assert_eq!(days[0]["conversion_rate"], Value::Null);
    let d1 = &days[1];
    assert_eq!(d1["day"], "2027-01-15");
    assert_eq!(
        (d1["orders_created"].clone(), d1["orders_paid"].clone()),
        (json!(4), json!(3))
    );
    assert_eq!(d1["conversion_rate"], 0.75);
    assert_eq!(d1["revenue"], json!({"CNY": 2400}));
    assert_eq!(
        (d1["paying_users"].clone(), d1["repeat_payers"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(d1["repurchase_rate"], 0.5);
    assert_eq!(d1["revenue_per_paying_user"], json!({"CNY": 1200}));
    assert_eq!(d1["refunds"], 0);
    let d2 = &days[2];
    assert_eq!(
        (d2["orders_created"].clone(), d2["orders_paid"].clone()),
        (json!(4), json!(3))
    );
    assert_eq!(d2["revenue"], json!({"CNY": 2400}));
    assert_eq!(
        (d2["paying_users"].clone(), d2["repeat_payers"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(d2["repurchase_rate"], 1.0);
    assert_eq!(d2["revenue_per_paying_user"], json!({"CNY": 1200}));
    assert_eq!(d2["refunds"], 1);
    // Bad ranges are refused.
    s.admin("GET", "/admin/stats?from=2027-01-16&to=2027-01-14", None)
        .await
        .assert_problem(400);
    s.admin("GET", "/admin/stats?from=2027-01-01", None)
        .await
        .assert_problem(400);
    s.admin("GET", "/admin/stats?from=2026-01-01&to=2027-01-01", None)
        .await
        .assert_problem(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_from_a_seeded_history_memory() {
    history(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_from_a_seeded_history_dynamo() {
    history(Backend::Dynamo).await;
}

/// Who calls `GET /admin/stats` through API Gateway.
#[derive(Debug, Clone, Copy)]
enum Via {
    Nobody,
    Iam,
    /// The JWT authorizer's claims, with this `scope`.
    Jwt(&'static str),
}

fn admin_event(via: Via) -> String {
    let mut ctx = json!({
        "accountId": "123456789012", "apiId": "x", "domainName": "x.example.com", "domainPrefix": "x",
        "http": {"method": "GET", "path": "/admin/stats", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "t"},
        "requestId": "r", "routeKey": "GET /admin/stats", "stage": "$default", "time": "15/Jan/2027:08:00:00 +0000", "timeEpoch": 0
    });
    match via {
        Via::Nobody => {}
        Via::Iam => {
            ctx["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA",
                                                "userArn": "arn:aws:iam::123456789012:user/ops", "userId": "AIDA"}});
        }
        Via::Jwt(scope) => {
            ctx["authorizer"] =
                json!({"jwt": {"claims": {"sub": "someone", "scope": scope}, "scopes": null}});
        }
    }
    json!({"version": "2.0", "routeKey": "GET /admin/stats", "rawPath": "/admin/stats",
           "rawQueryString": "from=2027-01-15&to=2027-01-15", "queryStringParameters": {"from": "2027-01-15", "to": "2027-01-15"},
           "headers": {}, "requestContext": ctx, "isBase64Encoded": false})
    .to_string()
}

#[tokio::test]
async fn in_lambda_the_admin_route_needs_an_iam_caller_or_an_operators_role() {
    let mut vars = std::collections::HashMap::from([("CATALOG_JSON".to_string(), catalog_json())]);
    vars.insert("AUTH_MODE".into(), "apigw".into());
    let config = tollgate::config::Config::from_lookup(tollgate::config::Profile::Lambda, |k| {
        vars.get(k).cloned()
    })
    .unwrap();
    let app = Arc::new(
        tollgate::app::App::new(
            config,
            store_for(Backend::Memory).await.unwrap(),
            Arc::new(ManualClock::at(T0)),
        )
        .unwrap(),
    );
    for (via, status) in [
        (Via::Nobody, 401),
        (Via::Jwt("openid profile"), 403),
        (Via::Jwt("tollgate:supporter"), 403),
        (Via::Iam, 200),
        (Via::Jwt("openid tollgate:support"), 200),
        (Via::Jwt("tollgate:admin"), 200),
    ] {
        let req = lambda_http::request::from_str(&admin_event(via)).unwrap();
        let resp = tollgate::lambda::handle_event(&app, tollgate::api::Routes::Orders, req).await;
        assert_eq!(resp.status().as_u16(), status, "{via:?}");
    }
}
