//! Abuse controls over HTTP, on both stores: stream tokens bound to the client address
//! (`STREAM_BIND_IP`), publish keys for pushes, and per-stream or global bans, checked at
//! token issue and at verify.

use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::*;

/// During the test catalog's concert (it starts at T0 + DAY).
const LIVE: i64 = T0 + DAY + 3600;
const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn server_on(store: Arc<dyn Store>, extra: &[(&str, &str)]) -> (TestServer, ManualClock) {
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(store, clock.clone(), extra)).await;
    (s, clock)
}

async fn token(s: &TestServer, user: &str, device: &str) -> Reply {
    s.call(
        user,
        "POST",
        "/streams/concert/tokens",
        Some(json!({"device_id": device})),
    )
    .await
}

async fn verify(s: &TestServer, headers: &[(&str, &str)], body: String) -> Reply {
    s.request("POST", "/streams/verify", headers, body).await
}

fn srs(action: &str, ip: &str, param: &str) -> String {
    json!({"action": action, "client_id": "3g2x", "ip": ip, "vhost": "__defaultVhost__",
           "app": "live", "stream": "concert", "param": param, "server_id": "vid-x"})
    .to_string()
}

fn mtx(action: &str, ip: &str, query: &str) -> String {
    json!({"user": "", "password": "", "token": "", "ip": ip, "action": action,
           "path": "live/concert", "protocol": "rtmp", "id": null, "query": query})
    .to_string()
}

/// The claims of a native token, decoded (not verified).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(2).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

async fn ip_binding(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (s, clock) = server_on(store, &[("STREAM_BIND_IP", "true")]).await;
    s.buy("ipfan", "concert", None).await;
    clock.set(LIVE);
    let r = token(&s, "ipfan", "phone").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let tok = r.json()["token"].as_str().unwrap().to_owned();
    // The test client reaches the local server from the loopback address.
    assert_eq!(claims(&tok)["ip"], "127.0.0.1");
    let param = format!("?token={tok}");

    // Each media server's view of the client: allowed from the address the token names.
    let r = verify(&s, &[JSON], srs("on_play", "127.0.0.1", &param)).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"0"[..]));
    let rtmp = |addr: &str| format!("call=play&addr={addr}&app=live&name=concert&token={tok}");
    assert_eq!(verify(&s, &[FORM], rtmp("127.0.0.1")).await.status, 200);
    let q = format!("token={tok}");
    assert_eq!(
        verify(&s, &[JSON], mtx("read", "::ffff:127.0.0.1", &q))
            .await
            .status,
        200,
        "an IPv4-mapped address is the same client"
    );
    let uri = format!("/live/concert.m3u8?token={tok}");
    let auth_request =
        |ip: &'static str| [("x-original-uri", uri.clone()), ("x-real-ip", ip.into())];
    let h = auth_request("127.0.0.1");
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(verify(&s, &h, String::new()).await.status, 200);

    // From anywhere else (or from an unknown address), refused with the reason.
    for r in [
        verify(&s, &[JSON], srs("on_play", "198.51.100.7", &param)).await,
        verify(&s, &[FORM], rtmp("198.51.100.7")).await,
        verify(&s, &[JSON], mtx("read", "2001:db8::7", &q)).await,
        verify(
            &s,
            &[
                ("x-original-uri", uri.as_str()),
                ("x-real-ip", "198.51.100.7"),
            ],
            String::new(),
        )
        .await,
        verify(&s, &[("x-original-uri", uri.as_str())], String::new()).await,
        verify(&s, &[JSON], json!({ "token": tok }).to_string()).await,
    ] {
        let p = r.assert_problem(403);
        assert_eq!(p["detail"], "token bound to another client IP", "{p}");
        assert_ne!(p["code"], 0);
    }
    s.stop().await;
}

#[tokio::test]
async fn bound_tokens_play_only_from_their_address_memory() {
    ip_binding(Backend::Memory).await;
}

#[tokio::test]
async fn bound_tokens_play_only_from_their_address_dynamo() {
    ip_binding(Backend::Dynamo).await;
}

#[tokio::test]
async fn without_stream_bind_ip_tokens_are_not_bound() {
    let (s, clock) = server_on(store_for(Backend::Memory).await.unwrap(), &[]).await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    let tok = token(&s, "fan", "phone").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(claims(&tok).get("ip").is_none());
    let r = verify(
        &s,
        &[JSON],
        srs("on_play", "198.51.100.7", &format!("?token={tok}")),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn stream_bind_ip_binds_the_nginx_format_too() {
    let (s, clock) = server_on(
        store_for(Backend::Memory).await.unwrap(),
        &[("STREAM_BIND_IP", "true")],
    )
    .await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    let r = s
        .call(
            "fan",
            "POST",
            "/streams/concert/tokens",
            Some(json!({"device_id": "tv", "format": "nginx"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let t = r.json();
    let url = t["url"].as_str().unwrap();
    let expires: i64 = url.rsplit_once("expires=").unwrap().1.parse().unwrap();
    let with_ip = tollgate::stream::nginx::nginx_secure_link_hash(
        expires,
        "/live/concert.m3u8",
        Some("127.0.0.1"),
        NGINX_SECRET,
    );
    assert_eq!(t["token"], with_ip);
}

async fn rotate(s: &TestServer, stream: &str) -> Reply {
    s.admin(
        "POST",
        &format!("/admin/streams/{stream}/publish-key"),
        None,
    )
    .await
}

async fn publish_keys(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    // The publish key of a stream outlives the server: it is stored, not configured.
    let (s, _) = server_on(store.clone(), &[]).await;
    let pushes = |key: &str| {
        vec![
            (
                vec![JSON],
                srs("on_publish", "198.51.100.9", &format!("?key={key}")),
            ),
            (
                vec![FORM],
                format!("call=publish&addr=198.51.100.9&app=live&name=concert&key={key}"),
            ),
            (
                vec![FORM],
                format!("call=publish&app=live&name=concert&args=key%3D{key}"),
            ),
            (
                vec![JSON],
                mtx("publish", "198.51.100.9", &format!("key={key}")),
            ),
        ]
    };
    // No key set for the stream yet: every push is refused.
    for (headers, body) in pushes("anything") {
        let p = verify(&s, &headers, body).await.assert_problem(403);
        assert!(
            p["detail"].as_str().unwrap().contains("no publish key"),
            "{p}"
        );
    }

    let r = rotate(&s, "concert").await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let first = r.json();
    assert_eq!(first["version"], 1);
    let key1 = first["publish_key"].as_str().unwrap().to_owned();
    for (headers, body) in pushes(&key1) {
        let r = verify(&s, &headers, body.clone()).await;
        assert_eq!(
            r.status,
            200,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = verify(
        &s,
        &[JSON],
        srs("on_publish", "198.51.100.9", &format!("?key={key1}")),
    )
    .await;
    assert_eq!(&r.body[..], b"0", "SRS reads 0 as allowed");
    s.stop().await;

    let (s, _) = server_on(store, &[]).await;
    let r = verify(
        &s,
        &[JSON],
        mtx("publish", "198.51.100.9", &format!("key={key1}")),
    )
    .await;
    assert_eq!(r.status, 200, "the key is still there for another process");
    // Wrong key, no key, or another stream's name: refused.
    let mut refused = pushes(&key1[1..]);
    refused.push((vec![JSON], srs("on_publish", "198.51.100.9", "")));
    refused.push((
        vec![FORM],
        format!("call=publish&app=live&name=other&key={key1}"),
    ));
    refused.push((
        vec![JSON],
        json!({"action": "publish", "path": "live/concert/../other", "query": format!("key={key1}")})
            .to_string(),
    ));
    for (headers, body) in refused {
        verify(&s, &headers, body).await.assert_problem(403);
    }

    // Rotation: the old key stops at once, the new one works.
    let second = rotate(&s, "concert").await.json();
    assert_eq!(second["version"], 2);
    let key2 = second["publish_key"].as_str().unwrap();
    assert_ne!(key2, key1);
    for (headers, body) in pushes(&key1) {
        let p = verify(&s, &headers, body).await.assert_problem(403);
        assert_eq!(p["detail"], "wrong publish key");
    }
    for (headers, body) in pushes(key2) {
        assert_eq!(verify(&s, &headers, body).await.status, 200);
    }
    // A publish key never opens a play, and a token never opens a publish.
    let r = verify(
        &s,
        &[JSON],
        srs("on_play", "198.51.100.9", &format!("?token={key2}")),
    )
    .await;
    r.assert_problem(403);
    rotate(&s, "no-such-stream").await.assert_problem(404);
    s.stop().await;
}

#[tokio::test]
async fn publish_needs_the_streams_current_key_memory() {
    publish_keys(Backend::Memory).await;
}

#[tokio::test]
async fn publish_needs_the_streams_current_key_dynamo() {
    publish_keys(Backend::Dynamo).await;
}

async fn ban(s: &TestServer, user: &str, body: Value) -> Reply {
    s.admin("POST", &format!("/admin/users/{user}/bans"), Some(body))
        .await
}

async fn unban(s: &TestServer, user: &str, scope: &str) -> Reply {
    s.admin("DELETE", &format!("/admin/users/{user}/bans/{scope}"), None)
        .await
}

async fn bans(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (s, clock) = server_on(store, &[]).await;
    let user = "banned-user".to_owned();
    s.buy(&user, "concert", None).await;
    clock.set(LIVE);
    let tok = token(&s, &user, "phone").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let play = || srs("on_play", "198.51.100.7", &format!("?token={tok}"));
    assert_eq!(verify(&s, &[JSON], play()).await.status, 200);

    // A ban of this stream: no new token, and the token already out stops at once.
    let r = ban(
        &s,
        &user,
        json!({"stream_id": "concert", "reason": "restreaming"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream_id"], "concert");
    let p = token(&s, &user, "phone").await.assert_problem(403);
    assert_eq!(p["type"], "https://tollgate.dev/problems/banned");
    assert_eq!(p["reason"], "restreaming");
    assert_eq!(p["until"], Value::Null);
    let p = verify(&s, &[JSON], play()).await.assert_problem(403);
    assert_eq!(p["detail"], "banned: restreaming");
    // Others are not touched.
    let other = format!("{user}-other");
    s.buy(&other, "concert", None).await;
    assert_eq!(token(&s, &other, "phone").await.status, 201);

    // Lifted: back at once.
    assert_eq!(unban(&s, &user, "concert").await.status, 204);
    unban(&s, &user, "concert").await.assert_problem(404);
    assert_eq!(verify(&s, &[JSON], play()).await.status, 200);
    assert_eq!(token(&s, &user, "phone").await.status, 201);

    // A global ban with an end: refused until then, then allowed again.
    let until = tollgate::domain::time::rfc3339(LIVE + 600);
    let r = ban(&s, &user, json!({"until": until, "reason": "chargeback"})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["stream_id"], "*");
    let p = token(&s, &user, "phone").await.assert_problem(403);
    assert_eq!(p["until"], until);
    verify(&s, &[JSON], play()).await.assert_problem(403);
    // Banning the same scope again replaces the ban (200).
    let r = ban(
        &s,
        &user,
        json!({"stream_id": "*", "until": until, "reason": "chargeback x2"}),
    )
    .await;
    assert_eq!(r.status, 200);
    clock.set(LIVE + 600);
    assert_eq!(token(&s, &user, "phone").await.status, 201);
    assert_eq!(unban(&s, &user, "*").await.status, 204);

    // Bad requests.
    ban(&s, &user, json!({"stream_id": "nope", "reason": "x"}))
        .await
        .assert_problem(404);
    ban(&s, &user, json!({"reason": ""}))
        .await
        .assert_problem(400);
    ban(&s, &user, json!({"reason": "x", "until": "soon"}))
        .await
        .assert_problem(400);
    ban(
        &s,
        &user,
        json!({"reason": "x", "until": tollgate::domain::time::rfc3339(T0)}),
    )
    .await
    .assert_problem(400);
    ban(&s, &user, json!({"reason": "x", "extra": 1}))
        .await
        .assert_problem(400);
    // User ids are percent-decoded from the path.
    let r = ban(&s, "auth0%7Cabc", json!({"reason": "x"})).await;
    assert_eq!(r.json()["user_id"], "auth0|abc");
    assert_eq!(unban(&s, "auth0%7Cabc", "%2A").await.status, 204);
    s.stop().await;
}

#[tokio::test]
async fn bans_stop_issue_and_verify_memory() {
    bans(Backend::Memory).await;
}

#[tokio::test]
async fn bans_stop_issue_and_verify_dynamo() {
    bans(Backend::Dynamo).await;
}

#[tokio::test]
async fn bans_cost_no_extra_round_trip() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    let (s, clock) = server_on(counting.clone(), &[]).await;
    s.buy("fan", "concert", None).await;
    // Bans on other scopes sit in the partition the token issue reads anyway.
    assert_eq!(
        ban(&s, "fan", json!({"stream_id": "*", "until": tollgate::domain::time::rfc3339(T0 + 60), "reason": "cooldown"}))
            .await
            .status,
        201
    );
    clock.set(LIVE);
    counting.take();
    let r = token(&s, "fan", "phone").await;
    assert_eq!(r.status, 201);
    let calls = counting.take();
    assert_eq!(calls.values().sum::<u64>(), 2, "{calls:?}");
    let tok = r.json()["token"].as_str().unwrap().to_owned();
    let r = verify(
        &s,
        &[JSON],
        srs("on_play", "198.51.100.7", &format!("?token={tok}")),
    )
    .await;
    assert_eq!(r.status, 200);
    let calls = counting.take();
    assert_eq!(calls.values().sum::<u64>(), 1, "{calls:?}");
}

/// In Lambda, the address is API Gateway's `sourceIp`, and admin routes need the IAM
/// authorizer's caller.
#[tokio::test]
async fn lambda_binds_the_source_ip_and_guards_admin_routes() {
    let store: Arc<dyn Store> = Arc::new(tollgate::store::MemoryStore::new());
    let clock = ManualClock::at(T0);
    let config = test_config(&[("STREAM_BIND_IP", "true"), ("AUTH_MODE", "apigw")]);
    let app = Arc::new(
        tollgate::app::App::new(
            tollgate::config::Config {
                profile: tollgate::config::Profile::Lambda,
                ..config
            },
            store,
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );
    let event = |method: &str, path: &str, body: &str, authorizer: Value| {
        let e = json!({
            "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path,
            "rawQueryString": "", "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "tollgate",
                "domainName": "tollgate.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "tollgate",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.10", "userAgent": "sample"},
                "requestId": "r", "routeKey": format!("{method} {path}"), "stage": "$default",
                "time": "15/Jan/2027:08:00:00 +0000", "timeEpoch": 1_800_000_000_000_i64,
                "authorizer": authorizer
            },
            "body": body, "isBase64Encoded": false
        });
        lambda_http::request::from_str(&e.to_string()).unwrap()
    };
    let viewer = json!({"jwt": {"claims": {"sub": "lambda-fan"}, "scopes": null}});
    let operator = json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012",
        "callerId": "AIDA", "principalOrgId": null,
        "userArn": "arn:aws:iam::123456789012:user/operator", "userId": "AIDA"}});
    let routes = tollgate::api::Routes::Streams;

    // The concert's free preview is enough for a token.
    clock.set(LIVE);
    let r = tollgate::lambda::handle_event(
        &app,
        routes,
        event(
            "POST",
            "/streams/concert/tokens",
            r#"{"device_id":"phone"}"#,
            viewer.clone(),
        ),
    )
    .await;
    assert_eq!(r.status(), 201, "{:?}", r.body());
    let body: Value = serde_json::from_slice(r.body().as_ref()).unwrap();
    assert_eq!(
        claims(body["token"].as_str().unwrap())["ip"],
        "203.0.113.10"
    );

    // Admin routes: the viewer's JWT is not enough, the IAM caller is.
    for (method, path, body) in [
        ("POST", "/admin/streams/concert/publish-key", ""),
        ("POST", "/admin/users/lambda-fan/bans", r#"{"reason":"x"}"#),
        ("DELETE", "/admin/users/lambda-fan/bans/*", ""),
    ] {
        let r =
            tollgate::lambda::handle_event(&app, routes, event(method, path, body, viewer.clone()))
                .await;
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    for (method, path, body, status) in [
        ("POST", "/admin/streams/concert/publish-key", "", 201),
        (
            "POST",
            "/admin/users/lambda-fan/bans",
            r#"{"reason":"x"}"#,
            201,
        ),
        ("DELETE", "/admin/users/lambda-fan/bans/*", "", 204),
    ] {
        let r = tollgate::lambda::handle_event(
            &app,
            routes,
            event(method, path, body, operator.clone()),
        )
        .await;
        assert_eq!(r.status(), status, "{method} {path}: {:?}", r.body());
    }
    // Behind a JWT authorizer, an operator's role claim does it too, and the operator is
    // recorded with the change.
    let admin = json!({"jwt": {"claims": {"sub": "ops-1", "scope": "openid tollgate:admin"}, "scopes": null}});
    let r = tollgate::lambda::handle_event(
        &app,
        routes,
        event(
            "POST",
            "/admin/users/lambda-fan/bans",
            r#"{"reason":"x"}"#,
            admin,
        ),
    )
    .await;
    assert_eq!(r.status(), 201, "{:?}", r.body());
    let body: Value = serde_json::from_slice(r.body().as_ref()).unwrap();
    assert_eq!(body["created_by"], "ops-1");
    let support =
        json!({"jwt": {"claims": {"sub": "help-1", "scope": "tollgate:support"}, "scopes": null}});
    let r = tollgate::lambda::handle_event(
        &app,
        routes,
        event("DELETE", "/admin/users/lambda-fan/bans/*", "", support),
    )
    .await;
    assert_eq!(r.status(), 403, "support reads, never changes");
    // Each change's audit record names its operator and API Gateway's request id.
    let trail = app
        .store
        .user_audit("lambda-fan", 10, None, None)
        .await
        .unwrap()
        .records;
    assert_eq!(trail.len(), 3, "two bans and a lift: {trail:?}");
    assert!(trail.iter().all(|r| r.request_id == "r"), "{trail:?}");
    let mut actors: Vec<_> = trail.iter().map(|r| r.actor.as_str()).collect();
    actors.sort();
    let iam = "arn:aws:iam::123456789012:user/operator";
    assert_eq!(actors, [iam, iam, "ops-1"]);
}
