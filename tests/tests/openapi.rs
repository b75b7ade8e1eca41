//! `openapi.yaml` and the router agree: every documented operation is served (no 404 "no
//! such route", no 405), and every route the local server serves is documented; its event
//! types are the ones written.

use tollgate::clock::ManualClock;
use tollgate_tests::*;

/// What the router serves, written out once more: a new route must be added here and to
/// openapi.yaml, or this test fails.
const SERVED: &[(&str, &str)] = &[
    ("POST", "/orders"),
    ("GET", "/orders"),
    ("GET", "/orders/{id}"),
    ("POST", "/orders/{id}/cancel"),
    ("POST", "/orders/{id}/confirm"),
    ("POST", "/callbacks/{provider}"),
    ("GET", "/callbacks/huya"),
    ("POST", "/callbacks/huya"),
    ("GET", "/entitlements"),
    ("GET", "/entitlements/{product_id}"),
    ("POST", "/purchases/apple"),
    ("POST", "/notifications/apple"),
    ("POST", "/purchases/google"),
    ("POST", "/notifications/google"),
    ("POST", "/streams/{stream_id}/tokens"),
    ("POST", "/streams/verify"),
    ("POST", "/sandbox/orders/{id}/pay"),
    ("GET", "/healthz"),
    ("GET", "/admin/stats"),
    ("GET", "/admin/"),
    ("GET", "/admin/orders/{id}"),
    ("POST", "/admin/orders/{id}/refunds"),
    ("GET", "/admin/lookup"),
    ("GET", "/admin/users/{user_id}"),
    ("GET", "/admin/users/{user_id}/orders"),
    ("POST", "/admin/streams/{stream_id}/publish-key"),
    ("POST", "/admin/users/{user_id}/bans"),
    ("DELETE", "/admin/users/{user_id}/bans/{scope}"),
    ("POST", "/admin/users/{user_id}/grants"),
    ("DELETE", "/admin/users/{user_id}/grants/{source_id}"),
    ("POST", "/admin/users/{user_id}/wallet"),
    ("GET", "/admin/audit"),
    ("GET", "/wallet"),
    ("POST", "/wallet/debits"),
    ("GET", "/products"),
    ("GET", "/streams"),
    ("GET", "/admin/events"),
    ("POST", "/admin/events/{id}/redeliver"),
    ("GET", "/admin/webhooks/disabled"),
    ("DELETE", "/admin/webhooks/disabled"),
];

#[tokio::test]
async fn openapi_matches_the_router() {
    let mut docs = openapi::documented_operations();
    docs.sort();
    let mut served: Vec<_> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(docs, served);
    let s = TestServer::start(test_app(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
    ))
    .await;
    let auth = bearer("openapi-user");
    for (method, path) in &docs {
        let concrete = openapi::concrete(path, "openapi-user");
        let r = s
            .request(method, &concrete, &[("authorization", &auth)], "")
            .await;
        assert_ne!(r.status, 405, "{method} {path}");
        if r.status == 404 {
            assert_ne!(
                r.json()["detail"],
                "no such route",
                "{method} {path} is documented but not routed"
            );
        }
    }
    // And an undocumented one is not served.
    assert_eq!(
        s.request("GET", "/admin/nothing", &[], "").await.status,
        404
    );
}

/// The event types `openapi.yaml` lists for webhooks are exactly the ones Tollgate writes.
#[test]
fn openapi_lists_every_event_type() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let documented: Vec<&str> = doc["components"]["schemas"]["EventType"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let written: Vec<&str> = tollgate::domain::event::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(documented, written);
}
