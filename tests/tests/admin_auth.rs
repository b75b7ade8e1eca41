//! Admin routes need an operator, on the local server as in Lambda: every documented
//! `/admin` operation answers 401 without a token and 403 to a viewer's token; support staff
//! read but change nothing; an admin's changes record who made them, in the store.

use serde_json::json;
use tollgate::clock::{Clock, ManualClock};
use tollgate_tests::*;

/// A body each admin operation accepts, so that only the caller decides the answer.
fn body_for(method: &str, path: &str) -> Option<serde_json::Value> {
    (method == "POST" && path.ends_with("/bans"))
        .then(|| json!({"stream_id": "concert", "reason": "restreaming"}))
}

fn admin_operations() -> Vec<(String, String)> {
    let ops: Vec<_> = openapi::documented_operations()
        .into_iter()
        // The dashboard page itself holds no data and is public: what it reads is not.
        .filter(|(_, p)| p.starts_with("/admin/") && p != "/admin/")
        .collect();
    assert!(ops.len() >= 4, "the admin routes are documented: {ops:?}");
    ops
}

async fn call(s: &TestServer, method: &str, path: &str, auth: Option<&str>) -> Reply {
    let concrete = openapi::concrete(path, "target-user")
        .replace("/admin/stats", "/admin/stats?from=2027-01-14&to=2027-01-16");
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let body = body_for(method, path)
        .map(|b| b.to_string())
        .unwrap_or_default();
    s.request(method, &concrete, &headers, body).await
}

#[tokio::test]
async fn only_operators_reach_admin_routes() {
    let store = store_for(Backend::Memory).await.unwrap();
    let s = TestServer::start(test_app(store.clone(), ManualClock::at(T0))).await;
    let viewer = bearer("target-user");
    let near_miss = bearer_with_scope("x", Some("openid tollgate:administrator"));
    let support = bearer_with_scope("help-1", Some("openid tollgate:support"));
    for (method, path) in admin_operations() {
        let r = call(&s, &method, &path, None).await;
        r.assert_problem(401);
        assert_eq!(
            r.headers.get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{method} {path}"
        );
        for token in [&viewer, &near_miss] {
            let r = call(&s, &method, &path, Some(token)).await;
            let p = r.assert_problem(403);
            assert!(
                p["detail"].as_str().unwrap().contains("tollgate:admin"),
                "{method} {path}: {p}"
            );
        }
        let r = call(&s, &method, &path, Some(&support)).await;
        if method == "GET" {
            // Past the role check (the answer itself may be a 404 for a made-up id).
            assert!(
                r.status != 401 && r.status != 403,
                "{method} {path}: support may read, got {}",
                r.status
            );
        } else {
            r.assert_problem(403);
        }
    }
    // None of the refused calls changed anything, nor left an audit record.
    let items = store.user_items("target-user").await.unwrap();
    assert!(items.bans.is_empty(), "{:?}", items.bans);
    assert!(items.grants.is_empty(), "{:?}", items.grants);
    assert_eq!(items.credits, 0);
    assert!(store
        .audit_since(0, 10, None)
        .await
        .unwrap()
        .records
        .is_empty());
    assert_eq!(store.publish_key("concert").await.unwrap(), None);
    s.stop().await;
}

async fn operators_are_recorded(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let s = TestServer::start(test_app(store.clone(), ManualClock::at(T0))).await;
    let user = format!("recorded-{}", T0);
    let r = s
        .admin(
            "POST",
            &format!("/admin/users/{user}/bans"),
            Some(json!({"stream_id": "concert", "reason": "restreaming"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["created_by"], "ops");
    let bans = store.user_items(&user).await.unwrap().bans;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].created_by.as_deref(), Some("ops"));

    let r = s
        .admin("POST", "/admin/streams/concert/publish-key", None)
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["rotated_by"], "ops");
    let key = store.publish_key("concert").await.unwrap().unwrap();
    assert_eq!(key.rotated_by.as_deref(), Some("ops"));
    s.stop().await;
}

#[tokio::test]
async fn operators_are_recorded_with_their_changes_memory() {
    operators_are_recorded(Backend::Memory).await;
}

#[tokio::test]
async fn operators_are_recorded_with_their_changes_dynamo() {
    operators_are_recorded(Backend::Dynamo).await;
}

#[tokio::test]
async fn the_roles_claim_is_configurable() {
    let app = test_app_with(
        store_for(Backend::Memory).await.unwrap(),
        ManualClock::at(T0),
        &[("AUTH_ROLES_CLAIM", "roles")],
    );
    let s = TestServer::start(app).await;
    let path = "/admin/stats?from=2027-01-14&to=2027-01-16";
    // `scope` no longer counts; a `roles` array does.
    let scoped = admin_bearer("ops");
    let r = s
        .request("GET", path, &[("authorization", &scoped)], "")
        .await;
    r.assert_problem(403);
    let now = tollgate::clock::SystemClock.now();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "ops", "iat": now, "exp": now + 600, "roles": ["tollgate:support"]}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let r = s
        .request(
            "GET",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stop().await;
}
