//! Alipay under the conformance suite: orders signed for the app SDK, notifications as
//! RSA2-signed forms.

use super::{create_order, Bad, Callback, Conformant, Order, Plan};
use crate::alipay::{self as ali, FakeAlipay};
use crate::{Reply, TestServer, T0};
use async_trait::async_trait;
use std::collections::BTreeMap;

pub struct Alipay {
    fake: FakeAlipay,
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn form(body: String) -> Callback {
    Callback::post(
        "alipay",
        vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body,
    )
}

fn signed(fields: &BTreeMap<String, String>) -> Callback {
    form(ali::notification(fields, &ali::alipay_signer()))
}

#[async_trait]
impl Conformant for Alipay {
    const NAME: &'static str = "alipay";

    async fn start() -> Self {
        Alipay {
            fake: FakeAlipay::start().await,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        ali::env(&format!("{}/gateway.do", self.fake.server.base))
    }

    async fn order(&self, s: &TestServer, who: &str, plan: Plan) -> Order {
        create_order(s, who, Self::NAME, plan).await
    }

    /// `gmt_payment` says 2027-01-15 16:00:30 (China time), 30 s after the app's clock:
    /// access never starts after Tollgate learned of the payment, so it is clamped to T0.
    fn paid_at(&self) -> i64 {
        T0
    }

    /// Alipay notifies TRADE_SUCCESS, and TRADE_FINISHED once refunds are no longer
    /// possible: both say the order is paid, so deliveries alternate between them.
    fn transaction_id(&self, _order: &Order) -> String {
        ali::TRADE_NO.into()
    }

    fn paid(&self, order: &Order, n: usize) -> Callback {
        let status = if n.is_multiple_of(2) {
            "TRADE_SUCCESS"
        } else {
            "TRADE_FINISHED"
        };
        signed(&ali::fields(&order.id, status, &yuan(order.amount)))
    }

    fn refunded(&self, order: &Order) -> Option<Callback> {
        let total = yuan(order.amount);
        let mut f = ali::fields(&order.id, "TRADE_CLOSED", &total);
        f.insert("refund_fee".into(), total);
        f.insert("gmt_refund".into(), "2027-01-15 17:00:00.123".into());
        f.insert("gmt_close".into(), "2027-01-15 17:00:00".into());
        Some(signed(&f))
    }

    fn bad(&self, order: &Order, bad: Bad) -> Option<Callback> {
        let total = yuan(order.amount);
        let good = ali::fields(&order.id, "TRADE_SUCCESS", &total);
        let with = |field: &str, value: &str| {
            let mut f = good.clone();
            f.insert(field.into(), value.into());
            signed(&f)
        };
        Some(match bad {
            Bad::ForgedSignature => form(ali::notification(&good, &ali::forger())),
            Bad::Tampered => form(
                ali::notification(&good, &ali::alipay_signer())
                    .replace(&format!("total_amount={total}"), "total_amount=0.01"),
            ),
            Bad::Unsigned => {
                let mut s = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &good {
                    s.append_pair(k, v);
                }
                form(s.finish())
            }
            // Tollgate bounds no timestamp of Alipay's: Alipay redelivers a notification for
            // about a day until it hears `success`, so an old one is as genuine as a new one
            // and replays are harmless (the duplicate scenario).
            Bad::Stale | Bad::Future => return None,
            Bad::WrongAmount => signed(&ali::fields(
                &order.id,
                "TRADE_SUCCESS",
                &yuan(order.amount + 1),
            )),
            Bad::WrongMerchant => with("seller_id", "2088000000000001"),
            Bad::WrongApp => with("app_id", "2021000000000001"),
            Bad::UnknownOrder => with("out_trade_no", "01KQ000000000000000000000Z"),
            Bad::Malformed => form("%%%garbage".into()),
        })
    }

    fn refusal_status(&self, bad: Bad) -> u16 {
        match bad {
            // A form without `sign` is not a notification at all.
            Bad::Unsigned => 400,
            _ => bad.usual_status(),
        }
    }

    fn assert_success(&self, r: &Reply) {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], b"success");
    }

    fn assert_failure(&self, r: &Reply, status: u16) {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], b"failure");
    }
}
