//! A fake Alipay gateway for the end-to-end suites: it verifies every request's RSA2 `sign`
//! with the app's public key and answers signed with the Alipay key, and builds asynchronous
//! notifications the way Alipay does.

use crate::fake::{key, Answer, FakeServer, RefundMode, Refunds, Seen, Trades};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tollgate::providers::rsa::{RsaPrivateKey, RsaPublicKey};

pub const APP_ID: &str = "2021000117600000";
pub const SELLER_ID: &str = "2088102177800000";

pub fn env(gateway: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PROVIDERS", "sandbox,alipay".into()),
        ("ALIPAY_APP_ID", APP_ID.into()),
        ("ALIPAY_SELLER_ID", SELLER_ID.into()),
        ("ALIPAY_APP_PRIVATE_KEY", key("alipay_app_key.pem")),
        ("ALIPAY_PUBLIC_KEY", key("alipay_platform_pub.pem")),
        ("ALIPAY_GATEWAY_URL", gateway.into()),
        (
            "ALIPAY_NOTIFY_URL",
            "https://tollgate.example.com/callbacks/alipay".into(),
        ),
    ]
}

pub fn alipay_signer() -> RsaPrivateKey {
    RsaPrivateKey::from_pem_or_base64(&key("alipay_platform_key.pem")).unwrap()
}

/// A key that is not Alipay's (the app's own), to forge notifications with.
pub fn forger() -> RsaPrivateKey {
    RsaPrivateKey::from_pem_or_base64(&key("alipay_app_key.pem")).unwrap()
}

pub fn app_public() -> RsaPublicKey {
    RsaPublicKey::from_pem_or_base64(&key("alipay_app_pub.pem")).unwrap()
}

/// Sorted `k=v&...` of everything but `sign` and `sign_type`, empty values skipped.
pub fn sign_content(params: &BTreeMap<String, String>, skip_sign_type: bool) -> String {
    params
        .iter()
        .filter(|(k, v)| *k != "sign" && !(skip_sign_type && *k == "sign_type") && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks a signed request (order string, URL query or form body) as Alipay's gateway does:
/// the content includes `sign_type` for requests.
pub fn request_sign_ok(form: &str) -> bool {
    let params: BTreeMap<String, String> = form_urlencoded::parse(form.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let Some(sign) = params.get("sign") else {
        return false;
    };
    params.get("app_id").map(String::as_str) == Some(APP_ID)
        && app_public().verify_sha256_b64(sign_content(&params, false).as_bytes(), sign)
}

pub fn form(s: &Seen) -> BTreeMap<String, String> {
    form_urlencoded::parse(&s.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub struct FakeAlipay {
    pub server: FakeServer,
    /// What the fake answers to trade.query (absent = ACQ.TRADE_NOT_EXIST).
    pub trades: Trades,
    /// The refunds it made, by `out_request_no`, and how it answers new ones.
    pub refunds: Refunds,
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// `alipay.trade.refund` / `alipay.trade.fastpay.refund.query` as Alipay answers them: a
/// refund already made (same `out_request_no`) is never made twice; `refund_fee` is the
/// trade's running total.
fn refund_method(book: &Refunds, method: &str, biz: &Value, node_name: &str) -> Answer {
    let trade = biz["out_trade_no"].as_str().unwrap_or("").to_owned();
    let no = biz["out_request_no"].as_str().unwrap_or("").to_owned();
    let mut b = book.book();
    let total = |b: &crate::fake::RefundBook| -> i64 {
        b.made
            .values()
            .filter(|r| r["out_trade_no"] == trade.as_str())
            .map(|r| r["fen"].as_i64().unwrap_or(0))
            .sum()
    };
    if method == "alipay.trade.fastpay.refund.query" {
        b.queries += 1;
        let node = match b.made.get(&no) {
            Some(r) => json!({"code": "10000", "msg": "Success", "out_trade_no": trade,
                "out_request_no": no, "refund_status": "REFUND_SUCCESS",
                "refund_amount": yuan(r["fen"].as_i64().unwrap_or(0)), "total_amount": "9.00"}),
            None => json!({"code": "10000", "msg": "Success", "out_trade_no": trade}),
        };
        return signed(node_name, &node);
    }
    b.calls += 1;
    if b.made.contains_key(&no) {
        let node = json!({"code": "10000", "msg": "Success", "out_trade_no": trade,
            "trade_no": TRADE_NO, "fund_change": "N", "refund_fee": yuan(total(&b))});
        return signed(node_name, &node);
    }
    match b.mode.clone() {
        RefundMode::Refuse(code) => {
            return signed(
                node_name,
                &json!({"code": "40004", "msg": "Business Failed", "sub_code": code,
                        "sub_msg": "refused"}),
            )
        }
        RefundMode::Down => return Answer::plain(500, "down"),
        _ => {}
    }
    let fen = biz["refund_amount"]
        .as_str()
        .and_then(|a| {
            tollgate::domain::Money::parse_decimal(a, tollgate::domain::Currency::CNY).ok()
        })
        .map_or(0, |m| m.amount);
    b.made
        .insert(no, json!({"out_trade_no": trade, "fen": fen}));
    if b.mode == RefundMode::LoseAnswer {
        return Answer::plain(500, "lost");
    }
    let node = json!({"code": "10000", "msg": "Success", "out_trade_no": trade,
        "trade_no": TRADE_NO, "fund_change": "Y", "refund_fee": yuan(total(&b))});
    signed(node_name, &node)
}

impl FakeAlipay {
    pub async fn start() -> Self {
        let trades = Trades::default();
        let st = trades.clone();
        let refunds = Refunds::default();
        let book = refunds.clone();
        let server = FakeServer::start(Arc::new(move |s: &Seen| {
            let body = String::from_utf8_lossy(&s.body).into_owned();
            let p = form(s);
            let method = p.get("method").cloned().unwrap_or_default();
            let node_name = format!("{}_response", method.replace('.', "_"));
            if !request_sign_ok(&body) {
                return signed(&node_name, &json!({"code": "40002", "msg": "Invalid Arguments",
                    "sub_code": "isv.invalid-signature", "sub_msg": "bad sign"}));
            }
            let biz: Value = p.get("biz_content").and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
            if method.starts_with("alipay.trade.refund")
                || method == "alipay.trade.fastpay.refund.query"
            {
                return refund_method(&book, &method, &biz, &node_name);
            }
            let id = biz["out_trade_no"].as_str().unwrap_or("").to_owned();
            let node = match (method.as_str(), st.get(&id)) {
                (_, None) => json!({"code": "40004", "msg": "Business Failed",
                    "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}),
                ("alipay.trade.query", Some(t)) => {
                    let mut t = t;
                    t["code"] = json!("10000");
                    t["msg"] = json!("Success");
                    t["out_trade_no"] = json!(id);
                    t
                }
                ("alipay.trade.close", Some(_)) => {
                    st.set(&id, json!({"trade_status": "TRADE_CLOSED", "trade_no": "2027011522001", "total_amount": "9.00"}));
                    json!({"code": "10000", "msg": "Success", "out_trade_no": id, "trade_no": "2027011522001"})
                }
                _ => json!({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.UNKNOWN"}),
            };
            signed(&node_name, &node)
        }))
        .await;
        FakeAlipay {
            server,
            trades,
            refunds,
        }
    }
}

fn signed(node_name: &str, node: &Value) -> Answer {
    let raw = node.to_string();
    let sign = alipay_signer().sign_sha256_b64(raw.as_bytes()).unwrap();
    let body = format!("{{\"{node_name}\":{raw},\"sign\":{}}}", Value::String(sign));
    Answer {
        status: 200,
        headers: vec![("content-type".into(), "text/html;charset=utf-8".into())],
        body: body.into_bytes(),
    }
}

/// The fields of a notification for `order_id`.
/// Alipay's `trade_no` in every notification [`fields`] builds.
pub const TRADE_NO: &str = "2027011522001446880000000001";

pub fn fields(order_id: &str, status: &str, total: &str) -> BTreeMap<String, String> {
    [
        ("gmt_create", "2027-01-15 16:00:00"),
        ("charset", "utf-8"),
        ("gmt_payment", "2027-01-15 16:00:30"),
        ("notify_time", "2027-01-15 16:00:31"),
        ("subject", "Channel pass + extra"),
        ("buyer_id", "2088102177846880"),
        ("invoice_amount", total),
        ("version", "1.0"),
        ("notify_id", "2027011500222160031346880000000001"),
        (
            "fund_bill_list",
            r#"[{"amount":"9.00","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
        ("notify_type", "trade_status_sync"),
        ("out_trade_no", order_id),
        ("total_amount", total),
        ("trade_status", status),
        ("trade_no", TRADE_NO),
        ("auth_app_id", APP_ID),
        ("receipt_amount", total),
        ("point_amount", "0.00"),
        ("app_id", APP_ID),
        ("buyer_pay_amount", total),
        ("sign_type", "RSA2"),
        ("seller_id", SELLER_ID),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Signs `fields` with `signer` and form-encodes them, as Alipay posts them.
pub fn notification(fields: &BTreeMap<String, String>, signer: &RsaPrivateKey) -> String {
    let sign = signer
        .sign_sha256_b64(sign_content(fields, true).as_bytes())
        .unwrap();
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.append_pair("sign", &sign);
    s.finish()
}
