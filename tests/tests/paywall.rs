//! The catalog for paywalls: `GET /products` and `GET /streams` answer without credentials,
//! with `Cache-Control` and an `ETag` that `If-None-Match` turns into a 304, and follow the
//! catalog in force (translated titles, coin prices, view limits, lifetime products).

use serde_json::{json, Value};
use tollgate::clock::ManualClock;
use tollgate_tests::*;

fn paywall_catalog() -> String {
    let mut c: Value = serde_json::from_str(&catalog_json()).unwrap();
    let products = c["products"].as_array_mut().unwrap();
    products[0]["plans"][0]["coin_price"] = json!(120);
    products.push(json!({
        "id": "course", "title": {"zh-CN": "Rust 课程", "en": "Rust course"}, "kind": "lifetime",
        "grants": ["course:rust"], "price": {"amount": 1990, "currency": "CNY"},
        "coin_price": 50, "max_views": 10
    }));
    c.to_string()
}

#[tokio::test]
async fn paywall_lists_everything_for_sale_without_credentials() {
    let catalog = paywall_catalog();
    let clock = ManualClock::at(T0);
    let s = TestServer::start(test_app_with(
        store_for(Backend::Memory).await.unwrap(),
        clock.clone(),
        &[("CATALOG_JSON", &catalog)],
    ))
    .await;
    let r = s.request("GET", "/products", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "public, max-age=60");
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let body = r.json();
    let by_id = |id: &str| {
        body["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    let pass = by_id("pass");
    assert_eq!(pass["kind"], "pass");
    assert_eq!(pass["grants"], json!(["channel:main"]));
    assert_eq!(
        pass["plans"][0]["price"],
        json!({"amount": 900, "currency": "CNY"})
    );
    assert_eq!(pass["plans"][0]["coin_price"], 120);
    assert_eq!(pass["store_ids"]["huya"], "hy-pass");
    let course = by_id("course");
    assert_eq!(
        course["title"],
        json!({"zh-CN": "Rust 课程", "en": "Rust course"})
    );
    assert_eq!(
        (course["kind"].clone(), course["max_views"].clone()),
        (json!("lifetime"), json!(10))
    );
    assert_eq!(by_id("coins-100")["credits"], 100);
    assert_eq!(by_id("vip")["store_ids"]["apple"], "com.example.vip");
    let concert = by_id("concert");
    assert_eq!(concert["window"]["replay_until"], rfc3339_of(T0 + 7 * DAY));

    // Revalidation: the same tag is a 304 without a body; another tag, the listing.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".to_owned(),
    ] {
        let r = s
            .request("GET", "/products", &[("if-none-match", &tag)], "")
            .await;
        assert_eq!(r.status, 304, "{tag}");
        assert!(r.body.is_empty());
        assert_eq!(r.headers["etag"].to_str().unwrap(), etag);
    }
    let r = s
        .request("GET", "/products", &[("if-none-match", "\"stale\"")], "")
        .await;
    assert_eq!(r.status, 200);
    // Once the concert's replay is over, it leaves the listing and the tag changes.
    clock.advance(8 * DAY);
    let r = s
        .request("GET", "/products", &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);
    assert!(r.json()["products"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != "concert"));

    let r = s.request("GET", "/streams", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.headers.contains_key("etag"));
    assert_eq!(
        r.json(),
        json!({"streams": [{"id": "concert", "requires_any": ["stream:concert", "channel:vip"],
                            "unlocked_by": ["concert", "vip", "vip-plus"], "preview_seconds": 300}]})
    );
    assert!(
        !r.body.windows(6).any(|w| w == b"origin"),
        "the origin stays private"
    );
    assert_eq!(s.request("POST", "/products", &[], "").await.status, 405);
}

fn rfc3339_of(t: i64) -> String {
    tollgate::domain::ids::rfc3339(t)
}

#[test]
fn titles_are_a_string_or_translations() {
    let bad = |title: Value| {
        let c = json!({"products": [{"id": "x", "title": title, "kind": "credits", "credits": 1,
                                     "price": {"amount": 1, "currency": "CNY"}}]});
        tollgate::domain::Catalog::from_json(&c.to_string()).is_err()
    };
    assert!(bad(json!("")));
    assert!(bad(json!({})));
    assert!(bad(json!({"en": " "})));
    assert!(bad(json!({"not a tag": "x"})));
    assert!(bad(json!(3)));
    assert!(!bad(json!({"zh-CN": "金币"})));
    let c = tollgate::domain::Catalog::from_json(
        &json!({"products": [{"id": "x", "title": {"zh-CN": "金币", "en": "Coins"}, "kind": "credits",
                              "credits": 1, "price": {"amount": 1, "currency": "CNY"}}]})
        .to_string(),
    )
    .unwrap();
    assert_eq!(
        c.product("x").unwrap().title,
        "Coins",
        "English where one title is shown"
    );
}
