//! Tollgate's sandbox provider under the conformance suite: JSON callbacks signed with an
//! HMAC of the shared `SANDBOX_SECRET`.

use super::{create_order, Bad, Callback, Conformant, Order, Plan};
use crate::{Reply, TestServer, SANDBOX_SECRET, T0};
use async_trait::async_trait;
use serde_json::{json, Value};
use tollgate::providers::sandbox::sign;

pub struct Sandbox;

fn body(order: &Order, status: &str, amount: i64, timestamp: i64) -> Value {
    json!({
        "order_id": order.id, "transaction_id": format!("txn-{}", order.id), "status": status,
        "amount": {"amount": amount, "currency": "CNY"}, "timestamp": timestamp
    })
}

fn signed_with(secret: &str, raw: Vec<u8>) -> Callback {
    let sig = sign(secret, &raw);
    Callback::post(
        "sandbox",
        vec![
            ("x-sandbox-signature".into(), sig),
            ("content-type".into(), "application/json".into()),
        ],
        raw,
    )
}

fn signed(v: &Value) -> Callback {
    signed_with(SANDBOX_SECRET, v.to_string().into_bytes())
}

#[async_trait]
impl Conformant for Sandbox {
    const NAME: &'static str = "sandbox";

    async fn start() -> Self {
        Sandbox
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        // The test configuration enables the sandbox already.
        vec![]
    }

    async fn order(&self, s: &TestServer, who: &str, plan: Plan) -> Order {
        create_order(s, who, Self::NAME, plan).await
    }

    /// The callback's `timestamp`.
    fn paid_at(&self) -> i64 {
        T0
    }

    fn transaction_id(&self, order: &Order) -> String {
        format!("txn-{}", order.id)
    }

    fn paid(&self, order: &Order, _n: usize) -> Callback {
        signed(&body(order, "paid", order.amount, T0))
    }

    fn refunded(&self, order: &Order) -> Option<Callback> {
        Some(signed(&body(order, "refunded", order.amount, T0)))
    }

    fn bad(&self, order: &Order, bad: Bad) -> Option<Callback> {
        let good = body(order, "paid", order.amount, T0);
        Some(match bad {
            Bad::ForgedSignature => signed_with("guessed-secret", good.to_string().into_bytes()),
            Bad::Tampered => {
                let mut cb = signed(&good);
                cb.body = body(order, "paid", 1, T0).to_string().into_bytes();
                cb
            }
            Bad::Unsigned => Callback::post(
                "sandbox",
                vec![("content-type".into(), "application/json".into())],
                good.to_string(),
            ),
            // The window is 300 s either way.
            Bad::Stale => signed(&body(order, "paid", order.amount, T0 - 301)),
            Bad::Future => signed(&body(order, "paid", order.amount, T0 + 301)),
            Bad::WrongAmount => signed(&body(order, "paid", 1, T0)),
            // The sandbox has one shared secret and no merchant or app ids in its callbacks.
            Bad::WrongMerchant | Bad::WrongApp => return None,
            Bad::UnknownOrder => {
                let mut v = good;
                v["order_id"] = json!("01KAAAAAAAAAAAAAAAAAAAAAAA");
                signed(&v)
            }
            Bad::Malformed => signed(&json!({"order_id": order.id})),
        })
    }

    fn assert_success(&self, r: &Reply) {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json(), json!({"ok": true}));
    }

    fn assert_failure(&self, r: &Reply, status: u16) {
        r.assert_problem(status);
    }
}
