//! The product catalog: what can be bought, at what price, and what it grants.
//!
//! Loaded once per cold start and validated as a whole, so a bad entry stops start-up with a
//! message naming it instead of failing one customer's purchase at three in the morning.

use super::grant::Term;
use super::money::Money;
use super::time::parse_rfc3339;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductKind {
    /// A duration; purchases of the same scope stack.
    Pass,
    /// A fixed window (live show) plus replay.
    Event,
    /// Coins credited to the wallet exactly once.
    Credits,
    /// Period set by the store's own records (App Store, Google Play).
    Subscription,
    /// Bought once, never expires (a course, an App Store non-consumable, a Play one-time
    /// product): a second purchase by the same user is refused before payment.
    Lifetime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuyaIds {
    pub goods_uuid: String,
    /// Huya `expenseLevel` → plan id.
    #[serde(default)]
    pub levels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreIds {
    pub apple: Option<String>,
    pub google: Option<String>,
    pub huya: Option<HuyaIds>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    pub days: u32,
    pub price: Money,
    #[serde(default)]
    pub store_ids: StoreIds,
    /// What the plan costs in coins, when it may be paid with them.
    #[serde(default)]
    pub coin_price: Option<i64>,
    /// How many playback sessions a purchase of this plan serves (the product's otherwise).
    #[serde(default)]
    pub max_views: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventWindow {
    pub starts_at: i64,
    pub ends_at: i64,
    pub replay_until: Option<i64>,
}

impl EventWindow {
    /// Access runs from the start of the show to the end of the replay period.
    pub fn access_until(&self) -> i64 {
        self.replay_until.unwrap_or(self.ends_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    /// The title shown where one language is wanted (a provider's payment page, a 402): the
    /// plain title, or of translations the `en` one, else `zh-CN`, else the first.
    pub title: String,
    /// The title's translations (language tag → text), when the catalog gives a map.
    pub titles: BTreeMap<String, String>,
    pub kind: ProductKind,
    pub grants: Vec<String>,
    pub price: Option<Money>,
    pub plans: Vec<Plan>,
    pub credits: Option<i64>,
    pub window: Option<EventWindow>,
    pub store_ids: StoreIds,
    /// What the product costs in coins, when it may be paid with them (products with plans
    /// price each plan instead).
    pub coin_price: Option<i64>,
    /// How many playback sessions a purchase serves (a replay watchable 3 times); `None`:
    /// as many as its term allows.
    pub max_views: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    pub id: String,
    pub requires_any: Vec<String>,
    #[serde(default)]
    pub preview_seconds: Option<u32>,
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    products: Vec<Product>,
    streams: Vec<Stream>,
    product_index: HashMap<String, usize>,
    stream_index: HashMap<String, usize>,
    /// The business lines, each product in exactly one; one implicit line without `lines`.
    lines: super::line::Lines,
}

/// A resolved purchase: the product, the plan if any, and the catalog price.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    pub product: &'a Product,
    pub plan: Option<&'a Plan>,
    pub price: Money,
}

impl Offer<'_> {
    /// How many playback sessions the offer serves: the plan's limit, else the product's.
    pub fn max_views(&self) -> Option<u32> {
        self.plan
            .and_then(|p| p.max_views)
            .or(self.product.max_views)
    }

    /// What the offer costs in coins, if it may be paid with them.
    pub fn coin_price(&self) -> Option<i64> {
        match self.plan {
            Some(plan) => plan.coin_price,
            None => self.product.coin_price,
        }
    }

    /// What a paid order of this offer grants per scope (credits products grant none).
    pub fn term(&self) -> Option<Term> {
        match self.product.kind {
            ProductKind::Pass => self.plan.map(|p| Term::Days(p.days)),
            ProductKind::Event => self.product.window.map(|w| Term::Window {
                from: w.starts_at,
                until: w.access_until(),
            }),
            ProductKind::Credits => None,
            ProductKind::Subscription => None,
            ProductKind::Lifetime => Some(Term::Forever),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid JSON: {0}")]
    Json(String),
    #[error("catalog {entry}: {problem}")]
    Invalid { entry: String, problem: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("unknown product {0:?}")]
    UnknownProduct(String),
    #[error("product {0:?} has plans: plan_id is required")]
    PlanRequired(String),
    #[error("product {product:?} has no plan {plan:?}")]
    UnknownPlan { product: String, plan: String },
    #[error("product {0:?} has no plans: plan_id must be omitted")]
    PlanNotAllowed(String),
    #[error("product {0:?} is sold only through the app stores")]
    StoreOnly(String),
    #[error("product {0:?} is no longer on sale")]
    NoLongerOnSale(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    products: Vec<serde_json::Value>,
    #[serde(default)]
    streams: Vec<serde_json::Value>,
    /// Business lines (`domain::line`); absent: one default line without webhooks.
    lines: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    starts_at: String,
    ends_at: String,
    replay_until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    id: String,
    title: RawTitle,
    kind: ProductKind,
    #[serde(default)]
    grants: Vec<String>,
    price: Option<Money>,
    #[serde(default)]
    plans: Vec<Plan>,
    credits: Option<i64>,
    window: Option<RawWindow>,
    #[serde(default)]
    store_ids: StoreIds,
    coin_price: Option<i64>,
    max_views: Option<u32>,
}

/// A title: plain, or translations by language tag (`{"zh-CN": "…", "en": "…"}`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTitle {
    Plain(String),
    Translated(BTreeMap<String, String>),
}

/// The title to show in one language, and the translations.
fn title_of(raw: RawTitle) -> Result<(String, BTreeMap<String, String>), String> {
    match raw {
        RawTitle::Plain(t) if t.trim().is_empty() => Err("title must not be empty".into()),
        RawTitle::Plain(t) => Ok((t, BTreeMap::new())),
        RawTitle::Translated(map) => {
            if map.is_empty() {
                return Err("title must name at least one language".into());
            }
            if let Some((lang, _)) = map.iter().find(|(lang, text)| {
                lang.is_empty()
                    || lang.len() > 35
                    || !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    || text.trim().is_empty()
            }) {
                return Err(format!(
                    "title[{lang:?}] must be a language tag with a text"
                ));
            }
            let Some(shown) = ["en", "zh-CN"]
                .iter()
                .find_map(|l| map.get(*l))
                .or_else(|| map.values().next())
                .cloned()
            else {
                return Err("title must name at least one language".into());
            };
            Ok((shown, map))
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl Catalog {
    pub fn from_json(text: &str) -> Result<Self, CatalogError> {
        let raw: RawCatalog =
            serde_json::from_str(text).map_err(|e| CatalogError::Json(e.to_string()))?;
        let mut products = Vec::with_capacity(raw.products.len());
        for (i, value) in raw.products.into_iter().enumerate() {
            let name = entry_name("products", i, &value);
            let p: RawProduct =
                serde_json::from_value(value).map_err(|e| invalid(&name, e.to_string()))?;
            products.push(validate_product(p).map_err(|problem| invalid(&name, problem))?);
        }
        let mut streams = Vec::with_capacity(raw.streams.len());
        for (i, value) in raw.streams.into_iter().enumerate() {
            let name = entry_name("streams", i, &value);
            let s: Stream =
                serde_json::from_value(value).map_err(|e| invalid(&name, e.to_string()))?;
            validate_stream(&s).map_err(|problem| invalid(&name, problem))?;
            streams.push(s);
        }
        let mut product_index = HashMap::new();
        for (i, p) in products.iter().enumerate() {
            if product_index.insert(p.id.clone(), i).is_some() {
                return Err(invalid(
                    &format!("products[{i}] ({:?})", p.id),
                    "duplicate product id".into(),
                ));
            }
        }
        let mut stream_index = HashMap::new();
        let scopes: HashSet<&str> = products
            .iter()
            .flat_map(|p| p.grants.iter().map(String::as_str))
            .collect();
        for (i, s) in streams.iter().enumerate() {
            let name = format!("streams[{i}] ({:?})", s.id);
            if stream_index.insert(s.id.clone(), i).is_some() {
                return Err(invalid(&name, "duplicate stream id".into()));
            }
            if let Some(missing) = s.requires_any.iter().find(|g| !scopes.contains(g.as_str())) {
                return Err(invalid(
                    &name,
                    format!("requires_any names {missing:?}, which no product grants"),
                ));
            }
        }
        let lines = match raw.lines {
            None => super::line::Lines::default(),
            Some(v) => {
                let ids: Vec<&str> = products.iter().map(|p| p.id.as_str()).collect();
                super::line::Lines::parse(v, &ids)
                    .map_err(|(entry, problem)| CatalogError::Invalid { entry, problem })?
            }
        };
        Ok(Catalog {
            products,
            streams,
            product_index,
            stream_index,
            lines,
        })
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// The business lines: where each product's events go.
    pub fn lines(&self) -> &super::line::Lines {
        &self.lines
    }

    pub fn product(&self, id: &str) -> Option<&Product> {
        self.product_index.get(id).map(|&i| &self.products[i])
    }

    pub fn stream(&self, id: &str) -> Option<&Stream> {
        self.stream_index.get(id).map(|&i| &self.streams[i])
    }

    /// Resolves what a client asked for into the catalog's offer. The price is always the
    /// catalog's; `now` rules out events whose access period is over.
    pub fn offer(
        &self,
        product_id: &str,
        plan_id: Option<&str>,
        now: i64,
    ) -> Result<Offer<'_>, OfferError> {
        let product = self
            .product(product_id)
            .ok_or_else(|| OfferError::UnknownProduct(product_id.to_owned()))?;
        let offer = match (product.plans.is_empty(), plan_id) {
            (false, None) => return Err(OfferError::PlanRequired(product.id.clone())),
            (false, Some(plan_id)) => {
                let plan = product
                    .plans
                    .iter()
                    .find(|p| p.id == plan_id)
                    .ok_or_else(|| OfferError::UnknownPlan {
                        product: product.id.clone(),
                        plan: plan_id.to_owned(),
                    })?;
                Offer {
                    product,
                    plan: Some(plan),
                    price: plan.price,
                }
            }
            (true, Some(_)) => return Err(OfferError::PlanNotAllowed(product.id.clone())),
            (true, None) => Offer {
                product,
                plan: None,
                price: product
                    .price
                    .ok_or_else(|| OfferError::StoreOnly(product.id.clone()))?,
            },
        };
        if let Some(w) = product.window {
            if now >= w.access_until() {
                return Err(OfferError::NoLongerOnSale(product.id.clone()));
            }
        }
        Ok(offer)
    }

    /// Products whose grants open a stream: what a 402 offers the viewer.
    pub fn products_unlocking(&self, stream: &Stream) -> Vec<&Product> {
        self.products
            .iter()
            .filter(|p| p.grants.iter().any(|g| stream.requires_any.contains(g)))
            .collect()
    }
}

fn entry_name(list: &str, i: usize, value: &serde_json::Value) -> String {
    match value.get("id").and_then(|v| v.as_str()) {
        Some(id) => format!("{list}[{i}] ({id:?})"),
        None => format!("{list}[{i}]"),
    }
}

fn invalid(entry: &str, problem: String) -> CatalogError {
    CatalogError::Invalid {
        entry: entry.to_owned(),
        problem,
    }
}

fn check_price(m: &Money, what: &str) -> Result<(), String> {
    if m.amount <= 0 {
        return Err(format!("{what} must be a positive integer of minor units"));
    }
    Ok(())
}

fn validate_product(p: RawProduct) -> Result<Product, String> {
    if !valid_id(&p.id) {
        return Err("id must be 1-64 characters of [A-Za-z0-9._:-]".into());
    }
    if let Some(bad) = p.grants.iter().find(|g| !valid_id(g)) {
        return Err(format!("grant scope {bad:?} is not a valid scope"));
    }
    let needs_grants = !matches!(p.kind, ProductKind::Credits);
    if needs_grants && p.grants.is_empty() {
        return Err("grants must name at least one scope".into());
    }
    if !needs_grants && !p.grants.is_empty() {
        return Err("a credits product grants coins, not scopes: remove grants".into());
    }
    if p.price.is_some() && !p.plans.is_empty() {
        return Err("give either price or plans, not both".into());
    }
    if let Some(price) = &p.price {
        check_price(price, "price.amount")?;
    }
    let mut plan_ids = HashSet::new();
    for plan in &p.plans {
        if !valid_id(&plan.id) || !plan_ids.insert(plan.id.as_str()) {
            return Err(format!("plan id {:?} is invalid or repeated", plan.id));
        }
        check_price(&plan.price, &format!("plan {:?} price.amount", plan.id))?;
        if plan.days == 0 || plan.days > 3660 {
            return Err(format!("plan {:?} days must be 1..=3660", plan.id));
        }
    }
    match p.kind {
        ProductKind::Pass if p.plans.is_empty() => {
            return Err("a pass needs plans with days and price".into())
        }
        ProductKind::Lifetime if !p.plans.is_empty() => {
            return Err("a lifetime product has one price, not plans".into())
        }
        ProductKind::Lifetime if p.price.is_none() => {
            return Err("a lifetime product needs a price".into())
        }
        ProductKind::Event if p.price.is_none() => return Err("an event needs a price".into()),
        ProductKind::Event if p.window.is_none() => return Err("an event needs a window".into()),
        ProductKind::Credits if p.price.is_none() => return Err("credits need a price".into()),
        ProductKind::Credits if !matches!(p.credits, Some(c) if c > 0) => {
            return Err("credits must be a positive integer".into())
        }
        ProductKind::Subscription
            if p.store_ids.apple.is_none()
                && p.store_ids.google.is_none()
                && p.plans.iter().all(|pl| pl.store_ids == StoreIds::default()) =>
        {
            return Err("a subscription needs store_ids (apple and/or google)".into())
        }
        _ => {}
    }
    check_coin_prices(&p)?;
    check_max_views(&p)?;
    if p.kind != ProductKind::Credits && p.credits.is_some() {
        return Err("only credits products carry credits".into());
    }
    if p.kind != ProductKind::Event && p.window.is_some() {
        return Err("only event products carry a window".into());
    }
    let window = match p.window {
        None => None,
        Some(w) => {
            let t = |s: &str, f: &str| {
                parse_rfc3339(s).ok_or_else(|| format!("window.{f} {s:?} is not RFC 3339"))
            };
            let window = EventWindow {
                starts_at: t(&w.starts_at, "starts_at")?,
                ends_at: t(&w.ends_at, "ends_at")?,
                replay_until: w
                    .replay_until
                    .as_deref()
                    .map(|s| t(s, "replay_until"))
                    .transpose()?,
            };
            if window.ends_at <= window.starts_at {
                return Err("window.ends_at must be after starts_at".into());
            }
            if matches!(window.replay_until, Some(r) if r < window.ends_at) {
                return Err("window.replay_until must not be before ends_at".into());
            }
            Some(window)
        }
    };
    if let Some(huya) = &p.store_ids.huya {
        if let Some((level, plan)) = huya
            .levels
            .iter()
            .find(|(_, plan)| !plan_ids.contains(plan.as_str()))
        {
            return Err(format!(
                "store_ids.huya.levels[{level:?}] names unknown plan {plan:?}"
            ));
        }
    }
    let (title, titles) = title_of(p.title)?;
    Ok(Product {
        id: p.id,
        title,
        titles,
        kind: p.kind,
        grants: p.grants,
        price: p.price,
        plans: p.plans,
        credits: p.credits,
        window,
        store_ids: p.store_ids,
        coin_price: p.coin_price,
        max_views: p.max_views,
    })
}

/// View limits count playback sessions of what grants access: 1 to 1000.
fn check_max_views(p: &RawProduct) -> Result<(), String> {
    let limits: Vec<u32> = p
        .max_views
        .iter()
        .chain(p.plans.iter().filter_map(|pl| pl.max_views.as_ref()))
        .copied()
        .collect();
    if !limits.is_empty() && matches!(p.kind, ProductKind::Credits | ProductKind::Subscription) {
        return Err(
            "max_views is for products that grant access (not credits or subscriptions)".into(),
        );
    }
    if limits.iter().any(|m| !(1..=1000).contains(m)) {
        return Err("max_views must be from 1 to 1000".into());
    }
    Ok(())
}

/// Coin prices are positive whole coins, on what grants access: coins never buy coins, and
/// a product with plans prices each plan.
fn check_coin_prices(p: &RawProduct) -> Result<(), String> {
    let priced = p.coin_price.is_some() || p.plans.iter().any(|pl| pl.coin_price.is_some());
    if priced && matches!(p.kind, ProductKind::Credits | ProductKind::Subscription) {
        return Err(
            "coin_price is for products that grant access (not credits or subscriptions)".into(),
        );
    }
    if p.coin_price.is_some() && !p.plans.is_empty() {
        return Err("a product with plans gives coin_price per plan".into());
    }
    let prices = p
        .coin_price
        .iter()
        .chain(p.plans.iter().filter_map(|pl| pl.coin_price.as_ref()));
    if prices.into_iter().any(|c| !(1..=1_000_000_000).contains(c)) {
        return Err("coin_price must be a whole number of coins from 1 to 1000000000".into());
    }
    Ok(())
}

fn validate_stream(s: &Stream) -> Result<(), String> {
    if !valid_id(&s.id) {
        return Err("id must be 1-64 characters of [A-Za-z0-9._:-]".into());
    }
    if s.requires_any.is_empty() {
        return Err("requires_any must name at least one scope".into());
    }
    if !(s.origin.starts_with("https://") || s.origin.starts_with("http://")) {
        return Err("origin must be an http(s) URL".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../../../catalog.example.json");

    #[test]
    fn example_catalog_loads() {
        let c = Catalog::from_json(EXAMPLE).expect("example catalog is valid");
        let offer = c.offer("pass-monthly", Some("30d"), 0).unwrap();
        assert_eq!(offer.price.amount, 3000);
        assert_eq!(offer.term(), Some(Term::Days(30)));
        assert!(c.stream("concert-1201").is_some());
    }

    #[test]
    fn lines_are_checked_against_the_products() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let c = Catalog::from_json(&v.to_string()).unwrap();
        assert_eq!(c.lines().line_of(Some("pass-monthly")).id, "default");
        v["lines"] = serde_json::json!([
            {"id": "passes", "products": {"prefix": "pass-"}}
        ]);
        match Catalog::from_json(&v.to_string()) {
            Err(CatalogError::Invalid { entry, problem }) => {
                assert!(entry.starts_with("product "), "{entry}");
                assert!(problem.contains("no line"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        v["lines"] = serde_json::json!([
            {"id": "passes", "products": {"prefix": "pass-"}},
            {"id": "rest", "products": {"pattern": "*"}}
        ]);
        let err = Catalog::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(
            err.contains("pass-monthly") && err.contains("passes, rest"),
            "{err}"
        );
    }

    #[test]
    fn offers_follow_the_catalog() {
        let c = Catalog::from_json(EXAMPLE).unwrap();
        assert_eq!(
            c.offer("nope", None, 0).unwrap_err(),
            OfferError::UnknownProduct("nope".into())
        );
        assert!(matches!(
            c.offer("pass-monthly", None, 0),
            Err(OfferError::PlanRequired(_))
        ));
        assert!(matches!(
            c.offer("pass-monthly", Some("1y"), 0),
            Err(OfferError::UnknownPlan { .. })
        ));
        assert!(matches!(
            c.offer("coins-100", Some("x"), 0),
            Err(OfferError::PlanNotAllowed(_))
        ));
        assert!(matches!(
            c.offer("vip", None, 0),
            Err(OfferError::StoreOnly(_))
        ));
        let ticket = c.offer("concert-1201", None, 0).unwrap();
        assert!(matches!(ticket.term(), Some(Term::Window { .. })));
        let after = parse_rfc3339("2026-12-08T00:00:00Z").unwrap();
        assert!(matches!(
            c.offer("concert-1201", None, after),
            Err(OfferError::NoLongerOnSale(_))
        ));
        assert!(c.offer("concert-1201", None, after - 1).is_ok());
    }

    fn err_of(json: &str) -> String {
        Catalog::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let e = err_of(
            r#"{"products":[{"id":"ok","title":"t","kind":"credits","credits":1,"price":{"amount":1,"currency":"CNY"}},
            {"id":"bad","title":"t","kind":"pass","grants":["a"],"plans":[{"id":"p","days":0,"price":{"amount":1,"currency":"CNY"}}]}]}"#,
        );
        assert!(
            e.contains("products[1] (\"bad\")") && e.contains("days"),
            "{e}"
        );
        let e = err_of(
            r#"{"products":[{"id":"x","title":"t","kind":"credits","credits":1,"price":{"amount":1.5,"currency":"CNY"}}]}"#,
        );
        assert!(e.contains("products[0] (\"x\")"), "{e}");
        let e = err_of(
            r#"{"products":[{"id":"x","title":"t","kind":"event","grants":["s"],"price":{"amount":1,"currency":"CNY"},"window":{"starts_at":"2026-01-02T00:00:00Z","ends_at":"2026-01-01T00:00:00Z"}}]}"#,
        );
        assert!(e.contains("ends_at"), "{e}");
        let e = err_of(
            r#"{"products":[{"id":"x","title":"t","kind":"credits","credits":1,"price":{"amount":1,"currency":"CNY"},"grant":["a"]}]}"#,
        );
        assert!(e.contains("unknown field"), "{e}");
        let e = err_of(
            r#"{"products":[],"streams":[{"id":"s","requires_any":["ghost"],"origin":"https://x"}]}"#,
        );
        assert!(
            e.contains("streams[0] (\"s\")") && e.contains("ghost"),
            "{e}"
        );
        let e = err_of(
            r#"{"products":[{"id":"a","title":"t","kind":"credits","credits":1,"price":{"amount":1,"currency":"CNY"}},{"id":"a","title":"t","kind":"credits","credits":1,"price":{"amount":1,"currency":"CNY"}}]}"#,
        );
        assert!(e.contains("duplicate"), "{e}");
        assert!(err_of("{").contains("not valid JSON"));
        let e =
            err_of(r#"{"products":[{"id":"v","title":"t","kind":"subscription","grants":["a"]}]}"#);
        assert!(e.contains("store_ids"), "{e}");
    }
}
