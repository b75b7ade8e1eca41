//! Endpoints a 410 Gone disabled, as operators see and undo it, on both stores: listed
//! (support may read), enabled again by an admin with an audit record, exactly once under 24
//! simultaneous requests; then an event recorded while it was disabled reaches it by a
//! redelivery, and new events by the dispatcher.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::webhooks::{verify, Receiver};
use tollgate_tests::*;

const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn disabled_then_enabled(store: Arc<dyn Store>) {
    let rx = Receiver::start().await;
    let url = rx.url();
    let mut catalog: Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["lines"] = json!([{"id": "all", "products": {"pattern": "*"},
                               "webhooks": [{"url": url, "secret": KEY, "events": ["order.paid"]}]}]);
    let s = Arc::new(
        TestServer::start(app_with(
            store.clone(),
            ManualClock::at(T0),
            &[("CATALOG_JSON", catalog.to_string())],
        ))
        .await,
    );
    // What a 410 answer does (the dispatcher's tests prove that path).
    store.disable_endpoint(&url, T0).await.unwrap();
    let order = s.buy("fan", "pass", Some("7d")).await;

    let support = bearer_with_scope("helpdesk", Some("tollgate:support"));
    let r = s
        .request(
            "GET",
            "/admin/webhooks/disabled",
            &[("authorization", support.as_str())],
            String::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["endpoints"],
        json!([{"url": url, "disabled_at": tollgate::domain::time::rfc3339(T0)}])
    );
    let enable = format!(
        "/admin/webhooks/disabled?url={}&reason=fixed",
        url.replace(':', "%3A").replace('/', "%2F")
    );
    let r = s
        .request(
            "DELETE",
            &enable,
            &[("authorization", support.as_str())],
            String::new(),
        )
        .await;
    r.assert_problem(403);
    s.admin("DELETE", "/admin/webhooks/disabled", None)
        .await
        .assert_problem(400);
    let r = s.call("fan", "DELETE", &enable, None).await;
    r.assert_problem(403);

    // 24 admins at once: one enables it, the others find it enabled already.
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let (s, enable) = (s.clone(), enable.clone());
            tokio::spawn(async move { s.admin("DELETE", &enable, None).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 404),
        "{statuses:?}"
    );
    let r = s.admin("GET", "/admin/webhooks/disabled", None).await;
    assert_eq!(r.json()["endpoints"], json!([]));
    let trail = s
        .admin("GET", &format!("/admin/audit?since={}", T0 - 10), None)
        .await
        .json();
    let enabled: Vec<&Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "enable_webhook")
        .collect();
    assert_eq!(enabled.len(), 1, "{trail}");
    assert_eq!(enabled[0]["actor"], "ops");
    assert_eq!(enabled[0]["reason"], "fixed");
    assert_eq!(enabled[0]["before"]["url"], url.as_str());

    // The payment made while it was disabled: a redelivery sends it, signed.
    let events = s
        .admin("GET", "/admin/events?type=order.paid", None)
        .await
        .json();
    let paid = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["order_id"] == order.as_str())
        .unwrap()
        .clone();
    let r = s
        .admin(
            "POST",
            &format!("/admin/events/{}/redeliver", paid["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["deliveries"][0]["state"], "delivered");
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    assert!(verify(KEY, &seen[0]));
    assert_eq!(seen[0].header("webhook-id"), paid["id"].as_str().unwrap());
    // Not disabled any more: a second enable is a 404.
    s.admin("DELETE", &enable, None).await.assert_problem(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabled_then_enabled_memory() {
    disabled_then_enabled(store_for(Backend::Memory).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabled_then_enabled_dynamo() {
    let Some(store) = store_for(Backend::Dynamo).await else {
        return;
    };
    disabled_then_enabled(store).await;
}
