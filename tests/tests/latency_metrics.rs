//! The latency metrics (EMF, milliseconds, so CloudWatch keeps p50/p90/p99): a paid
//! callback times its verification and its settle, a stream token request its issue, and
//! the DynamoDB store each transaction and read it makes, named by call.

use serde_json::json;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::metrics::Recording;
use tollgate_tests::*;

async fn timed(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let s = TestServer::start(test_app(store, ManualClock::at(T0))).await;
    // Recording sees this thread only: the test runtime is single-threaded, so the server's
    // tasks run here too.
    let r = Recording::start();
    s.buy("alice", "coins-100", None).await;
    assert_eq!(r.samples("CallbackVerifyMs", &[("Provider", "sandbox")]), 1);
    assert_eq!(r.samples("SettleMs", &[("Provider", "sandbox")]), 1);
    assert_eq!(r.samples("TokenIssueMs", &[]), 0);
    let t = s
        .call(
            "alice",
            "POST",
            "/streams/concert/tokens",
            Some(json!({"device_id": "phone"})),
        )
        .await;
    // Not bought: a preview of the concert.
    assert_eq!(t.status, 201, "{}", String::from_utf8_lossy(&t.body));
    assert_eq!(t.json()["preview"], true);
    assert_eq!(r.samples("TokenIssueMs", &[]), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_payment_and_a_token_request_are_timed_memory() {
    timed(Backend::Memory).await;
}

#[tokio::test]
async fn a_payment_and_a_token_request_are_timed_dynamo() {
    timed(Backend::Dynamo).await;
}

/// The DynamoDB store times its own calls: the settle transaction, the user's partition.
#[tokio::test]
async fn the_dynamodb_store_times_its_calls() {
    let Some(store) = moto_store().await else {
        return;
    };
    let store: Arc<dyn tollgate::store::Store> = Arc::new(store);
    let s = TestServer::start(test_app(store, ManualClock::at(T0))).await;
    let r = Recording::start();
    s.buy("bob", "coins-100", None).await;
    assert_eq!(r.samples("StoreCallMs", &[("Call", "create order")]), 1);
    assert_eq!(r.samples("StoreCallMs", &[("Call", "settle")]), 1);
    s.call("bob", "GET", "/entitlements", None).await;
    assert!(r.samples("StoreCallMs", &[("Call", "user items")]) >= 1);
    s.stop().await;
}
