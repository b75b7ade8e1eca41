//! Operators' grants, coins and the audit trail on both stores: promotions stack with
//! purchases and are revoked exactly, repeats of an Idempotency-Key apply once however many
//! race, concurrent debits never take a wallet below zero, and every change leaves one audit
//! record (who, before, after, why, which request) that reads back page by page.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::time::rfc3339;
use tollgate_tests::*;

/// An admin's keyed POST (`ops`, role `tollgate:admin`).
async fn keyed(s: &TestServer, path: &str, key: &str, body: Value) -> Reply {
    let auth = admin_bearer("ops");
    s.request(
        "POST",
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
        body.to_string(),
    )
    .await
}

fn encoded(source: &str) -> String {
    source.replace('#', "%23")
}

/// The user's live windows by source, as support sees them.
async fn windows(s: &TestServer, user: &str) -> Vec<(String, String, Value)> {
    let v = s
        .admin("GET", &format!("/admin/users/{user}"), None)
        .await
        .json();
    v["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["source_id"].as_str().unwrap().to_owned(),
                w["valid_from"].as_str().unwrap().to_owned(),
                w["valid_until"].clone(),
            )
        })
        .collect()
}

async fn promotions_stack_and_revoke_exactly(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app(store.clone(), clock.clone())).await;
    let user = format!("promo-fan-{}", T0);
    let order = s.buy(&user, "pass", Some("7d")).await;
    clock.advance(60);
    let r = keyed(
        &s,
        &format!("/admin/users/{user}/grants"),
        "promo-1",
        json!({"scopes": ["channel:main"], "days": 3, "reason": "moderator"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let promo = r.json();
    let source = promo["source_id"].as_str().unwrap().to_owned();
    assert!(source.starts_with("promo#"), "{promo}");
    assert_eq!(promo["granted_by"], "ops");
    assert_eq!(promo["product_id"], "promo");
    // It stacks after the purchase like a purchase would.
    assert_eq!(
        promo["windows"],
        json!([{"scope": "channel:main", "valid_from": rfc3339(T0 + 7 * DAY),
                "valid_until": rfc3339(T0 + 10 * DAY)}])
    );
    let w = windows(&s, &user).await;
    assert_eq!(w.len(), 2, "{w:?}");

    // A fixed window from now until a time: the product's scopes. A second later, so the
    // trail's order of the two grants is defined (records of one instant are not ordered).
    clock.advance(1);
    let r = keyed(
        &s,
        &format!("/admin/users/{user}/grants"),
        "promo-2",
        json!({"product_id": "concert", "until": rfc3339(T0 + 2 * DAY), "reason": "press"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let window = r.json();
    assert_eq!(
        window["windows"],
        json!([{"scope": "stream:concert", "valid_from": rfc3339(T0 + 61),
                "valid_until": rfc3339(T0 + 2 * DAY)}])
    );

    // Revoking the promotion leaves the purchase's days exactly as they were.
    clock.advance(59);
    let r = s
        .admin(
            "DELETE",
            &format!("/admin/users/{user}/grants/{}", encoded(&source)),
            Some(json!({"reason": "left the team"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["revoked_by"], "ops");
    let w = windows(&s, &user).await;
    assert!(w.contains(&(order.clone(), rfc3339(T0), json!(rfc3339(T0 + 7 * DAY)))));
    assert!(!w.iter().any(|(src, _, _)| *src == source), "{w:?}");
    let v = s
        .admin("GET", &format!("/admin/users/{user}"), None)
        .await
        .json();
    let revoked = v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["source_id"] == source.as_str())
        .unwrap()
        .clone();
    assert_eq!(revoked["revoked_at"], rfc3339(T0 + 120));
    assert_eq!(revoked["revoked_by"], "ops");
    assert_eq!(revoked["revoke_reason"], "left the team");
    // Twice: 409, nothing changes. No such grant: 404. A store purchase: 422.
    let again = format!(
        "/admin/users/{user}/grants/{}?reason=again",
        encoded(&source)
    );
    s.admin("DELETE", &again, None).await.assert_problem(409);
    s.admin(
        "DELETE",
        &format!("/admin/users/{user}/grants/promo%23nothing?reason=x"),
        None,
    )
    .await
    .assert_problem(404);
    s.admin(
        "DELETE",
        &format!("/admin/users/{user}/grants/apple:1000000001?reason=x"),
        None,
    )
    .await
    .assert_problem(422);
    s.admin(
        "DELETE",
        &format!("/admin/users/{user}/grants/{order}"),
        None,
    )
    .await
    .assert_problem(400);

    // An order's grant for abuse: access ends, the order stays PAID and unrefunded.
    clock.advance(1);
    let r = s
        .admin(
            "DELETE",
            &format!("/admin/users/{user}/grants/{order}?reason=restreaming"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let o = s
        .admin("GET", &format!("/admin/orders/{order}"), None)
        .await
        .json();
    assert_eq!(o["state"], "PAID");
    assert_eq!(o["refunded_amount"], 0);
    let w = windows(&s, &user).await;
    assert_eq!(w.len(), 1, "only the concert window is left: {w:?}");

    // The trail: the user's records newest first, with before, after, actor and request.
    let trail = s
        .admin("GET", &format!("/admin/audit?user_id={user}"), None)
        .await
        .json();
    let records = trail["records"].as_array().unwrap();
    let actions: Vec<_> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["revoke_grant", "revoke_grant", "grant", "grant"]);
    let revoke = &records[1];
    assert_eq!(revoke["actor"], "ops");
    assert_eq!(revoke["reason"], "left the team");
    assert_eq!(revoke["before"][0]["revoked_at"], Value::Null);
    assert_eq!(revoke["after"][0]["revoked_by"], "ops");
    assert!(!revoke["request_id"].as_str().unwrap().is_empty());
    assert_eq!(records[0]["order_id"], order.as_str());
    assert_eq!(records[3]["before"], Value::Null);
    assert_eq!(records[3]["after"][0]["source_id"], source.as_str());
    s.stop().await;
}

#[tokio::test]
async fn promotions_stack_and_revoke_exactly_memory() {
    promotions_stack_and_revoke_exactly(Backend::Memory).await;
}

#[tokio::test]
async fn promotions_stack_and_revoke_exactly_dynamo() {
    promotions_stack_and_revoke_exactly(Backend::Dynamo).await;
}

async fn promotions_are_checked_and_keyed(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let s = Arc::new(TestServer::start(test_app(store.clone(), ManualClock::at(T0))).await);
    let user = format!("keyed-fan-{}", T0);
    let path = format!("/admin/users/{user}/grants");
    for bad in [
        json!({"product_id": "pass", "scopes": ["channel:main"], "days": 1, "reason": "x"}),
        json!({"days": 1, "reason": "x"}),
        json!({"product_id": "no-such-product", "days": 1, "reason": "x"}),
        json!({"product_id": "coins-100", "days": 1, "reason": "x"}),
        json!({"scopes": ["channel:nowhere"], "days": 1, "reason": "x"}),
        json!({"product_id": "pass", "days": 0, "reason": "x"}),
        json!({"product_id": "pass", "days": 3651, "reason": "x"}),
        json!({"product_id": "pass", "reason": "x"}),
        json!({"product_id": "pass", "days": 1, "until": rfc3339(T0 + DAY), "reason": "x"}),
        json!({"product_id": "pass", "until": rfc3339(T0 - 1), "reason": "x"}),
    ] {
        keyed(&s, &path, "bad", bad).await.assert_problem(422);
    }
    keyed(
        &s,
        &path,
        "bad",
        json!({"product_id": "pass", "days": 1, "reason": " "}),
    )
    .await
    .assert_problem(400);
    keyed(
        &s,
        &path,
        "bad",
        json!({"product_id": "pass", "days": 1, "reason": "x", "extra": 1}),
    )
    .await
    .assert_problem(400);
    s.admin(
        "POST",
        &path,
        Some(json!({"product_id": "pass", "days": 1, "reason": "x"})),
    )
    .await
    .assert_problem(400);
    assert!(store.user_items(&user).await.unwrap().grants.is_empty());

    // Thirty identical requests at once: one grant, one audit record, the same answer.
    let body = json!({"product_id": "pass", "days": 30, "reason": "month free"});
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (s, path, body) = (s.clone(), path.clone(), body.clone());
            tokio::spawn(async move { keyed(&s, &path, "month-free", body).await })
        })
        .collect();
    let mut created = 0;
    let mut answers = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            r.status == 201 || r.status == 200,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        created += usize::from(r.status == 201);
        answers.push(r.json());
    }
    assert_eq!(created, 1);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(store.user_items(&user).await.unwrap().grants.len(), 1);
    let trail = store.user_audit(&user, 100, None, None).await.unwrap();
    assert_eq!(trail.records.len(), 1);
    // The same key with another request is refused; another key is another promotion.
    keyed(
        &s,
        &path,
        "month-free",
        json!({"product_id": "pass", "days": 31, "reason": "x"}),
    )
    .await
    .assert_problem(422);
    let r = keyed(&s, &path, "month-free-2", body).await;
    assert_eq!(r.status, 201);
    assert_ne!(r.json()["source_id"], answers[0]["source_id"]);
    assert_eq!(store.user_items(&user).await.unwrap().grants.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_are_checked_and_keyed_memory() {
    promotions_are_checked_and_keyed(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_are_checked_and_keyed_dynamo() {
    promotions_are_checked_and_keyed(Backend::Dynamo).await;
}

async fn wallets_never_go_below_zero(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let s = Arc::new(TestServer::start(test_app(store.clone(), ManualClock::at(T0))).await);
    let user = format!("wallet-fan-{}", T0);
    let path = format!("/admin/users/{user}/wallet");
    let r = keyed(
        &s,
        &path,
        "seed",
        json!({"amount": 100, "reason": "goodwill"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let seed = r.json();
    assert_eq!(
        (
            seed["balance_before"].clone(),
            seed["balance_after"].clone()
        ),
        (json!(0), json!(100))
    );
    // A repeat answers the same and applies nothing.
    let r = keyed(
        &s,
        &path,
        "seed",
        json!({"amount": 100, "reason": "goodwill"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), seed);

    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (s, path) = (s.clone(), path.clone());
            tokio::spawn(async move {
                keyed(
                    &s,
                    &path,
                    &format!("debit-{i}"),
                    json!({"amount": -10, "reason": "chargeback"}),
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => ok += 1,
            _ => {
                r.assert_problem(422);
            }
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(store.user_items(&user).await.unwrap().credits, 0);
    // One audit record per applied change, each with the balance before and after.
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/admin/audit?user_id={user}&limit=4&cursor={c}"),
            None => format!("/admin/audit?user_id={user}&limit=4"),
        };
        let page = s.admin("GET", &url, None).await.json();
        let got = page["records"].as_array().unwrap();
        assert!(got.len() <= 4);
        records.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(records.len(), 11);
    // The clock stood still, so their order within the second is the ids'; the changes
    // themselves form one chain 0 → 100 → 90 → … → 0.
    let mut steps: Vec<(i64, i64)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["action"], "wallet");
            assert_eq!(r["actor"], "ops");
            (
                r["before"]["balance"].as_i64().unwrap(),
                r["after"]["balance"].as_i64().unwrap(),
            )
        })
        .collect();
    steps.sort();
    let mut chain = vec![(0, 100)];
    chain.extend((1..=10).map(|k| (10 * k, 10 * k - 10)));
    chain.sort();
    assert_eq!(steps, chain);
    // Taking more than there is, stated: the balance may go negative.
    let r = keyed(
        &s,
        &path,
        "clawback",
        json!({"amount": -5, "reason": "clawback", "allow_negative": true}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(store.user_items(&user).await.unwrap().credits, -5);
    keyed(&s, &path, "zero", json!({"amount": 0, "reason": "x"}))
        .await
        .assert_problem(422);
    keyed(
        &s,
        &path,
        "clawback",
        json!({"amount": -6, "reason": "clawback", "allow_negative": true}),
    )
    .await
    .assert_problem(422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_never_go_below_zero_memory() {
    wallets_never_go_below_zero(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_never_go_below_zero_dynamo() {
    wallets_never_go_below_zero(Backend::Dynamo).await;
}

async fn every_change_is_in_the_trail(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app(store.clone(), clock.clone())).await;
    let user = format!("trail-fan-{}", T0);
    let ban = json!({"stream_id": "concert", "reason": "restreaming"});
    let r = s
        .admin("POST", &format!("/admin/users/{user}/bans"), Some(ban))
        .await;
    assert_eq!(r.status, 201);
    clock.advance(1);
    let again = json!({"stream_id": "concert", "reason": "restreaming again"});
    let r = s
        .admin("POST", &format!("/admin/users/{user}/bans"), Some(again))
        .await;
    assert_eq!(r.status, 200);
    clock.advance(1);
    let r = s
        .admin(
            "DELETE",
            &format!("/admin/users/{user}/bans/concert?reason=appeal"),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    clock.advance(1);
    let r = s
        .admin("POST", "/admin/streams/concert/publish-key", None)
        .await;
    assert_eq!(r.status, 201);
    let key = r.json()["publish_key"].as_str().unwrap().to_owned();
    clock.advance(1);
    let r = s
        .admin("POST", "/admin/streams/concert/publish-key", None)
        .await;
    assert_eq!(r.json()["version"], 2);

    let records = s
        .admin("GET", &format!("/admin/audit?user_id={user}"), None)
        .await
        .json()["records"]
        .as_array()
        .unwrap()
        .clone();
    let actions: Vec<_> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["lift_ban", "ban", "ban"]);
    assert_eq!(records[2]["before"], Value::Null);
    assert_eq!(records[2]["after"]["reason"], "restreaming");
    assert_eq!(records[1]["before"]["reason"], "restreaming");
    assert_eq!(records[1]["after"]["reason"], "restreaming again");
    assert_eq!(records[0]["before"]["reason"], "restreaming again");
    assert_eq!(records[0]["after"], Value::Null);
    assert_eq!(records[0]["reason"], "appeal");
    assert!(records
        .iter()
        .all(|r| r["actor"] == "ops" && r["user_id"] == user.as_str()));

    // Everyone's since the first change, oldest first, a page at a time: the bans, then the
    // two rotations (about the stream, never with the key).
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/admin/audit?since={}&limit=2&cursor={c}", rfc3339(T0)),
            None => format!("/admin/audit?since={}&limit=2", rfc3339(T0)),
        };
        let page = s.admin("GET", &url, None).await.json();
        all.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let actions: Vec<_> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "ban",
            "ban",
            "lift_ban",
            "rotate_publish_key",
            "rotate_publish_key"
        ]
    );
    assert_eq!(all[3]["before"], Value::Null);
    assert_eq!(all[3]["after"]["version"], 1);
    assert_eq!(all[4]["before"]["version"], 1);
    assert_eq!(all[4]["stream_id"], "concert");
    assert!(
        !all[4].to_string().contains(&key),
        "the key never enters the trail"
    );
    let later = s
        .admin("GET", &format!("/admin/audit?since={}", T0 + 3), None)
        .await
        .json();
    assert_eq!(later["records"].as_array().unwrap().len(), 2);

    // Support reads the trail; bad parameters are 400.
    let support = bearer_with_scope("help-1", Some("tollgate:support"));
    let r = s
        .request(
            "GET",
            &format!("/admin/audit?user_id={user}"),
            &[("authorization", &support)],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    for bad in [
        "/admin/audit",
        "/admin/audit?since=yesterday",
        "/admin/audit?since=-5",
        "/admin/audit?user_id=x&limit=101",
        "/admin/audit?user_id=x&cursor=nope",
        "/admin/audit?user_id=a%23b",
    ] {
        s.admin("GET", bad, None).await.assert_problem(400);
    }
    s.stop().await;
}

#[tokio::test]
async fn every_change_is_in_the_trail_memory() {
    every_change_is_in_the_trail(Backend::Memory).await;
}

#[tokio::test]
async fn every_change_is_in_the_trail_dynamo() {
    every_change_is_in_the_trail(Backend::Dynamo).await;
}
