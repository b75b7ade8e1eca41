//! `GET /admin/events` and `POST /admin/events/{id}/redeliver` over HTTP: events listed
//! with their line and delivery state, filtered by type and line; a redelivery posts again
//! under the same id; bad input is a 400 and changes nothing; viewers are refused.
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::MemoryStore;
use tollgate_tests::webhooks::{verify, Receiver};
use tollgate_tests::*;

const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn server(hook_url: &str) -> TestServer {
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog_json()).unwrap();
    catalog["lines"] = serde_json::json!([
        {"id": "passes", "products": {"ids": ["pass"]},
         "webhooks": [{"url": hook_url, "secret": KEY}]},
        {"id": "shows", "products": {"ids": ["concert", "coins-100", "vip", "vip-plus"]}}
    ]);
    let app = app_with(
        Arc::new(MemoryStore::new()),
        ManualClock::at(T0),
        &[("CATALOG_JSON", catalog.to_string())],
    );
    TestServer::start(app).await
}

fn events_of(r: &Reply) -> Vec<serde_json::Value> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_by_type_and_line_and_redelivered() {
    let rx = Receiver::start().await;
    let s = server(&rx.url()).await;
    let pass = s.buy("fan-1", "pass", Some("7d")).await;
    let concert = s.buy("fan-1", "concert", None).await;
    let all = events_of(
        &s.admin("GET", &format!("/admin/events?since={}", T0 - 10), None)
            .await,
    );
    let created: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["type"] == "order.created")
        .collect();
    assert_eq!(created.len(), 2);
    let passes = events_of(
        &s.admin("GET", "/admin/events?type=order.created&line=passes", None)
            .await,
    );
    assert_eq!(passes.len(), 1);
    assert_eq!(passes[0]["data"]["order_id"], pass);
    assert_eq!(passes[0]["line"], "passes");
    assert_eq!(passes[0]["deliveries"], serde_json::json!([]));
    let shows = events_of(&s.admin("GET", "/admin/events?line=shows", None).await);
    assert!(shows.iter().all(|e| e["line"] == "shows"));
    assert!(shows.iter().any(|e| e["data"]["order_id"] == concert));

    // Redelivered: posted, signed, under its id; again: posted again.
    let id = passes[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/events/{id}/redeliver");
    let r = s.admin("POST", &path, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d = &r.json()["deliveries"][0];
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_u64()),
        (Some("delivered"), Some(1))
    );
    assert_eq!(d["last_status"], 204);
    let r = s.admin("POST", &path, None).await;
    assert_eq!(r.json()["deliveries"][0]["attempts"], 2);
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|q| q.header("webhook-id") == id && verify(KEY, q)));

    // Bad input: a 400 naming it; unknown: 404; a viewer: 403.
    for bad in [
        "/admin/events?type=order.nope",
        "/admin/events?line=nope",
        "/admin/events?since=yesterday",
        "/admin/events?cursor=abc",
        "/admin/events?limit=0",
    ] {
        s.admin("GET", bad, None).await.assert_problem(400);
    }
    s.admin("POST", "/admin/events/not-an-id/redeliver", None)
        .await
        .assert_problem(400);
    s.admin(
        "POST",
        "/admin/events/evt_00000000000000000000000000000000/redeliver",
        None,
    )
    .await
    .assert_problem(404);
    assert_eq!(rx.seen().len(), 2, "nothing sent by refused requests");
    let viewer = s.call("fan-1", "GET", "/admin/events", None).await;
    viewer.assert_problem(403);
    let viewer = s.call("fan-1", "POST", &path, None).await;
    viewer.assert_problem(403);
    s.stop().await;
}
