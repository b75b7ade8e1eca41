//! The payment side of the soak: a fake WeChat Pay on loopback that keeps its own ledger of
//! what was prepaid, paid, closed and refunded (the independent record the end checks
//! Tollgate against), fails a share of order queries and closes (500s, or hangs past the
//! client's timeout), and an outbox of signed notifications (WeChat Pay's and Huya's) that
//! are delivered once, twice at the same moment, or never, and redelivered until answered
//! with a 2xx, as the providers do.

use crate::fake::{Answer, FakeServer, Seen};
use crate::fuzz::rng::Rng;
use crate::{huya, wechat};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate::clock::{Clock, ManualClock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    NotPay,
    Success,
    Closed,
}

#[derive(Debug, Clone)]
pub struct Trade {
    pub total: i64,
    pub state: TradeState,
    pub txn: Option<String>,
    /// (refund id, amount) in the order WeChat Pay made them.
    pub refunds: Vec<(String, i64)>,
}

impl Trade {
    pub fn refunded(&self) -> i64 {
        self.refunds.iter().map(|(_, a)| a).sum()
    }
}

/// One Huya sale, as Huya recorded it.
#[derive(Debug, Clone)]
pub struct HuyaSale {
    pub order_id: String,
    pub profile: String,
    pub goods: String,
    pub level: String,
}

/// What the providers recorded, and what they were asked.
#[derive(Default)]
pub struct Ledger {
    /// WeChat Pay's trades by `out_trade_no` (Tollgate's order id).
    pub trades: HashMap<String, Trade>,
    pub huya: Vec<HuyaSale>,
    pub queries: u64,
    pub query_errors: u64,
    pub query_hangs: u64,
    pub closes: u64,
    txn_seq: u64,
}

/// Shares of order queries and closes that fail, per 10,000.
#[derive(Debug, Clone, Copy)]
pub struct ProviderFaultRates {
    /// Answered 500 SYSTEM_ERROR.
    pub error: u32,
    /// Answered only after the client's timeout.
    pub hang: u32,
}

/// A notification waiting to be delivered until acknowledged. Each delivery is signed
/// afresh at the time it is sent, as the providers do, so a late retry is not refused as
/// stale.
#[derive(Debug, Clone)]
pub struct Notice {
    pub what: Notified,
    /// Copies sent at the first delivery: 0 = lost for good, 2 = duplicated.
    pub first_copies: u32,
    pub deliveries: u32,
}

#[derive(Debug, Clone)]
pub enum Notified {
    /// A WeChat Pay notification body (its resource encrypted).
    Wechat(Vec<u8>),
    Huya(HuyaSale),
}

impl Notice {
    /// (path, headers, body) of a delivery at `now`.
    pub fn request(&self, now: i64) -> (&'static str, Vec<(String, String)>, Vec<u8>) {
        match &self.what {
            Notified::Wechat(body) => (
                "/callbacks/wechat",
                wechat::signed_headers(body, now, &wechat::platform_signer(), wechat::PUB_KEY_ID),
                body.clone(),
            ),
            Notified::Huya(sale) => {
                let fields =
                    huya::fields(&sale.order_id, &sale.profile, &sale.goods, &sale.level, now);
                let (auth, body) = huya::post(&fields, huya::EXT_SECRET);
                (
                    "/callbacks/huya",
                    vec![
                        ("authorization".into(), auth),
                        ("content-type".into(), "application/json".into()),
                    ],
                    body.into_bytes(),
                )
            }
        }
    }
}

pub struct FakeWechatPay {
    pub server: FakeServer,
    pub ledger: Arc<Mutex<Ledger>>,
    faults_on: Arc<AtomicBool>,
}

impl FakeWechatPay {
    pub async fn start(clock: ManualClock, rates: ProviderFaultRates, seed: u64) -> Self {
        let ledger: Arc<Mutex<Ledger>> = Arc::default();
        let faults_on = Arc::new(AtomicBool::new(true));
        let rng = Arc::new(Mutex::new(Rng::for_run(seed, "provider-faults", 0)));
        let (l, on, c) = (ledger.clone(), faults_on.clone(), clock.clone());
        let server = FakeServer::start_async(Arc::new(move |s: Seen| {
            let (l, on, c, rng) = (l.clone(), on.clone(), c.clone(), rng.clone());
            Box::pin(async move {
                let fault = if on.load(Ordering::SeqCst) {
                    let r = rng.lock().unwrap().below(10_000) as u32;
                    if r < rates.error {
                        Some(false)
                    } else if r < rates.error + rates.hang {
                        Some(true)
                    } else {
                        None
                    }
                } else {
                    None
                };
                answer(&l, &c, &s, fault).await
            })
        }))
        .await;
        FakeWechatPay {
            server,
            ledger,
            faults_on,
        }
    }

    pub fn set_faults(&self, on: bool) {
        self.faults_on.store(on, Ordering::SeqCst);
    }

    /// The customer pays `order_id` at WeChat Pay: only a trade that was prepaid and is
    /// neither paid nor closed can be. Returns the notification WeChat Pay sends.
    pub fn pay(&self, order_id: &str) -> Option<Vec<u8>> {
        let mut l = self.ledger.lock().unwrap();
        l.txn_seq += 1;
        let txn = format!("42000{:012}", l.txn_seq);
        let t = l.trades.get_mut(order_id)?;
        if t.state != TradeState::NotPay {
            return None;
        }
        t.state = TradeState::Success;
        t.txn = Some(txn.clone());
        let resource = wechat::transaction(order_id, &txn, t.total);
        Some(wechat::notification(
            "TRANSACTION.SUCCESS",
            &resource,
            wechat::API_V3_KEY,
        ))
    }

    /// A refund of `amount` made at WeChat Pay (the merchant's console) on a paid trade, if
    /// that much is left to refund. Returns the REFUND.SUCCESS notification.
    pub fn refund(&self, order_id: &str, amount: i64) -> Option<Vec<u8>> {
        let mut l = self.ledger.lock().unwrap();
        let t = l.trades.get_mut(order_id)?;
        if t.state != TradeState::Success || t.refunded() + amount > t.total || amount <= 0 {
            return None;
        }
        let refund_id = format!("5030{:04}{order_id}", t.refunds.len());
        t.refunds.push((refund_id.clone(), amount));
        let txn = t.txn.clone().unwrap_or_default();
        let resource = wechat::refund_numbered(order_id, &txn, t.total, amount, &refund_id);
        Some(wechat::notification(
            "REFUND.SUCCESS",
            &resource,
            wechat::API_V3_KEY,
        ))
    }
}

/// A Huya sale, recorded, and its callback (Huya sells in its own panel).
pub fn huya_sale(ledger: &Mutex<Ledger>, sale: HuyaSale) -> Notice {
    ledger.lock().unwrap().huya.push(sale.clone());
    Notice {
        what: Notified::Huya(sale),
        first_copies: 1,
        deliveries: 0,
    }
}

async fn answer(
    ledger: &Mutex<Ledger>,
    clock: &ManualClock,
    s: &Seen,
    fault: Option<bool>,
) -> Answer {
    let now = clock.now();
    if !wechat::authorization_ok(s) {
        return signed_json(
            401,
            &json!({"code": "SIGN_ERROR", "message": "bad signature"}),
            now,
        );
    }
    let path = s.target.split('?').next().unwrap_or("");
    if s.method == "POST" && path == "/v3/pay/transactions/native" {
        let body: Value = serde_json::from_slice(&s.body).unwrap_or_default();
        let id = body["out_trade_no"].as_str().unwrap_or("").to_owned();
        let total = body["amount"]["total"].as_i64().unwrap_or(0);
        ledger
            .lock()
            .unwrap()
            .trades
            .entry(id.clone())
            .or_insert(Trade {
                total,
                state: TradeState::NotPay,
                txn: None,
                refunds: vec![],
            });
        return signed_json(
            200,
            &json!({"code_url": format!("weixin://wxpay/bizpayurl?pr={id}")}),
            now,
        );
    }
    let Some(rest) = path.strip_prefix("/v3/pay/transactions/out-trade-no/") else {
        return signed_json(
            404,
            &json!({"code": "NOT_FOUND", "message": "no such API"}),
            now,
        );
    };
    {
        let mut l = ledger.lock().unwrap();
        if rest.ends_with("/close") {
            l.closes += 1;
        } else {
            l.queries += 1;
        }
        match fault {
            Some(false) => l.query_errors += 1,
            Some(true) => l.query_hangs += 1,
            None => {}
        }
    }
    match fault {
        Some(false) => {
            return signed_json(
                500,
                &json!({"code": "SYSTEM_ERROR", "message": "system busy"}),
                now,
            )
        }
        // Past the client's timeout (PROVIDER_HTTP_TIMEOUT_SECONDS=1 in the soak).
        Some(true) => tokio::time::sleep(Duration::from_millis(1_500)).await,
        None => {}
    }
    let mut l = ledger.lock().unwrap();
    if let Some(id) = rest.strip_suffix("/close") {
        return match l.trades.get_mut(id) {
            Some(t) if t.state == TradeState::Success => signed_json(
                400,
                &json!({"code": "ORDERPAID", "message": "order paid"}),
                now,
            ),
            Some(t) => {
                t.state = TradeState::Closed;
                Answer::plain(204, Vec::new())
            }
            None => Answer::plain(204, Vec::new()),
        };
    }
    match l.trades.get(rest) {
        None => signed_json(
            404,
            &json!({"code": "ORDER_NOT_EXIST", "message": "order does not exist"}),
            now,
        ),
        Some(t) => {
            let state = match (t.state, t.refunds.is_empty()) {
                (TradeState::NotPay, _) => "NOTPAY",
                (TradeState::Closed, _) => "CLOSED",
                (TradeState::Success, true) => "SUCCESS",
                (TradeState::Success, false) => "REFUND",
            };
            let mut v = json!({
                "mchid": wechat::MCH_ID, "appid": wechat::APP_ID, "out_trade_no": rest,
                "trade_state": state,
                "amount": {"total": t.total, "payer_total": t.total, "currency": "CNY"}
            });
            if let Some(txn) = &t.txn {
                v["transaction_id"] = json!(txn);
                v["success_time"] = json!("2027-01-15T16:00:00+08:00");
            }
            signed_json(200, &v, now)
        }
    }
}

fn signed_json(status: u16, v: &Value, now: i64) -> Answer {
    let body = v.to_string().into_bytes();
    Answer {
        status,
        headers: wechat::signed_headers(&body, now, &wechat::platform_signer(), wechat::PUB_KEY_ID),
        body,
    }
}
