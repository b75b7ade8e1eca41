//! Huya under the conformance suite. Huya sells in its own panel: there is no
//! `POST /orders`, its callback (POST or GET) creates the paid order for `huya:<profileId>`,
//! so an "order" here is only the ids the coming sale will carry.

use super::{Bad, Callback, Conformant, Order, Ordering, Plan};
use crate::huya as hy;
use crate::{Reply, TestServer, T0};
use async_trait::async_trait;
use tollgate::providers::huya::order_id_for;

pub struct Huya;

const GOODS: &str = "hy-pass";

fn level(plan: Plan) -> &'static str {
    match plan {
        Plan::Week => "1",
        Plan::Month => "2",
    }
}

/// The callback fields for `order`, timestamped `ts`.
fn fields(order: &Order, ts: i64) -> Vec<(&'static str, String)> {
    let profile = order.user.strip_prefix("huya:").unwrap_or(&order.user);
    hy::fields(&order.reference, profile, GOODS, level(order.plan), ts)
}

fn post(f: &[(&'static str, String)], secret: &str) -> Callback {
    let (auth, body) = hy::post(f, secret);
    post_raw(Some(auth), body)
}

fn post_raw(auth: Option<String>, body: String) -> Callback {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(a) = auth {
        headers.push(("authorization".into(), a));
    }
    Callback::post("huya", headers, body)
}

fn get(f: &[(&'static str, String)], secret: &str) -> Callback {
    let (auth, query) = hy::get(f, secret);
    Callback {
        method: "GET",
        target: format!("/callbacks/huya?{query}"),
        headers: vec![("authorization".into(), auth)],
        body: vec![],
    }
}

#[async_trait]
impl Conformant for Huya {
    const NAME: &'static str = "huya";

    async fn start() -> Self {
        Huya
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        hy::env()
    }

    fn ordering(&self) -> Ordering {
        Ordering::CreatedByCallback
    }

    async fn order(&self, _s: &TestServer, who: &str, plan: Plan) -> Order {
        let reference = format!("HY-{who}");
        Order {
            // `fields` puts the order time at T0.
            id: order_id_for(&reference, T0).to_string(),
            user: format!("huya:{who}"),
            plan,
            amount: plan.price(),
            reference,
        }
    }

    /// `orderTime` 20270115160000 (China time).
    fn paid_at(&self) -> i64 {
        T0
    }

    /// Huya's `orderId`.
    fn transaction_id(&self, order: &Order) -> String {
        order.reference.clone()
    }

    /// Huya may call back by POST (JSON body) or GET (query): deliveries alternate.
    fn paid(&self, order: &Order, n: usize) -> Callback {
        let f = fields(order, T0);
        if n.is_multiple_of(2) {
            post(&f, hy::EXT_SECRET)
        } else {
            get(&f, hy::EXT_SECRET)
        }
    }

    /// Huya sends no refund callback: a refund is settled in Huya's own panel.
    fn refunded(&self, _order: &Order) -> Option<Callback> {
        None
    }

    fn bad(&self, order: &Order, bad: Bad) -> Option<Callback> {
        let good = fields(order, T0);
        Some(match bad {
            Bad::ForgedSignature => post(&good, "wrong-secret"),
            Bad::Tampered => {
                let (auth, body) = hy::post(&good, hy::EXT_SECRET);
                let other = match order.plan {
                    Plan::Week => Plan::Month,
                    Plan::Month => Plan::Week,
                };
                let level_field = |p| format!("\"expenseLevel\":\"{}\"", level(p));
                post_raw(
                    Some(auth),
                    body.replace(&level_field(order.plan), &level_field(other)),
                )
            }
            Bad::Unsigned => post_raw(None, hy::json_body(&good)),
            // The window is 300 s either way (configurable: see the Huya suite).
            Bad::Stale => post(&fields(order, T0 - 301), hy::EXT_SECRET),
            Bad::Future => post(&fields(order, T0 + 301), hy::EXT_SECRET),
            // Huya reports no amount: the sale is priced from the catalog by goods and level
            // (unknown goods and levels are refused: see the Huya suite).
            Bad::WrongAmount => return None,
            // The extension (extUuid) is Huya's merchant: another one's is refused.
            Bad::WrongMerchant => {
                let mut f = good;
                for (k, v) in f.iter_mut() {
                    if *k == "extUuid" {
                        *v = "someone-elses-ext".into();
                    }
                }
                post(&f, hy::EXT_SECRET)
            }
            // The app id is not in the callback, only in what the authorization signs, so
            // another app's callback fails as a bad signature.
            Bad::WrongApp => {
                let body = hy::json_body(&good);
                let auth = hy::authorization_for(
                    "hy-app-0000",
                    hy::EXT_SECRET,
                    &T0.to_string(),
                    body.as_bytes(),
                );
                post_raw(Some(auth), body)
            }
            // The callback creates the order: a new orderId is a new sale, never unknown.
            Bad::UnknownOrder => return None,
            Bad::Malformed => {
                let junk = "not json";
                let auth = hy::authorization(hy::EXT_SECRET, &T0.to_string(), junk.as_bytes());
                post_raw(Some(auth), junk.into())
            }
        })
    }

    fn refusal_status(&self, bad: Bad) -> u16 {
        match bad {
            Bad::WrongApp => 401,
            _ => bad.usual_status(),
        }
    }

    fn assert_success(&self, r: &Reply) {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json(), serde_json::json!({"code": 0, "msg": "success"}));
    }

    fn assert_failure(&self, r: &Reply, status: u16) {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["code"], status, "{v}");
        assert!(v["msg"].is_string(), "{v}");
    }
}
