//! First access after payment, on both stores: the first stream token issued for a paid
//! grant is counted once (per order), on the day of that token, in total, per product, per
//! provider and per line, with the conversion paid → first access; later tokens, other
//! devices, previews and simultaneous first tokens count nothing more.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate_tests::*;

const CONCURRENT: usize = 32;

fn catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    c["streams"].as_array_mut().unwrap().push(json!({
        "id": "main", "requires_any": ["channel:main"],
        "origin": "https://live.example.com/live/main.m3u8"
    }));
    c.to_string()
}

async fn token(s: &TestServer, user: &str, stream: &str, device: &str) -> Value {
    let r = s
        .call(
            user,
            "POST",
            &format!("/streams/{stream}/tokens"),
            Some(json!({ "device_id": device })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn day(s: &TestServer, day: &str, by: &str) -> Value {
    let r = s
        .admin(
            "GET",
            &format!("/admin/stats?from={day}&to={day}&by={by}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["days"][0].clone()
}

async fn first_access(backend: Backend) {
    let Some(store) = store_for(backend).await else {
        return;
    };
    let clock = ManualClock::at(T0);
    let catalog = catalog();
    let s = Arc::new(
        TestServer::start(test_app_with(
            store,
            clock.clone(),
            &[
                ("CATALOG_JSON", catalog.as_str()),
                ("STATS_TIME_ZONE", "UTC"),
            ],
        ))
        .await,
    );
    s.buy("alice", "pass", Some("7d")).await;
    s.buy("bob", "pass", Some("7d")).await;
    let d = day(&s, "2027-01-15", "product").await;
    assert_eq!(
        (d["orders_paid"].clone(), d["first_access"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(d["first_access_rate"], 0.0);

    // Thirty-two simultaneous first tokens for alice's pass, from as many devices.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let s = s.clone();
        tasks.spawn(async move {
            s.call(
                "alice",
                "POST",
                "/streams/main/tokens",
                Some(json!({ "device_id": format!("dev-{i}") })),
            )
            .await
            .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(st) = tasks.join_next().await {
        statuses.push(st.unwrap());
    }
    assert!(statuses.iter().all(|st| *st == 201), "{statuses:?}");
    let d = day(&s, "2027-01-15", "product").await;
    assert_eq!(d["first_access"], 1, "one paid grant, counted once");
    assert_eq!(d["first_access_rate"], 0.5);
    assert_eq!(d["by"]["pass"]["first_access"], 1);
    let p = day(&s, "2027-01-15", "provider").await;
    assert_eq!(p["by"]["sandbox"]["first_access"], 1);
    let l = day(&s, "2027-01-15", "line").await;
    assert_eq!(l["by"]["default"]["first_access"], 1);

    // A renewal, another device, the next day: nothing more for alice.
    token(&s, "alice", "main", "dev-0").await;
    clock.advance(DAY);
    token(&s, "alice", "main", "tablet").await;
    // Bob's first token is on the 16th; a preview (carol paid nothing) is no access.
    token(&s, "bob", "main", "phone").await;
    let preview = token(&s, "carol", "concert", "phone").await;
    assert_eq!(preview["preview"], true);
    let d15 = day(&s, "2027-01-15", "product").await;
    let d16 = day(&s, "2027-01-16", "product").await;
    assert_eq!(d15["first_access"], 1);
    assert_eq!(d16["first_access"], 1);
    assert_eq!(d16["by"]["pass"]["first_access"], 1);
    assert!(d16["by"].get("concert").is_none());
    // Over both days: two paid, two first accesses.
    let r = s
        .admin("GET", "/admin/stats?from=2027-01-15&to=2027-01-16", None)
        .await
        .json();
    assert_eq!(r["total"]["first_access"], 2);
    assert_eq!(r["total"]["first_access_rate"], 1.0);

    // Another order is another grant: alice's concert ticket (its window has begun) counts
    // on its first token, under its own product.
    s.buy("alice", "concert", None).await;
    token(&s, "alice", "concert", "tablet").await;
    token(&s, "alice", "concert", "tv").await;
    let d16 = day(&s, "2027-01-16", "product").await;
    assert_eq!(d16["first_access"], 2);
    assert_eq!(d16["by"]["concert"]["first_access"], 1);
    assert_eq!(d16["by"]["concert"]["first_access_rate"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_access_counts_once_memory() {
    first_access(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_access_counts_once_dynamo() {
    first_access(Backend::Dynamo).await;
}
