//! The local server's sandbox payment page: only the order's owner may pay or refund it (as
//! only the owner may read it), and the `pay_url` it hands out names the address the server
//! is really bound to.

use serde_json::json;
use tollgate::clock::ManualClock;
use tollgate_tests::*;

async fn server_and_order() -> (TestServer, String) {
    let store = store_for(Backend::Memory).await.expect("memory store");
    let s = TestServer::start(test_app(store, ManualClock::at(T0))).await;
    let created = s
        .call(
            "alice",
            "POST",
            "/orders",
            Some(json!({"product_id": "pass", "plan_id": "7d", "provider": "sandbox"})),
        )
        .await;
    assert_eq!(created.status, 201);
    (s, created.json().to_string())
}

#[tokio::test]
async fn the_pay_url_names_the_bound_address() {
    let (s, order) = server_and_order().await;
    let order: serde_json::Value = serde_json::from_str(&order).unwrap();
    // The test server listens on an ephemeral port, not on the configured PORT (3000).
    assert_eq!(
        order["payment"]["pay_url"],
        format!(
            "{}/sandbox/orders/{}/pay",
            s.base,
            order["order_id"].as_str().unwrap()
        ),
    );
    s.stop().await;
}

#[tokio::test]
async fn only_the_owner_pays_or_refunds_a_sandbox_order() {
    let (s, order) = server_and_order().await;
    let order: serde_json::Value = serde_json::from_str(&order).unwrap();
    let id = order["order_id"].as_str().expect("order id").to_owned();
    let pay = format!("/sandbox/orders/{id}/pay");

    let alice = bearer("alice");
    let bob = bearer("bob");
    let anonymous = s.request("POST", &pay, &[], "").await;
    anonymous.assert_problem(401);
    assert_eq!(
        anonymous
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    s.request("POST", &pay, &[("authorization", "Bearer forged")], "")
        .await
        .assert_problem(401);
    // Another user's order does not exist for him, exactly as with GET /orders/{id}.
    let bobs = s
        .request("POST", &pay, &[("authorization", &bob)], "")
        .await;
    bobs.assert_problem(404);
    let bob_reads = s.call("bob", "GET", &format!("/orders/{id}"), None).await;
    assert_eq!(bob_reads.status, 404);
    assert_eq!(bobs.json()["type"], bob_reads.json()["type"]);
    let state = || async { s.call("alice", "GET", &format!("/orders/{id}"), None).await };
    assert_eq!(state().await.json()["state"], "PENDING");

    let paid = s
        .request("POST", &pay, &[("authorization", &alice)], "")
        .await;
    assert_eq!(paid.status, 200, "{}", String::from_utf8_lossy(&paid.body));
    assert_eq!(paid.json()["callback_status"], 200);
    assert_eq!(state().await.json()["state"], "PAID");

    let refund = r#"{"status":"refunded"}"#;
    s.request("POST", &pay, &[], refund)
        .await
        .assert_problem(401);
    s.request("POST", &pay, &[("authorization", &bob)], refund)
        .await
        .assert_problem(404);
    assert_eq!(state().await.json()["state"], "PAID");
    let refunded = s
        .request("POST", &pay, &[("authorization", &alice)], refund)
        .await;
    assert_eq!(refunded.json()["callback_status"], 200);
    assert_eq!(state().await.json()["state"], "REFUNDED");
    s.stop().await;
}
