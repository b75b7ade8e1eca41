//! Stream tokens over HTTP: issue, previews, device limits (racing, on both stores), and the
//! verify hook in every media-server request shape.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::store::Store;
use tollgate_tests::wrappers::CountingStore;
use tollgate_tests::*;

/// During the test catalog's concert (it starts at T0 + DAY).
const LIVE: i64 = T0 + DAY + 3600;

async fn server_on(store: Arc<dyn Store>, extra: &[(&str, &str)]) -> (TestServer, ManualClock) {
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(store, clock.clone(), extra)).await;
    (s, clock)
}

async fn server() -> (TestServer, ManualClock) {
    server_on(store_for(Backend::Memory).await.unwrap(), &[]).await
}

async fn token(s: &TestServer, user: &str, device: &str, format: Option<&str>) -> Reply {
    let mut body = json!({"device_id": device});
    if let Some(f) = format {
        body["format"] = json!(f);
    }
    s.call(user, "POST", "/streams/concert/tokens", Some(body))
        .await
}

async fn issued(s: &TestServer, user: &str, device: &str) -> Value {
    let r = token(s, user, device, None).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn verify_plain(s: &TestServer, token: &Value) -> u16 {
    s.request(
        "POST",
        "/streams/verify",
        &[("content-type", "application/json")],
        json!({ "token": token }).to_string(),
    )
    .await
    .status
}

#[tokio::test]
async fn entitled_user_gets_a_token_in_each_format() {
    let (s, clock) = server().await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    let t = issued(&s, "fan", "phone").await;
    assert_eq!(t["preview"], false);
    let tok = t["token"].as_str().unwrap();
    assert!(tok.starts_with("v1.t1."), "{tok}");
    assert_eq!(
        t["url"],
        format!("https://live.example.com/live/concert.m3u8?token={tok}")
    );
    assert_eq!(t["expires_at"], tollgate::domain::ids::rfc3339(LIVE + 300));
    assert_eq!(t["session_id"].as_str().unwrap().len(), 32);
    assert_eq!(verify_plain(&s, &t["token"]).await, 200);

    // Same device again: the session is renewed, not replaced.
    let again = issued(&s, "fan", "phone").await;
    assert_eq!(again["session_id"], t["session_id"]);

    let n = token(&s, "fan", "phone", Some("nginx")).await;
    assert_eq!(n.status, 201);
    let url = n.json()["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("https://live.example.com/live/concert.m3u8?md5=")
            && url.ends_with(&format!("&expires={}", LIVE + 300)),
        "{url}"
    );
    let tc = token(&s, "fan", "phone", Some("tencent")).await.json();
    assert!(
        tc["url"]
            .as_str()
            .unwrap()
            .contains(&format!("txTime={:X}", LIVE + 300)),
        "{tc}"
    );
    token(&s, "fan", "phone", Some("aliyun"))
        .await
        .assert_problem(422);
    token(&s, "fan", "phone", Some("rot13"))
        .await
        .assert_problem(422);
    s.call(
        "fan",
        "POST",
        "/streams/nope/tokens",
        Some(json!({"device_id": "phone"})),
    )
    .await
    .assert_problem(404);
    s.call("fan", "POST", "/streams/concert/tokens", Some(json!({})))
        .await
        .assert_problem(400);
    s.call(
        "fan",
        "POST",
        "/streams/concert/tokens",
        Some(json!({"device_id": ""})),
    )
    .await
    .assert_problem(400);
    let r = s
        .request(
            "POST",
            "/streams/concert/tokens",
            &[("content-type", "application/json")],
            json!({"device_id": "phone"}).to_string(),
        )
        .await;
    r.assert_problem(401);
}

#[tokio::test]
async fn aliyun_format_when_configured() {
    let store = store_for(Backend::Memory).await.unwrap();
    let (s, clock) = server_on(store, &[("ALIYUN_AUTH_KEY", "test-aliyun-key")]).await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    let t = token(&s, "fan", "tv", Some("aliyun")).await.json();
    let url = t["url"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1;
    assert_eq!(
        tollgate::stream::aliyun::verify_aliyun_url(
            "/live/concert.m3u8",
            query,
            "test-aliyun-key",
            LIVE,
            0
        ),
        Ok(())
    );
}

#[tokio::test]
async fn one_free_preview_then_payment_required() {
    let (s, clock) = server().await;
    clock.set(LIVE);
    let first = issued(&s, "curious", "phone").await;
    assert_eq!(first["preview"], true);
    assert_eq!(
        first["expires_at"],
        tollgate::domain::ids::rfc3339(LIVE + 300),
        "preview_seconds (300) caps the token"
    );
    assert_eq!(verify_plain(&s, &first["token"]).await, 200);
    clock.advance(200);
    let second = issued(&s, "curious", "tablet").await;
    assert_eq!(second["preview"], true);
    assert_eq!(
        second["expires_at"],
        tollgate::domain::ids::rfc3339(LIVE + 300),
        "the window does not restart"
    );
    clock.advance(100);
    let p = token(&s, "curious", "phone", None)
        .await
        .assert_problem(402);
    let products: Vec<&str> = p["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["product_id"].as_str().unwrap())
        .collect();
    assert_eq!(products, ["concert", "vip", "vip-plus"], "{p}");
    assert_eq!(verify_plain(&s, &second["token"]).await, 403);
    // Buying after the preview opens the stream as usual.
    s.buy("curious", "concert", None).await;
    let paid = issued(&s, "curious", "phone").await;
    assert_eq!(paid["preview"], false);
}

#[tokio::test]
async fn token_issue_costs_two_round_trips_a_renewal_one_and_verify_one() {
    let counting = CountingStore::new(store_for(Backend::Memory).await.unwrap());
    let (s, clock) = server_on(counting.clone(), &[]).await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    counting.take();
    let t = issued(&s, "fan", "phone").await;
    let calls = counting.take();
    assert_eq!(calls.get("user_items"), Some(&1), "{calls:?}");
    // The first token for the paid grant: the sessions write also counts its first access.
    assert_eq!(calls.get("put_sessions_counted"), Some(&1), "{calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 2, "{calls:?}");
    assert_eq!(verify_plain(&s, &t["token"]).await, 200);
    let calls = counting.take();
    assert_eq!(calls.values().sum::<u64>(), 1, "{calls:?}");
    // A renewal by the same device within half a token's life changes nothing stored: the
    // query alone. Past that, it writes `last_seen` again.
    clock.advance(149);
    let renewed = issued(&s, "fan", "phone").await;
    assert_eq!(renewed["session_id"], t["session_id"]);
    let calls = counting.take();
    assert_eq!(calls.get("user_items"), Some(&1), "{calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 1, "renewal: {calls:?}");
    clock.advance(1);
    issued(&s, "fan", "phone").await;
    let calls = counting.take();
    assert_eq!(calls.get("put_sessions"), Some(&1), "{calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 2, "{calls:?}");
}

#[tokio::test]
async fn evicted_session_revoked_grant_and_expiry_are_denied_at_once() {
    let (s, clock) = server().await;
    let order = s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    let a = issued(&s, "fan", "a").await;
    clock.advance(1);
    let b = issued(&s, "fan", "b").await;
    clock.advance(1);
    assert_eq!(verify_plain(&s, &a["token"]).await, 200);
    let c = issued(&s, "fan", "c").await;
    assert_eq!(
        verify_plain(&s, &a["token"]).await,
        403,
        "a was least recently seen"
    );
    assert_eq!(verify_plain(&s, &b["token"]).await, 200);
    assert_eq!(verify_plain(&s, &c["token"]).await, 200);
    // a comes back: a new session for a, and b (now the oldest) is out.
    let a2 = issued(&s, "fan", "a").await;
    assert_ne!(a2["session_id"], a["session_id"]);
    assert_eq!(verify_plain(&s, &a["token"]).await, 403);
    assert_eq!(verify_plain(&s, &b["token"]).await, 403);
    assert_eq!(verify_plain(&s, &a2["token"]).await, 200);

    s.refund(&order, 1800).await;
    assert_eq!(
        verify_plain(&s, &a2["token"]).await,
        403,
        "refund revokes at once"
    );
    assert_eq!(verify_plain(&s, &c["token"]).await, 403);

    // Expiry, with a fresh purchase.
    s.buy("fan2", "concert", None).await;
    let t = issued(&s, "fan2", "phone").await;
    clock.advance(299);
    assert_eq!(verify_plain(&s, &t["token"]).await, 200);
    clock.advance(1);
    assert_eq!(verify_plain(&s, &t["token"]).await, 403);
}

#[tokio::test]
async fn deny_policy_refuses_a_third_device() {
    let store = store_for(Backend::Memory).await.unwrap();
    let (s, clock) = server_on(store, &[("DEVICE_POLICY", "deny")]).await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    issued(&s, "fan", "a").await;
    issued(&s, "fan", "b").await;
    let p = token(&s, "fan", "c", None).await.assert_problem(409);
    assert!(p["type"].as_str().unwrap().ends_with("device-limit"), "{p}");
    issued(&s, "fan", "a").await;
    // A session counts for a token's life and half of it after its last write (a renewal in
    // that half writes nothing, and its token must not outlive the session): then its slot is
    // free again.
    clock.advance(449);
    token(&s, "fan", "c", None).await.assert_problem(409);
    clock.advance(1);
    issued(&s, "fan", "c").await;
}

/// 32 devices of one account ask at once: exactly `MAX_DEVICES` sessions survive, and only
/// their tokens verify.
async fn device_race(backend: Backend, policy: &str) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let (s, clock) = server_on(store.clone(), &[("DEVICE_POLICY", policy)]).await;
    s.buy("racer", "concert", None).await;
    clock.set(LIVE);
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            token(&s, "racer", &format!("device-{i}"), None).await
        }));
    }
    let mut tokens = Vec::new();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        statuses.push(r.status);
        if r.status == 201 {
            tokens.push(r.json()["token"].clone());
        } else {
            let expected = if policy == "deny" { 409 } else { 503 };
            r.assert_problem(expected);
        }
    }
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    eprintln!(
        "device race ({policy}): {} issued, {} refused (409), {} gave up after retries (503)",
        count(201),
        count(409),
        count(503)
    );
    let sessions = store.user_items("racer").await.unwrap().sessions;
    assert_eq!(sessions.devices.len(), 2, "{statuses:?}");
    let mut live = 0;
    for t in &tokens {
        if verify_plain(&s, t).await == 200 {
            live += 1;
        }
    }
    assert_eq!(live, 2, "statuses {statuses:?}");
    if policy == "deny" {
        assert_eq!(tokens.len(), 2, "{statuses:?}");
    } else {
        assert!(tokens.len() >= 2, "{statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_race_leaves_two_sessions_memory() {
    device_race(Backend::Memory, "evict").await;
    device_race(Backend::Memory, "deny").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_race_leaves_two_sessions_dynamo() {
    device_race(Backend::Dynamo, "evict").await;
    device_race(Backend::Dynamo, "deny").await;
}

async fn verify_as(s: &TestServer, headers: &[(&str, &str)], body: String) -> Reply {
    s.request("POST", "/streams/verify", headers, body).await
}

#[tokio::test]
async fn verify_speaks_every_media_server() {
    let (s, clock) = server().await;
    s.buy("fan", "concert", None).await;
    clock.set(LIVE);
    let t = issued(&s, "fan", "phone").await;
    let tok = t["token"].as_str().unwrap().to_owned();
    // Flip one character inside the MAC (not its last, partly padding, character).
    let mut chars: Vec<char> = tok.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let bad: String = chars.into_iter().collect();
    let json_ct = [("content-type", "application/json")];
    let form_ct = [("content-type", "application/x-www-form-urlencoded")];

    // SRS on_play: 200 with body 0 allows; anything else denies.
    let srs = |token: &str, stream: &str, action: &str| {
        json!({"action": action, "client_id": "3g2x", "ip": "198.51.100.7",
               "vhost": "__defaultVhost__", "app": "live", "stream": stream,
               "param": format!("?token={token}"), "server_id": "vid-x", "stream_url": "/live/concert"})
        .to_string()
    };
    let r = verify_as(&s, &json_ct, srs(&tok, "concert", "on_play")).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"0"[..]));
    for body in [
        srs(&bad, "concert", "on_play"),
        srs(&tok, "other", "on_play"),
        srs(&tok, "concert/../other", "on_play"),
        srs(&tok, "live/concert", "on_play"),
        srs(&tok, "concert", "on_publish"),
    ] {
        let p = verify_as(&s, &json_ct, body).await.assert_problem(403);
        assert_ne!(p["code"], 0);
    }

    // nginx-rtmp on_play: form fields, the play arguments as fields or inside `args`.
    let rtmp = |extra: &str| {
        format!("call=play&addr=198.51.100.7&clientid=12&app=live&name=concert&{extra}")
    };
    assert_eq!(
        verify_as(&s, &form_ct, rtmp(&format!("token={tok}")))
            .await
            .status,
        200
    );
    assert_eq!(
        verify_as(&s, &form_ct, rtmp(&format!("args=token%3D{tok}")))
            .await
            .status,
        200
    );
    verify_as(&s, &form_ct, rtmp(&format!("token={bad}")))
        .await
        .assert_problem(403);
    verify_as(&s, &form_ct, rtmp("")).await.assert_problem(403);
    verify_as(
        &s,
        &form_ct,
        format!("call=play&app=live&name=concert%2F..%2Fother&token={tok}"),
    )
    .await
    .assert_problem(403);
    verify_as(
        &s,
        &form_ct,
        format!("call=publish&app=live&name=concert&token={tok}"),
    )
    .await
    .assert_problem(403);

    // MediaMTX HTTP auth.
    let mtx = |action: &str, path: &str, query: &str| {
        json!({"user": "", "password": "", "token": "", "ip": "198.51.100.7", "action": action,
               "path": path, "protocol": "hls", "id": null, "query": query})
        .to_string()
    };
    assert_eq!(
        verify_as(
            &s,
            &json_ct,
            mtx("read", "live/concert", &format!("token={tok}"))
        )
        .await
        .status,
        200
    );
    for body in [
        mtx("read", "live/concert", &format!("token={bad}")),
        mtx("publish", "live/concert", &format!("token={tok}")),
        mtx("read", "live/other", &format!("token={tok}")),
        mtx("read", "live/concert/../other", &format!("token={tok}")),
        mtx("read", "concert", &format!("token={tok}")),
        mtx("read", "live/concert", ""),
    ] {
        verify_as(&s, &json_ct, body).await.assert_problem(403);
    }

    // nginx auth_request: the original URI in a header.
    for uri in [
        format!("/live/concert.m3u8?token={tok}"),
        format!("/live/concert-17.ts?x=1&token={tok}"),
        format!("/live/concert/index.m3u8?token={tok}"),
        format!("/live/concert/17.ts?token={tok}"),
    ] {
        let r = verify_as(&s, &[("x-original-uri", uri.as_str())], String::new()).await;
        assert_eq!(r.status, 200, "{uri}");
    }
    for uri in [
        format!("/live/concert.m3u8?token={bad}"),
        format!("/live/other.m3u8?token={tok}"),
        "/live/concert.m3u8".to_owned(),
        // A path that names the concert but makes nginx serve another file.
        format!("/live/concert/../other.m3u8?token={tok}"),
        format!("/live/concert/%2e%2e/other.m3u8?token={tok}"),
        format!("/live/concert%2F..%2Fother.m3u8?token={tok}"),
        format!("/live/other.m3u8/concert?token={tok}"),
        format!("/live/concert-anything.m3u8?token={tok}"),
        format!("/live//concert.m3u8?token={tok}"),
        format!("/hls/concert.m3u8?token={tok}"),
        format!("/live/concert.m3u8\u{e9}?token={tok}"),
    ] {
        verify_as(&s, &[("x-original-uri", uri.as_str())], String::new())
            .await
            .assert_problem(403);
    }

    // Plain: token in the query of the verify URL, or nothing at all.
    let r = s
        .request("POST", &format!("/streams/verify?token={tok}"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    verify_as(&s, &[], String::new()).await.assert_problem(403);
    verify_as(&s, &json_ct, "{not json".into())
        .await
        .assert_problem(403);
}

#[tokio::test]
async fn entitlements_show_the_event_window_its_replay_and_a_refund() {
    use tollgate::domain::ids::rfc3339;
    let (s, clock) = server().await;
    let order = s.buy("fan", "concert", None).await;
    let ent = s.call("fan", "GET", "/entitlements", None).await.json();
    assert_eq!(ent["grants"][0]["valid_from"], rfc3339(T0 + DAY));
    assert_eq!(ent["grants"][0]["valid_until"], rfc3339(T0 + 7 * DAY));
    let status = |v: Value| {
        (
            v["can_use"].clone(),
            v["expires_at"].clone(),
            v["had_bought"].clone(),
        )
    };
    let st = s
        .call("fan", "GET", "/entitlements/concert", None)
        .await
        .json();
    assert_eq!(
        status(st),
        (json!(false), Value::Null, json!(true)),
        "bought, not yet on"
    );
    clock.set(T0 + 3 * DAY);
    let st = s
        .call("fan", "GET", "/entitlements/concert", None)
        .await
        .json();
    assert_eq!(
        status(st),
        (json!(true), json!(rfc3339(T0 + 7 * DAY)), json!(true)),
        "replay"
    );
    s.refund(&order, 1800).await;
    let ent = s.call("fan", "GET", "/entitlements", None).await.json();
    assert_eq!(ent["grants"], json!([]));
    let st = s
        .call("fan", "GET", "/entitlements/concert", None)
        .await
        .json();
    assert_eq!(status(st), (json!(false), Value::Null, json!(false)));
    // Refunded: only the once-per-user free preview is left.
    assert_eq!(issued(&s, "fan", "phone").await["preview"], true);
}
