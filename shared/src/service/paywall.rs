//! What a paywall shows, without credentials: every product for sale (kind, prices in money
//! and coins, plans, what each grants, view limits, store product ids, event windows) and
//! every stream with what unlocks it and its free preview. Built from the catalog in force
//! alone (no store read), with a validator (`etag`) that changes exactly when the answer
//! does, so clients and CDNs revalidate with `If-None-Match` instead of reading it again.

use crate::app::App;
use crate::domain::catalog::{Plan, StoreIds};
use crate::domain::time::rfc3339;
use crate::domain::{Catalog, Product, ProductKind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A paywall answer and its validator.
pub struct Listing {
    pub body: Value,
    /// Hex SHA-256 of the body as sent (first 32 characters).
    pub etag: String,
}

fn listing(body: Value) -> Listing {
    let etag = hex::encode(Sha256::digest(body.to_string().as_bytes()))[..32].to_owned();
    Listing { body, etag }
}

fn kind(k: ProductKind) -> &'static str {
    match k {
        ProductKind::Pass => "pass",
        ProductKind::Event => "event",
        ProductKind::Credits => "credits",
        ProductKind::Subscription => "subscription",
        ProductKind::Lifetime => "lifetime",
    }
}

fn store_ids(ids: &StoreIds) -> Value {
    json!({
        "apple": ids.apple,
        "google": ids.google,
        "huya": ids.huya.as_ref().map(|h| h.goods_uuid.clone()),
    })
}

fn plan(p: &Plan) -> Value {
    json!({
        "id": p.id,
        "days": p.days,
        "price": p.price,
        "coin_price": p.coin_price,
        "max_views": p.max_views,
        "store_ids": store_ids(&p.store_ids),
    })
}

fn product(p: &Product) -> Value {
    let title = if p.titles.is_empty() {
        json!(p.title)
    } else {
        json!(p.titles)
    };
    json!({
        "id": p.id,
        "title": title,
        "kind": kind(p.kind),
        "grants": p.grants,
        "price": p.price,
        "coin_price": p.coin_price,
        "credits": p.credits,
        "max_views": p.max_views,
        "plans": p.plans.iter().map(plan).collect::<Vec<_>>(),
        "window": p.window.map(|w| json!({
            "starts_at": rfc3339(w.starts_at),
            "ends_at": rfc3339(w.ends_at),
            "replay_until": w.replay_until.map(rfc3339),
        })),
        "store_ids": store_ids(&p.store_ids),
    })
}

/// `GET /products`: every product, in catalog order, events whose access is over left out.
pub fn products(app: &App) -> Listing {
    let catalog = app.catalog.current();
    let now = app.clock.now();
    listing(products_of(&catalog, now))
}

fn products_of(catalog: &Catalog, now: i64) -> Value {
    let on_sale: Vec<Value> = catalog
        .products()
        .iter()
        .filter(|p| p.window.is_none_or(|w| now < w.access_until()))
        .map(product)
        .collect();
    json!({ "products": on_sale })
}

/// `GET /streams`: every stream, what unlocks it (the scopes, and the products granting
/// them) and its free preview. The origin is not shown: only signed URLs play.
pub fn streams(app: &App) -> Listing {
    let catalog = app.catalog.current();
    let streams: Vec<Value> = catalog
        .streams()
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "requires_any": s.requires_any,
                "unlocked_by": catalog
                    .products_unlocking(s)
                    .iter()
                    .map(|p| p.id.clone())
                    .collect::<Vec<_>>(),
                "preview_seconds": s.preview_seconds,
            })
        })
        .collect();
    listing(json!({ "streams": streams }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_events_leave_the_listing_and_the_etag_follows_the_body() {
        let catalog = Catalog::from_json(
            r#"{"products":[
              {"id":"show","title":{"zh-CN":"演唱会","en":"Concert"},"kind":"event","grants":["s"],
               "price":{"amount":100,"currency":"CNY"},
               "window":{"starts_at":"2026-01-01T00:00:00Z","ends_at":"2026-01-01T02:00:00Z"}},
              {"id":"course","title":"Course","kind":"lifetime","grants":["c"],
               "price":{"amount":1990,"currency":"CNY"},"coin_price":50}]}"#,
        )
        .unwrap();
        let before = products_of(&catalog, 0);
        assert_eq!(before["products"][0]["title"]["zh-CN"], "演唱会");
        assert_eq!(before["products"][1]["kind"], "lifetime");
        assert_eq!(before["products"][1]["coin_price"], 50);
        let after = products_of(&catalog, 1_800_000_000);
        assert_eq!(after["products"].as_array().unwrap().len(), 1);
        assert_ne!(listing(before).etag, listing(after.clone()).etag);
        assert_eq!(listing(after.clone()).etag, listing(after).etag);
    }
}
