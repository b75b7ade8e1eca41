//! A fake WeChat Pay v3 API for the end-to-end suites: it checks every request's
//! `WECHATPAY2-SHA256-RSA2048` Authorization against the merchant's public key, answers
//! signed with a platform key, and builds notifications the way WeChat Pay does.

use crate::fake::{key, Answer, FakeServer, RefundMode, Refunds, Seen, Trades};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tollgate::crypto::b64_encode;
use tollgate::providers::rsa::{RsaPrivateKey, RsaPublicKey};

pub const MCH_ID: &str = "1900000109";
pub const APP_ID: &str = "wxd678efh567hg6787";
pub const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
pub const MERCHANT_SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD12345678";
pub const PUB_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";
pub const CERT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

/// The `WECHATPAY_*` variables for a deployment talking to `base`.
pub fn env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PROVIDERS", "sandbox,wechat".into()),
        ("WECHATPAY_MCH_ID", MCH_ID.into()),
        ("WECHATPAY_APP_ID", APP_ID.into()),
        ("WECHATPAY_API_V3_KEY", API_V3_KEY.into()),
        ("WECHATPAY_MERCHANT_SERIAL", MERCHANT_SERIAL.into()),
        (
            "WECHATPAY_MERCHANT_PRIVATE_KEY",
            key("wechat_merchant_key.pem"),
        ),
        (
            "WECHATPAY_PLATFORM_KEYS",
            format!(
                "{PUB_KEY_ID}={};{CERT_SERIAL}={}",
                key("wechat_platform_pub.pem"),
                key("wechat_platform2_cert.pem")
            ),
        ),
        ("WECHATPAY_BASE_URL", base.into()),
        (
            "WECHATPAY_NOTIFY_URL",
            "https://tollgate.example.com/callbacks/wechat".into(),
        ),
    ]
}

pub fn platform_signer() -> RsaPrivateKey {
    RsaPrivateKey::from_pem_or_base64(&key("wechat_platform_key.pem")).unwrap()
}

/// A key that is not WeChat Pay's, to forge signatures with.
pub fn forger() -> RsaPrivateKey {
    RsaPrivateKey::from_pem_or_base64(&key("alipay_app_key.pem")).unwrap()
}

pub fn merchant_public() -> RsaPublicKey {
    RsaPublicKey::from_pem_or_base64(&key("wechat_merchant_pub.pem")).unwrap()
}

/// Checks a request's Authorization header the way WeChat Pay does.
pub fn authorization_ok(s: &Seen) -> bool {
    let Some(rest) = s
        .header("authorization")
        .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
    else {
        return false;
    };
    let mut f: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            f.insert(k.trim(), v.trim().trim_matches('"'));
        }
    }
    if f.get("mchid") != Some(&MCH_ID) || f.get("serial_no") != Some(&MERCHANT_SERIAL) {
        return false;
    }
    let msg = format!(
        "{}\n{}\n{}\n{}\n{}\n",
        s.method,
        s.target,
        f.get("timestamp").unwrap_or(&""),
        f.get("nonce_str").unwrap_or(&""),
        String::from_utf8_lossy(&s.body)
    );
    merchant_public().verify_sha256_b64(msg.as_bytes(), f.get("signature").unwrap_or(&""))
}

/// Headers that sign `body` as WeChat Pay's platform key `PUB_KEY_ID` at `ts`.
pub fn signed_headers(
    body: &[u8],
    ts: i64,
    signer: &RsaPrivateKey,
    serial: &str,
) -> Vec<(String, String)> {
    let nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
    let mut m = format!("{ts}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    vec![
        ("wechatpay-timestamp".into(), ts.to_string()),
        ("wechatpay-nonce".into(), nonce.into()),
        ("wechatpay-serial".into(), serial.into()),
        (
            "wechatpay-signature".into(),
            signer.sign_sha256_b64(&m).unwrap(),
        ),
        ("content-type".into(), "application/json".into()),
    ]
}

pub struct FakeWechat {
    pub server: FakeServer,
    /// What the fake answers to queries (absent = ORDER_NOT_EXIST).
    pub trades: Trades,
    /// The refunds it made, by `out_refund_no`, and how it answers new ones.
    pub refunds: Refunds,
}

/// `POST /v3/refund/domestic/refunds` as WeChat Pay answers it: a refund id already made is
/// answered as it stands (never refunded twice); a new one as the mode says.
fn refund_call(book: &Refunds, body: &[u8], now: i64) -> Answer {
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let no = req["out_refund_no"].as_str().unwrap_or("").to_owned();
    let mut b = book.book();
    b.calls += 1;
    if let Some(r) = b.made.get(&no) {
        return json_answer(200, r, now);
    }
    let status = match b.mode.clone() {
        RefundMode::Refuse(code) => {
            return json_answer(400, &json!({"code": code, "message": "refused"}), now)
        }
        RefundMode::Down => return Answer::plain(500, "down"),
        RefundMode::Process => "PROCESSING",
        RefundMode::Succeed | RefundMode::LoseAnswer => "SUCCESS",
    };
    let refund_id = format!("503000{:08}", b.made.len() + 1);
    let record = json!({
        "refund_id": refund_id, "out_refund_no": no,
        "transaction_id": req["transaction_id"], "out_trade_no": req["out_trade_no"],
        "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
        "create_time": "2027-01-15T16:30:00+08:00", "status": status,
        "amount": {"total": req["amount"]["total"], "refund": req["amount"]["refund"],
                   "payer_total": req["amount"]["total"], "payer_refund": req["amount"]["refund"],
                   "currency": "CNY"}
    });
    b.made.insert(no, record.clone());
    if b.mode == RefundMode::LoseAnswer {
        return Answer::plain(500, "lost");
    }
    json_answer(200, &record, now)
}

impl FakeWechat {
    /// `now` stamps the signed answers (the app's clock).
    pub async fn start(now: i64) -> Self {
        let trades = Trades::default();
        let st = trades.clone();
        let refunds = Refunds::default();
        let book = refunds.clone();
        let server = FakeServer::start(Arc::new(move |s: &Seen| {
            if !authorization_ok(s) {
                return json_answer(
                    401,
                    &json!({"code": "SIGN_ERROR", "message": "bad signature"}),
                    now,
                );
            }
            let path = s.target.split('?').next().unwrap_or("");
            if s.method == "POST" && path == "/v3/refund/domestic/refunds" {
                return refund_call(&book, &s.body, now);
            }
            if let Some(no) = path.strip_prefix("/v3/refund/domestic/refunds/") {
                let mut b = book.book();
                b.queries += 1;
                return match b.made.get(no) {
                    Some(r) => json_answer(200, r, now),
                    None => json_answer(
                        404,
                        &json!({"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}),
                        now,
                    ),
                };
            }
            if s.method == "POST"
                && path.starts_with("/v3/pay/transactions/")
                && !path.contains("out-trade-no")
            {
                let body: Value = serde_json::from_slice(&s.body).unwrap_or_default();
                let id = body["out_trade_no"].as_str().unwrap_or("").to_owned();
                return match path {
                    "/v3/pay/transactions/native" => json_answer(
                        200,
                        &json!({"code_url": format!("weixin://wxpay/bizpayurl?pr={id}")}),
                        now,
                    ),
                    _ => json_answer(200, &json!({"prepay_id": format!("wx{id}")}), now),
                };
            }
            if let Some(rest) = path.strip_prefix("/v3/pay/transactions/out-trade-no/") {
                if let Some(id) = rest.strip_suffix("/close") {
                    st.set(id, json!({"trade_state": "CLOSED"}));
                    return Answer {
                        status: 204,
                        headers: vec![],
                        body: vec![],
                    };
                }
                return match st.get(rest) {
                    None => json_answer(
                        404,
                        &json!({"code": "ORDER_NOT_EXIST", "message": "order does not exist"}),
                        now,
                    ),
                    Some(t) => {
                        let mut t = t;
                        t["mchid"] = json!(MCH_ID);
                        t["appid"] = json!(APP_ID);
                        t["out_trade_no"] = json!(rest);
                        json_answer(200, &t, now)
                    }
                };
            }
            json_answer(
                404,
                &json!({"code": "NOT_FOUND", "message": "no such API"}),
                now,
            )
        }))
        .await;
        FakeWechat {
            server,
            trades,
            refunds,
        }
    }
}

fn json_answer(status: u16, v: &Value, now: i64) -> Answer {
    let body = v.to_string().into_bytes();
    Answer {
        status,
        headers: signed_headers(&body, now, &platform_signer(), PUB_KEY_ID),
        body,
    }
}

pub fn encrypt(plain: &[u8], nonce: &str, aad: &str, key: &str) -> String {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.as_bytes()).unwrap());
    let mut buf = plain.to_vec();
    k.seal_in_place_append_tag(
        Nonce::try_assume_unique_for_key(nonce.as_bytes()).unwrap(),
        Aad::from(aad.as_bytes()),
        &mut buf,
    )
    .unwrap();
    b64_encode(&buf)
}

/// The decrypted `resource` of a TRANSACTION.SUCCESS notification.
pub fn transaction(order_id: &str, txn: &str, total: i64) -> Value {
    json!({
        "appid": APP_ID, "mchid": MCH_ID, "out_trade_no": order_id, "transaction_id": txn,
        "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
        "bank_type": "OTHERS", "attach": "", "success_time": "2027-01-15T16:00:00+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}
    })
}

/// The decrypted `resource` of a REFUND.* notification.
pub fn refund(order_id: &str, txn: &str, total: i64, refunded: i64) -> Value {
    refund_numbered(
        order_id,
        txn,
        total,
        refunded,
        "50000000382019052709732678859",
    )
}

/// The decrypted `resource` of a REFUND.* notification of WeChat Pay's refund `refund_id`
/// (an order may have several partial refunds, each with its own id).
pub fn refund_numbered(
    order_id: &str,
    txn: &str,
    total: i64,
    refunded: i64,
    refund_id: &str,
) -> Value {
    json!({
        "mchid": MCH_ID, "out_trade_no": order_id, "transaction_id": txn,
        "out_refund_no": format!("R{order_id}-{refund_id}"), "refund_id": refund_id,
        "refund_status": "SUCCESS", "success_time": "2027-01-15T16:30:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": total, "refund": refunded, "payer_total": total, "payer_refund": refunded}
    })
}

/// A notification body (encrypted under `v3_key`).
pub fn notification(event_type: &str, resource: &Value, v3_key: &str) -> Vec<u8> {
    let nonce = "fdasflkja484";
    let aad = "transaction";
    json!({
        "id": "EV-2018022511223320873", "create_time": "2027-01-15T16:00:05+08:00",
        "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
        "resource": {
            "original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": encrypt(resource.to_string().as_bytes(), nonce, aad, v3_key),
            "associated_data": aad, "nonce": nonce
        }
    })
    .to_string()
    .into_bytes()
}
