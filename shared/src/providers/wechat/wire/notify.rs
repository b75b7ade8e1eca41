//! Payment and refund callbacks: a signed JSON envelope whose `resource` is encrypted with
//! the APIv3 key. [`WechatConfig::verify_notification`] checks both and reads what happened;
//! the answers WeChat Pay expects back are at the end.
//!
//! Sources:
//! - Callback answer: HTTP 200/204 = received; 4xx/5xx (+ `{"code":"FAIL","message":..}`) = retry.
//!   HTTP status wins over body:
//!   <https://developers.weixin.qq.com/community/pay/doc/000e4c3d4a83607545eb97f5856c00>,
//!   <https://developers.weixin.qq.com/community/pay/doc/00068e32ce46184b499b3d28c57800>
//! - Refund callback fields (mchid, out_trade_no, transaction_id, out_refund_no, refund_id,
//!   refund_status SUCCESS/CLOSED/ABNORMAL, success_time, amount.total/refund/payer_total/payer_refund):
//!   <https://developer.work.weixin.qq.com/document/path/97338> (same schema as the Pay v3 refund notify)

use serde::Deserialize;
use serde_json::{json, Value};

use super::{opt_i64, parse_json, req_str, success_time, SignatureHeaders, WechatConfig};
use crate::domain::time::parse_rfc3339;
use crate::providers::notification::{NotificationKind, VerifiedNotification};
use crate::providers::wire_error::VerifyError;

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    create_time: Option<String>,
    event_type: String,
    #[serde(default)]
    summary: Option<String>,
    resource: EncryptedResource,
}

#[derive(Deserialize)]
struct EncryptedResource {
    algorithm: String,
    ciphertext: String,
    nonce: String,
    #[serde(default)]
    associated_data: Option<String>,
    #[serde(default)]
    original_type: Option<String>,
}

fn currency_of(amount: Option<&Value>) -> String {
    amount
        .and_then(|a| a.get("currency"))
        .and_then(Value::as_str)
        .unwrap_or("CNY")
        .to_string()
}

impl WechatConfig {
    /// Verify, decrypt and interpret a payment / refund callback.
    ///
    /// Mapping: `TRANSACTION.SUCCESS` → `Paid`; `REFUND.SUCCESS` → `Refunded`,
    /// `REFUND.ABNORMAL` → `Pending`, `REFUND.CLOSED` → `Closed` (the *refund* closed; the
    /// order is still paid!). `amount_minor` is always the order's `amount.total`; refund
    /// events carry `amount.refund` in `refunded_minor` and the refund's own `refund_id`.
    /// The time is `success_time`, else the envelope's `create_time`.
    pub fn verify_notification(
        &self,
        h: &SignatureHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedNotification, VerifyError> {
        self.verify_signature(h, body, now)?;
        let env: Envelope = serde_json::from_slice(body)
            .map_err(|_| VerifyError::Malformed("notification JSON".into()))?;
        let res = &env.resource;
        let plain = self.decrypt_resource(
            &res.algorithm,
            &res.ciphertext,
            &res.nonce,
            res.associated_data.as_deref().unwrap_or(""),
        )?;
        let r: Value = parse_json(&plain)?;
        if !r.is_object() {
            return Err(VerifyError::Malformed("resource is not an object".into()));
        }
        if req_str(&r, "mchid")? != self.mch_id {
            return Err(VerifyError::WrongMerchant);
        }
        let create_time = env.create_time.as_deref().and_then(parse_rfc3339);
        let amount = r.get("amount");
        let (kind, refunded_minor, refund_id) = match env.event_type.as_str() {
            "TRANSACTION.SUCCESS" => {
                if req_str(&r, "appid")? != self.app_id {
                    return Err(VerifyError::WrongApp);
                }
                let state = req_str(&r, "trade_state")?;
                if state != "SUCCESS" {
                    return Err(VerifyError::Unsupported(format!(
                        "TRANSACTION.SUCCESS with trade_state {state}"
                    )));
                }
                (NotificationKind::Paid, None, None)
            }
            event @ ("REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED") => {
                let kind = match event {
                    "REFUND.SUCCESS" => NotificationKind::Refunded,
                    "REFUND.ABNORMAL" => NotificationKind::Pending,
                    _ => NotificationKind::Closed,
                };
                let refund = opt_i64(amount, "refund")?
                    .ok_or_else(|| VerifyError::Malformed("amount.refund".into()))?;
                (kind, Some(refund), Some(req_str(&r, "refund_id")?))
            }
            other => return Err(VerifyError::Unsupported(format!("event_type {other}"))),
        };
        let total = opt_i64(amount, "total")?
            .ok_or_else(|| VerifyError::Malformed("amount.total".into()))?;
        let occurred_at = success_time(&r)?.or(create_time);
        Ok(VerifiedNotification {
            kind,
            out_trade_no: req_str(&r, "out_trade_no")?,
            provider_txn_id: req_str(&r, "transaction_id")?,
            amount_minor: total,
            refunded_minor,
            refund_id,
            currency: currency_of(amount),
            occurred_at,
            event: env.event_type.clone(),
            raw: json!({
                "notification_id": env.id,
                "event_type": env.event_type,
                "create_time": env.create_time,
                "summary": env.summary,
                "original_type": res.original_type,
                "resource": r,
            }),
        })
    }
}

/// Answer for a callback we accepted: HTTP 204, no body.
pub const NOTIFY_SUCCESS_STATUS: u16 = 204;

/// Answer for a callback we could not accept (WeChat retries): a 4xx/5xx
/// status (anything else becomes 500) and `{"code":"FAIL","message":..}`.
pub fn notify_failure_response(status: u16, message: &str) -> (u16, String) {
    let status = if (400..=599).contains(&status) {
        status
    } else {
        500
    };
    (
        status,
        json!({ "code": "FAIL", "message": message }).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;

    #[test]
    fn paid_notification_end_to_end_both_key_kinds() {
        let f = fixture();
        let body = envelope("TRANSACTION.SUCCESS", &transaction(MCH, APP), V3KEY);
        let ts = (NOW - 10).to_string();
        // PUB_KEY_ID public key
        let sig = signed(&f, &body, NOW - 10);
        let n = f
            .cfg
            .verify_notification(&headers(&sig, &ts, PUBKEY_ID), &body, NOW)
            .unwrap();
        assert_eq!(n.kind, NotificationKind::Paid);
        assert_eq!(n.out_trade_no, "order_123456");
        assert_eq!(n.provider_txn_id, "4200000000202401010000000001");
        assert_eq!(n.amount_minor, 1200);
        assert_eq!(n.currency, "CNY");
        assert_eq!(n.occurred_at, Some(1704081600));
        assert_eq!(n.event, "TRANSACTION.SUCCESS");
        assert_eq!(n.refunded_minor, None);
        assert_eq!(n.refund_id, None);
        assert_eq!(n.raw["event_type"], "TRANSACTION.SUCCESS");
        assert_eq!(n.raw["resource"]["mchid"], MCH);
        // platform certificate (serial in lower case in the header also works)
        let sig = sign(&f.cert_signer, NOW - 10, NONCE, &body);
        let lower = CERT_SERIAL.to_lowercase();
        assert!(f
            .cfg
            .verify_notification(&headers(&sig, &ts, &lower), &body, NOW)
            .is_ok());
        // ...but the cert key does not verify under the PUB_KEY_ID serial
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig, &ts, PUBKEY_ID), &body, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn refund_notifications() {
        let f = fixture();
        let ts = NOW.to_string();
        for (event, status, kind) in [
            ("REFUND.SUCCESS", "SUCCESS", NotificationKind::Refunded),
            ("REFUND.ABNORMAL", "ABNORMAL", NotificationKind::Pending),
            ("REFUND.CLOSED", "CLOSED", NotificationKind::Closed),
        ] {
            let mut r = refund(MCH, status);
            if status == "SUCCESS" {
                r["success_time"] = json!("2024-01-02T12:00:00+08:00");
            }
            let body = envelope(event, &r, V3KEY);
            let sig = signed(&f, &body, NOW);
            let n = f
                .cfg
                .verify_notification(&headers(&sig, &ts, PUBKEY_ID), &body, NOW)
                .unwrap();
            assert_eq!(n.kind, kind, "{event}");
            assert_eq!(n.amount_minor, 1200);
            assert_eq!(n.refunded_minor, Some(500));
            assert_eq!(
                n.refund_id.as_deref(),
                Some("50000000382019052709732678859")
            );
            assert_eq!(n.event, event);
            if status == "SUCCESS" {
                assert_eq!(n.occurred_at, Some(1704168000));
            } else {
                assert_eq!(n.occurred_at, parse_rfc3339("2024-01-01T12:00:05+08:00"));
            }
            // wrong merchant on refunds too
            r["mchid"] = json!("1");
            let body = envelope(event, &r, V3KEY);
            let sig = signed(&f, &body, NOW);
            assert_eq!(
                f.cfg
                    .verify_notification(&headers(&sig, &ts, PUBKEY_ID), &body, NOW),
                Err(VerifyError::WrongMerchant)
            );
        }
        // a refund without its amount is refused
        let mut r = refund(MCH, "SUCCESS");
        r["amount"].as_object_mut().unwrap().remove("refund");
        let body = envelope("REFUND.SUCCESS", &r, V3KEY);
        let sig = signed(&f, &body, NOW);
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig, &ts, PUBKEY_ID), &body, NOW),
            Err(VerifyError::Malformed("amount.refund".into()))
        );
    }

    #[test]
    fn rejections() {
        let f = fixture();
        let body = envelope("TRANSACTION.SUCCESS", &transaction(MCH, APP), V3KEY);
        let ts = NOW.to_string();
        let verify = |b: &[u8]| {
            let s = signed(&f, b, NOW);
            f.cfg
                .verify_notification(&headers(&s, &ts, PUBKEY_ID), b, NOW)
        };
        assert!(verify(&body).is_ok());

        // the signature is checked before anything is read
        let sig = signed(&f, &body, NOW);
        let mut t = body.clone();
        t.push(b'\n');
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig, &ts, PUBKEY_ID), &t, NOW),
            Err(VerifyError::BadSignature)
        );
        let old = (NOW - 301).to_string();
        let sig_old = signed(&f, &body, NOW - 301);
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig_old, &old, PUBKEY_ID), &body, NOW),
            Err(VerifyError::StaleTimestamp)
        );

        // wrong mchid / appid inside the (signed, encrypted) resource
        for (tx, want) in [
            (transaction("1900000000", APP), VerifyError::WrongMerchant),
            (
                transaction(MCH, "wx0000000000000000"),
                VerifyError::WrongApp,
            ),
        ] {
            let b = envelope("TRANSACTION.SUCCESS", &tx, V3KEY);
            assert_eq!(verify(&b), Err(want));
        }
        // a TRANSACTION.SUCCESS whose trade is not SUCCESS
        let mut tx = transaction(MCH, APP);
        tx["trade_state"] = json!("NOTPAY");
        let b = envelope("TRANSACTION.SUCCESS", &tx, V3KEY);
        assert!(matches!(verify(&b), Err(VerifyError::Unsupported(_))));

        // encrypted with another key => tag failure (re-signed so only AEAD catches it)
        let b = envelope(
            "TRANSACTION.SUCCESS",
            &transaction(MCH, APP),
            "ffffffffffffffffffffffffffffffff",
        );
        assert!(matches!(verify(&b), Err(VerifyError::Malformed(m)) if m.contains("decryption")));
        // aad / nonce / algorithm of the envelope are what the resource is opened with
        let mut env: Value = serde_json::from_slice(&body).unwrap();
        for (field, val) in [
            ("associated_data", json!("refund")),
            ("nonce", json!("fdasflkja485")),
            ("algorithm", json!("AES_128")),
        ] {
            let mut e = env.clone();
            e["resource"][field] = val;
            assert!(verify(&e.to_string().into_bytes()).is_err(), "{field}");
        }
        // malformed outer JSON, signed
        for b in [
            &b"not json"[..],
            b"{}",
            br#"{"event_type":"TRANSACTION.SUCCESS"}"#,
            b"\xff\xfe",
        ] {
            assert!(matches!(verify(b), Err(VerifyError::Malformed(_))));
        }
        // malformed inner JSON (valid AEAD), and JSON that is not an object
        for inner in [&b"[1,2"[..], b"[1,2]"] {
            env["resource"]["ciphertext"] =
                json!(encrypt(inner, "fdasflkja484", "transaction", V3KEY));
            let b = env.to_string().into_bytes();
            assert!(matches!(verify(&b), Err(VerifyError::Malformed(_))));
        }
        // unknown event type
        let b = envelope("TRANSACTION.FAIL", &transaction(MCH, APP), V3KEY);
        assert!(matches!(verify(&b), Err(VerifyError::Unsupported(_))));
        // missing amount
        let mut tx = transaction(MCH, APP);
        tx.as_object_mut().unwrap().remove("amount");
        let b = envelope("TRANSACTION.SUCCESS", &tx, V3KEY);
        assert!(matches!(verify(&b), Err(VerifyError::Malformed(_))));
        // an unreadable success_time is refused, not replaced by create_time
        let mut tx = transaction(MCH, APP);
        tx["success_time"] = json!("2024-01-01 12:00:00");
        let b = envelope("TRANSACTION.SUCCESS", &tx, V3KEY);
        assert_eq!(
            verify(&b),
            Err(VerifyError::Malformed("success_time".into()))
        );
    }

    #[test]
    fn answers() {
        assert_eq!(NOTIFY_SUCCESS_STATUS, 204);
        let (s, b) = notify_failure_response(500, "busy \"x\"");
        assert_eq!(s, 500);
        assert_eq!(
            serde_json::from_str::<Value>(&b).unwrap(),
            json!({"code": "FAIL", "message": "busy \"x\""})
        );
        assert_eq!(notify_failure_response(200, "x").0, 500);
        assert_eq!(notify_failure_response(429, "x").0, 429);
    }
}
