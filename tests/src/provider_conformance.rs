//! One conformance suite for every payment provider's callbacks, written once: the local
//! server over HTTP, fed genuine and bad callbacks that each provider's [`Conformant`]
//! implementation builds (against its fake on loopback where it has one). Every provider must
//! settle a genuine callback once, acknowledge duplicates without a second effect, refuse
//! forgeries with its own failure answer and change nothing, revoke access on a refund, and
//! grant once under 64 concurrent duplicates, on both stores.
//!
//! What stays in the per-provider suites is what only that provider has (WeChat's prepay
//! channels and key rotation, Alipay's charsets and pay URLs, Huya's GET form and window).

pub mod alipay;
pub mod huya;
pub mod sandbox;
pub mod wechat;

use crate::{app_with, store_for, Backend, Reply, TestServer, DAY, T0};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use tollgate::clock::ManualClock;
use tollgate::domain::ids::rfc3339;

/// What every scenario buys: the catalog's channel pass, for one of its plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Week,
    Month,
}

impl Plan {
    pub fn id(self) -> &'static str {
        match self {
            Plan::Week => "7d",
            Plan::Month => "30d",
        }
    }

    pub fn days(self) -> i64 {
        match self {
            Plan::Week => 7,
            Plan::Month => 30,
        }
    }

    /// The catalog price in fen.
    pub fn price(self) -> i64 {
        match self {
            Plan::Week => 900,
            Plan::Month => 3000,
        }
    }
}

/// The scope the pass grants.
const SCOPE: &str = "channel:main";

/// An order about to be paid.
#[derive(Debug, Clone)]
pub struct Order {
    /// Tollgate's order id.
    pub id: String,
    /// Who owns it (for a storefront sale, the user the provider's buyer maps to).
    pub user: String,
    pub plan: Plan,
    /// What the provider will be paid, in fen.
    pub amount: i64,
    /// The provider's own name for the order (Huya's orderId); Tollgate's id elsewhere.
    pub reference: String,
}

/// How an order comes to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// `POST /orders` creates it, PENDING until the provider's callback.
    CreatedFirst,
    /// The provider sells in its own storefront: its callback creates the order already
    /// paid, so before it there is nothing at all.
    CreatedByCallback,
}

/// A callback exactly as a provider would send it.
#[derive(Debug, Clone)]
pub struct Callback {
    pub method: &'static str,
    /// `/callbacks/<provider>` and any query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Callback {
    pub fn post(provider: &str, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Callback {
            method: "POST",
            target: format!("/callbacks/{provider}"),
            headers,
            body: body.into(),
        }
    }

    pub async fn send(&self, s: &TestServer) -> Reply {
        let h: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        s.request(self.method, &self.target, &h, self.body.clone())
            .await
    }
}

/// A bad variant of the genuine "paid" callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Signed with a key (or secret) that is not the provider's.
    ForgedSignature,
    /// Genuinely signed, then the signed content changed.
    Tampered,
    /// No signature at all.
    Unsigned,
    /// Genuinely signed, with a timestamp just past the accepted window.
    Stale,
    /// Genuinely signed, with a timestamp just too far ahead.
    Future,
    /// Genuinely signed, for the order, but for another amount.
    WrongAmount,
    /// Genuinely signed, but for another merchant (seller, extension).
    WrongMerchant,
    /// Genuinely signed, but for another app of the provider's.
    WrongApp,
    /// Genuinely signed, for an order Tollgate does not have.
    UnknownOrder,
    /// Not a notification at all.
    Malformed,
}

impl Bad {
    pub const ALL: [Bad; 10] = [
        Bad::ForgedSignature,
        Bad::Tampered,
        Bad::Unsigned,
        Bad::Stale,
        Bad::Future,
        Bad::WrongAmount,
        Bad::WrongMerchant,
        Bad::WrongApp,
        Bad::UnknownOrder,
        Bad::Malformed,
    ];

    /// Every provider signs its callbacks, so these always apply.
    const REQUIRED: [Bad; 4] = [
        Bad::ForgedSignature,
        Bad::Tampered,
        Bad::Unsigned,
        Bad::Malformed,
    ];

    /// The status most providers refuse it with.
    pub fn usual_status(self) -> u16 {
        match self {
            Bad::ForgedSignature | Bad::Tampered | Bad::Unsigned | Bad::Stale | Bad::Future => 401,
            Bad::WrongMerchant | Bad::WrongApp => 403,
            Bad::WrongAmount => 422,
            Bad::UnknownOrder => 404,
            Bad::Malformed => 400,
        }
    }
}

/// A payment provider as the suite drives it.
#[async_trait]
pub trait Conformant: Send + Sync + Sized + 'static {
    /// The provider's name in orders and callback paths.
    const NAME: &'static str;

    /// Starts the provider's fake, if it talks to one; it lives as long as `Self`.
    async fn start() -> Self;

    /// The app configuration that enables the provider (and points it at the fake).
    fn env(&self) -> Vec<(&'static str, String)>;

    fn ordering(&self) -> Ordering {
        Ordering::CreatedFirst
    }

    /// An order for `who` to pay for `plan`: created with `POST /orders`, or, for a
    /// storefront provider, the ids its coming sale will carry.
    async fn order(&self, s: &TestServer, who: &str, plan: Plan) -> Order;

    /// When the genuine "paid" callback says the payment happened.
    fn paid_at(&self) -> i64;

    /// The provider's own id of the payment `paid` reports (what the customer's receipt
    /// shows), by which support finds the order.
    fn transaction_id(&self, order: &Order) -> String;

    /// The `n`th delivery of a genuine "paid" callback for `order`. A provider whose retries
    /// may take several genuine forms varies them with `n`.
    fn paid(&self, order: &Order, n: usize) -> Callback;

    /// A genuine "fully refunded" callback; `None` for a provider that has none (the refund
    /// scenario is then left out for it).
    fn refunded(&self, order: &Order) -> Option<Callback>;

    /// `bad` applied to the paid callback; `None` where it does not apply (each
    /// implementation says why).
    fn bad(&self, order: &Order, bad: Bad) -> Option<Callback>;

    /// The status a refused `bad` gets.
    fn refusal_status(&self, bad: Bad) -> u16 {
        bad.usual_status()
    }

    /// Asserts `r` is the provider's success answer ("got it, stop retrying").
    fn assert_success(&self, r: &Reply);

    /// Asserts `r` is the provider's failure answer, with `status`.
    fn assert_failure(&self, r: &Reply, status: u16);
}

/// Creates a PENDING order with `POST /orders`, for providers whose orders Tollgate creates.
pub async fn create_order(s: &TestServer, who: &str, provider: &str, plan: Plan) -> Order {
    let body =
        serde_json::json!({"product_id": "pass", "plan_id": plan.id(), "provider": provider});
    let r = s.call(who, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    assert_eq!(o["state"], "PENDING", "{o}");
    assert_eq!(o["amount"]["amount"], plan.price(), "{o}");
    let id = o["order_id"].as_str().expect("order_id").to_owned();
    Order {
        reference: id.clone(),
        id,
        user: who.to_owned(),
        plan,
        amount: plan.price(),
    }
}

/// A provider and the local server configured for it, on one store.
pub struct Harness<P> {
    pub provider: P,
    pub server: Arc<TestServer>,
}

impl<P: Conformant> Harness<P> {
    /// `None` when the store is DynamoDB and the test command provides no moto.
    pub async fn start(backend: Backend) -> Option<Self> {
        let store = store_for(backend).await?;
        let provider = P::start().await;
        let app = app_with(store, ManualClock::at(T0), &provider.env());
        Some(Harness {
            provider,
            server: Arc::new(TestServer::start(app).await),
        })
    }
}

/// A genuine paid callback: the order is PAID, settled once, the pass granted, and the
/// provider answered with its success answer.
pub async fn paid_callback_settles_once<P: Conformant>(h: &Harness<P>) {
    let s = &h.server;
    let o = h.provider.order(s, "paid", Plan::Week).await;
    assert_untouched(h, &o).await;
    h.provider
        .assert_success(&h.provider.paid(&o, 0).send(s).await);
    assert_paid_once(h, &o).await;
    // Support finds it by the provider's transaction id, and by its own.
    let txn = h.provider.transaction_id(&o);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("provider", P::NAME)
        .append_pair("transaction_id", &txn)
        .finish();
    let r = s
        .admin("GET", &format!("/admin/lookup?{query}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let found = r.json();
    assert_eq!(found["order_id"], o.id.as_str(), "{found}");
    assert_eq!(found["user_id"], o.user.as_str(), "{found}");
    assert_eq!(found["provider_txn_id"], txn.as_str(), "{found}");
    let r = s
        .admin("GET", &format!("/admin/orders/{}", o.id), None)
        .await;
    assert_eq!(r.json(), found);
}

/// Duplicates of a paid callback are acknowledged and change nothing: one grant, its
/// expiry not extended, one settlement.
pub async fn duplicate_callback_has_no_second_effect<P: Conformant>(h: &Harness<P>) {
    let s = &h.server;
    let o = h.provider.order(s, "dup", Plan::Week).await;
    h.provider
        .assert_success(&h.provider.paid(&o, 0).send(s).await);
    let first = assert_paid_once(h, &o).await;
    for n in 1..4 {
        h.provider
            .assert_success(&h.provider.paid(&o, n).send(s).await);
        assert_eq!(assert_paid_once(h, &o).await, first, "delivery {n}");
    }
}

/// Every bad variant is refused with the provider's failure answer and changes nothing;
/// the genuine callback still goes through afterwards.
pub async fn bad_callbacks_are_refused_and_change_nothing<P: Conformant>(h: &Harness<P>) {
    let s = &h.server;
    let o = h.provider.order(s, "bad", Plan::Week).await;
    let mut skipped = Vec::new();
    for bad in Bad::ALL {
        let Some(cb) = h.provider.bad(&o, bad) else {
            assert!(
                !Bad::REQUIRED.contains(&bad),
                "{bad:?} applies to every provider"
            );
            skipped.push(bad);
            continue;
        };
        let r = cb.send(s).await;
        h.provider
            .assert_failure(&r, h.provider.refusal_status(bad));
        assert_untouched(h, &o).await;
    }
    eprintln!("{}: not applicable: {skipped:?}", P::NAME);
    h.provider
        .assert_success(&h.provider.paid(&o, 0).send(s).await);
    assert_paid_once(h, &o).await;
}

/// A full refund revokes access at once; a duplicate refund is acknowledged.
pub async fn refund_revokes_access<P: Conformant>(h: &Harness<P>) {
    let s = &h.server;
    let o = h.provider.order(s, "refund", Plan::Week).await;
    let refund = h.provider.refunded(&o).unwrap_or_else(|| {
        panic!(
            "{} has no refund callback: leave this scenario out for it",
            P::NAME
        )
    });
    h.provider
        .assert_success(&h.provider.paid(&o, 0).send(s).await);
    assert_paid_once(h, &o).await;
    for _ in 0..2 {
        h.provider.assert_success(&refund.send(s).await);
        assert_eq!(order_state(s, &o).await.as_deref(), Some("REFUNDED"));
        assert!(grants(s, &o.user).await.is_empty(), "access gone");
        assert!(!can_use(s, &o.user).await);
        assert_eq!(totals(s).await.refunds, 1, "refunded once");
    }
}

/// 64 concurrent deliveries of the paid callback: all acknowledged, exactly one grant.
pub async fn concurrent_duplicates_grant_once<P: Conformant>(h: &Harness<P>) {
    let s = &h.server;
    let o = h.provider.order(s, "many", Plan::Month).await;
    let mut tasks = Vec::new();
    for n in 0..64 {
        let s = s.clone();
        let cb = h.provider.paid(&o, n);
        tasks.push(tokio::spawn(async move { cb.send(&s).await }));
    }
    for t in tasks {
        h.provider.assert_success(&t.await.expect("callback task"));
    }
    assert_paid_once(h, &o).await;
}

/// The order's state, `None` when it does not exist.
async fn order_state(s: &TestServer, o: &Order) -> Option<String> {
    let r = s
        .call(&o.user, "GET", &format!("/orders/{}", o.id), None)
        .await;
    if r.status == 404 {
        return None;
    }
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    Some(r.json()["state"].as_str().expect("state").to_owned())
}

async fn grants(s: &TestServer, user: &str) -> Vec<Value> {
    let e = s.call(user, "GET", "/entitlements", None).await;
    assert_eq!(e.status, 200, "{}", String::from_utf8_lossy(&e.body));
    e.json()["grants"].as_array().expect("grants").clone()
}

async fn can_use(s: &TestServer, user: &str) -> bool {
    let p = s.call(user, "GET", "/entitlements/pass", None).await.json();
    p["can_use"].as_bool().expect("can_use")
}

/// What the store's daily counters add up to around T0 (each test has its own store).
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    paid: i64,
    refunds: i64,
    revenue: i64,
}

async fn totals(s: &TestServer) -> Totals {
    let from = rfc3339(T0 - DAY);
    let to = rfc3339(T0 + DAY);
    let r = s
        .admin(
            "GET",
            &format!("/admin/stats?from={}&to={}", &from[..10], &to[..10]),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let days = r.json()["days"].as_array().expect("days").clone();
    let sum = |f: &dyn Fn(&Value) -> Option<i64>| days.iter().filter_map(f).sum();
    Totals {
        paid: sum(&|d| d["orders_paid"].as_i64()),
        refunds: sum(&|d| d["refunds"].as_i64()),
        revenue: sum(&|d| d["revenue"]["CNY"].as_i64()),
    }
}

/// Nothing happened to `o`: still PENDING (or, for a storefront sale, no order at all), no
/// grant, no access, nothing settled.
async fn assert_untouched<P: Conformant>(h: &Harness<P>, o: &Order) {
    let s = &h.server;
    let expected = match h.provider.ordering() {
        Ordering::CreatedFirst => Some("PENDING"),
        Ordering::CreatedByCallback => None,
    };
    assert_eq!(order_state(s, o).await.as_deref(), expected);
    assert!(grants(s, &o.user).await.is_empty(), "no grant");
    assert!(!can_use(s, &o.user).await, "no access");
    assert_eq!(
        totals(s).await,
        Totals {
            paid: 0,
            refunds: 0,
            revenue: 0
        }
    );
}

/// `o` is PAID by this provider at its price and at the time the provider said, settled
/// exactly once, with exactly one grant of the pass from that time; returns the grant.
async fn assert_paid_once<P: Conformant>(h: &Harness<P>, o: &Order) -> Value {
    let s = &h.server;
    let r = s
        .call(&o.user, "GET", &format!("/orders/{}", o.id), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json();
    assert_eq!(order["state"], "PAID", "{order}");
    assert_eq!(order["provider"], P::NAME, "{order}");
    assert_eq!(order["plan_id"], o.plan.id(), "{order}");
    assert_eq!(order["amount"]["amount"], o.amount, "{order}");
    let paid_at = h.provider.paid_at();
    assert_eq!(order["paid_at"], rfc3339(paid_at), "{order}");
    let g = grants(s, &o.user).await;
    assert_eq!(g.len(), 1, "exactly one grant: {g:?}");
    assert_eq!(g[0]["source_id"], o.id.as_str());
    assert_eq!(g[0]["scope"], SCOPE);
    assert_eq!(g[0]["valid_until"], rfc3339(paid_at + o.plan.days() * DAY));
    assert!(can_use(s, &o.user).await);
    assert_eq!(
        totals(s).await,
        Totals {
            paid: 1,
            refunds: 0,
            revenue: o.amount
        },
        "settled once"
    );
    g[0].clone()
}
