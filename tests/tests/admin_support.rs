//! Support's read-only routes on both stores: any user's order, the order behind a
//! provider's transaction id, and everything a user holds, before and after a refund.

use serde_json::Value;
use tollgate::clock::ManualClock;
use tollgate::domain::time::rfc3339;
use tollgate_tests::*;

async fn support_sees_what_was_decided(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app(store, clock.clone())).await;
    let user = format!("support-fan-{}", T0);
    let order = s.buy(&user, "pass", Some("7d")).await;

    let r = s
        .admin("GET", &format!("/admin/orders/{order}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    assert_eq!(o["order_id"], order.as_str());
    assert_eq!(o["user_id"], user.as_str());
    assert_eq!(o["state"], "PAID");
    assert_eq!(o["provider"], "sandbox");
    let txn = format!("txn-{order}");
    assert_eq!(o["provider_txn_id"], txn.as_str());
    assert_eq!(o["refunded_amount"], 0);

    let r = s
        .admin(
            "GET",
            &format!("/admin/lookup?provider=sandbox&transaction_id={txn}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), o, "the same order, by the provider's id");
    // Another provider's payment of the same id is another payment.
    s.admin(
        "GET",
        &format!("/admin/lookup?provider=wechat&transaction_id={txn}"),
        None,
    )
    .await
    .assert_problem(404);
    for bad in [
        "/admin/lookup?provider=sandbox",
        "/admin/lookup?transaction_id=x",
        "/admin/lookup?provider=Sand%23box&transaction_id=x",
        "/admin/lookup?provider=sandbox&transaction_id=a%20b",
    ] {
        s.admin("GET", bad, None).await.assert_problem(400);
    }
    s.admin("GET", "/admin/orders/not-an-order-id", None)
        .await
        .assert_problem(404);
    s.admin("GET", "/admin/orders/01KQ0000000000000000000001", None)
        .await
        .assert_problem(404);

    let user_path = format!("/admin/users/{user}");
    let view = s.admin("GET", &user_path, None).await;
    assert_eq!(view.status, 200, "{}", String::from_utf8_lossy(&view.body));
    let v = view.json();
    assert_eq!(v["user_id"], user.as_str());
    let grants = v["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{v}");
    assert_eq!(grants[0]["source_id"], order.as_str());
    assert_eq!(grants[0]["term"], serde_json::json!({"days": 7}));
    assert_eq!(grants[0]["revoked_at"], Value::Null);
    let live = v["entitlements"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{v}");
    assert_eq!(live[0]["valid_until"], rfc3339(T0 + 7 * DAY));

    // A token issue shows up as a device; a refund as a revoked grant with nothing to watch.
    clock.advance(60);
    s.refund(&order, 900).await;
    let v = s.admin("GET", &user_path, None).await.json();
    assert_eq!(v["grants"][0]["revoked_at"], rfc3339(T0 + 60), "{v}");
    assert_eq!(v["entitlements"], serde_json::json!([]));
    let o = s
        .admin("GET", &format!("/admin/orders/{order}"), None)
        .await
        .json();
    assert_eq!(o["state"], "REFUNDED");
    assert_eq!(o["refunded_amount"], 900);
    assert_eq!(o["refunded_at"], rfc3339(T0 + 60));

    // A user who never bought anything: empty, not an error.
    let v = s.admin("GET", "/admin/users/nobody-yet", None).await.json();
    assert_eq!(v["grants"], serde_json::json!([]));
    assert_eq!(v["credits"], 0);
    s.admin("GET", "/admin/users/a%23b", None)
        .await
        .assert_problem(400);
    s.stop().await;
}

/// A user's orders page by page, newest first, for the user and for support; nobody else's.
async fn order_history_pages(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app(store, clock.clone())).await;
    let user = format!("history-fan-{}", T0);
    let mut ids = Vec::new();
    for _ in 0..5 {
        // Order ids are time-ordered (by the app's clock): one a second.
        clock.advance(1);
        ids.push(s.buy(&user, "pass", Some("7d")).await);
    }
    s.buy("someone-else", "pass", Some("7d")).await;
    ids.reverse();
    for (path, who) in [
        ("/orders".to_owned(), Some(user.as_str())),
        (format!("/admin/users/{user}/orders"), None),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?limit=2&cursor={c}"),
                None => format!("{path}?limit=2"),
            };
            let r = match who {
                Some(u) => s.call(u, "GET", &url, None).await,
                None => s.admin("GET", &url, None).await,
            };
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let page = r.json();
            pages += 1;
            for o in page["orders"].as_array().unwrap() {
                assert_eq!(o["state"], "PAID");
                seen.push(o["order_id"].as_str().unwrap().to_owned());
                // Support sees whose it is; the owner needs no telling.
                assert_eq!(o.get("user_id").is_some(), who.is_none());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ids, "{path}: newest first, each once");
        assert_eq!(pages, 3, "{path}");
    }
    for bad in ["/orders?limit=0", "/orders?limit=101", "/orders?cursor=xyz"] {
        s.call(&user, "GET", bad, None).await.assert_problem(400);
    }
    // Without credentials: 401; a viewer cannot read another's history through admin.
    s.request("GET", "/orders", &[], "")
        .await
        .assert_problem(401);
    s.call(&user, "GET", &format!("/admin/users/{user}/orders"), None)
        .await
        .assert_problem(403);
    s.stop().await;
}

#[tokio::test]
async fn order_history_pages_memory() {
    order_history_pages(Backend::Memory).await;
}

#[tokio::test]
async fn order_history_pages_dynamo() {
    order_history_pages(Backend::Dynamo).await;
}

#[tokio::test]
async fn support_sees_what_was_decided_memory() {
    support_sees_what_was_decided(Backend::Memory).await;
}

#[tokio::test]
async fn support_sees_what_was_decided_dynamo() {
    support_sees_what_was_decided(Backend::Dynamo).await;
}
