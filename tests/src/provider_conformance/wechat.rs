//! WeChat Pay v3 under the conformance suite: orders prepaid at the fake WeChat Pay,
//! notifications encrypted with the APIv3 key and signed with the platform key.

use super::{create_order, Bad, Callback, Conformant, Order, Plan};
use crate::wechat::{self as wx, FakeWechat};
use crate::{Reply, TestServer, T0};
use async_trait::async_trait;
use serde_json::{json, Value};

pub struct Wechat {
    fake: FakeWechat,
}

const TXN: &str = "4200000001";

fn signed_at(body: Vec<u8>, ts: i64) -> Callback {
    let headers = wx::signed_headers(&body, ts, &wx::platform_signer(), wx::PUB_KEY_ID);
    Callback::post("wechat", headers, body)
}

fn paid_body(transaction: &Value) -> Vec<u8> {
    wx::notification("TRANSACTION.SUCCESS", transaction, wx::API_V3_KEY)
}

#[async_trait]
impl Conformant for Wechat {
    const NAME: &'static str = "wechat";

    async fn start() -> Self {
        Wechat {
            fake: FakeWechat::start(T0).await,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        wx::env(&self.fake.server.base)
    }

    async fn order(&self, s: &TestServer, who: &str, plan: Plan) -> Order {
        create_order(s, who, Self::NAME, plan).await
    }

    /// `success_time` 2027-01-15T16:00:00+08:00.
    fn paid_at(&self) -> i64 {
        T0
    }

    fn transaction_id(&self, _order: &Order) -> String {
        TXN.into()
    }

    fn paid(&self, order: &Order, _n: usize) -> Callback {
        signed_at(
            paid_body(&wx::transaction(&order.id, TXN, order.amount)),
            T0,
        )
    }

    fn refunded(&self, order: &Order) -> Option<Callback> {
        let refund = wx::refund(&order.id, TXN, order.amount, order.amount);
        let body = wx::notification("REFUND.SUCCESS", &refund, wx::API_V3_KEY);
        Some(signed_at(body, T0))
    }

    fn bad(&self, order: &Order, bad: Bad) -> Option<Callback> {
        let good = wx::transaction(&order.id, TXN, order.amount);
        let with = |field: &str, value: &str| {
            let mut t = good.clone();
            t[field] = json!(value);
            signed_at(paid_body(&t), T0)
        };
        Some(match bad {
            Bad::ForgedSignature => {
                let body = paid_body(&good);
                let headers = wx::signed_headers(&body, T0, &wx::forger(), wx::PUB_KEY_ID);
                Callback::post("wechat", headers, body)
            }
            Bad::Tampered => {
                let mut cb = signed_at(paid_body(&good), T0);
                let n = cb.body.len();
                cb.body[n - 2] = b' ';
                cb
            }
            Bad::Unsigned => Callback::post(
                "wechat",
                vec![("content-type".into(), "application/json".into())],
                paid_body(&good),
            ),
            // The window is 300 s either way.
            Bad::Stale => signed_at(paid_body(&good), T0 - 301),
            Bad::Future => signed_at(paid_body(&good), T0 + 301),
            Bad::WrongAmount => signed_at(paid_body(&wx::transaction(&order.id, TXN, 1)), T0),
            Bad::WrongMerchant => with("mchid", "1900000999"),
            Bad::WrongApp => with("appid", "wx0000000000000000"),
            Bad::UnknownOrder => with("out_trade_no", "01KQ000000000000000000000Z"),
            Bad::Malformed => signed_at(b"{\"not\":\"a notification\"}".to_vec(), T0),
        })
    }

    fn refusal_status(&self, bad: Bad) -> u16 {
        match bad {
            // Without its Wechatpay-* headers a request is not a notification at all.
            Bad::Unsigned => 400,
            _ => bad.usual_status(),
        }
    }

    fn assert_success(&self, r: &Reply) {
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.body.is_empty());
    }

    fn assert_failure(&self, r: &Reply, status: u16) {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["code"], "FAIL", "{v}");
        assert!(v["message"].is_string(), "{v}");
    }
}
