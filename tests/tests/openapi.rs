//! `openapi.yaml` and the router agree: every documented operation is served (no 404 "no
//! such route", no 405), and every route the local server serves is documented.

use tollgate::clock::ManualClock;
use tollgate_tests::*;

fn documented() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap();
    let mut ops = Vec::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in text.lines() {
        if line == "paths:" {
            in_paths = true;
        } else if in_paths && !line.starts_with(' ') && !line.is_empty() {
            break;
        } else if in_paths && line.starts_with("  /") && line.ends_with(':') {
            path = line.trim().trim_end_matches(':').to_owned();
        } else if in_paths {
            for m in ["get", "post", "put", "delete", "patch"] {
                if line == format!("    {m}:") {
                    ops.push((m.to_uppercase(), path.clone()));
                }
            }
        }
    }
    ops
}

/// What the router serves, written out once more: a new route must be added here and to
/// openapi.yaml, or this test fails.
const SERVED: &[(&str, &str)] = &[
    ("POST", "/orders"),
    ("GET", "/orders/{id}"),
    ("POST", "/orders/{id}/cancel"),
    ("POST", "/orders/{id}/confirm"),
    ("POST", "/callbacks/{provider}"),
    ("GET", "/callbacks/huya"),
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
    ("POST", "/admin/streams/{stream_id}/publish-key"),
    ("POST", "/admin/users/{user_id}/bans"),
    ("DELETE", "/admin/users/{user_id}/bans/{scope}"),
];

#[tokio::test]
async fn openapi_matches_the_router() {
    let mut docs = documented();
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
        let concrete = path
            .replace("{id}", "01KQ0000000000000000000001")
            .replace("{provider}", "sandbox")
            .replace("{product_id}", "pass")
            .replace("{stream_id}", "concert")
            .replace("{user_id}", "openapi-user")
            .replace("{scope}", "*");
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
    assert_eq!(s.request("GET", "/admin", &[], "").await.status, 404);
}
