//! Alipay's asynchronous notifications (`notify_url`): verification and the fields Tollgate
//! reads from them.
//!
//! - The body is a form in the notification's charset (`form`); the signature is RSA2 over
//!   the check content `sign` builds from it.
//! - The answer: the body must be exactly `success`; anything else is retried 8 times over
//!   about 25 hours: <https://blog.csdn.net/terry_water/article/details/75254860> (a copy of
//!   docs.open.alipay.com/270/105902).

use serde_json::{Map, Value};

use super::form::Form;
use super::sign::notify_content;
use super::{yuan_to_fen, AlipayConfig};
use crate::providers::china_time::parse_cst_datetime;
use crate::providers::notification::{NotificationKind, VerifiedNotification};
use crate::providers::wire_error::VerifyError;

/// Body to answer a notification we accepted (HTTP 200, `text/plain`).
pub const NOTIFY_SUCCESS_BODY: &str = "success";
/// Body to answer a notification we could not process (Alipay retries).
pub const NOTIFY_FAILURE_BODY: &str = "failure";

impl AlipayConfig {
    /// Verifies an asynchronous notification (`application/x-www-form-urlencoded` POST
    /// body); `content_type_charset` is the `charset` of its `Content-Type`, used when the
    /// form names none.
    ///
    /// The signature is checked over the decoded bytes exactly as sent, i.e. the check
    /// string in the notification's own charset, as the Java SDK does
    /// (`content.getBytes(charset)`); then `app_id` and, when configured, `seller_id`.
    pub fn verify_notify(
        &self,
        raw_form_body: &[u8],
        content_type_charset: Option<&str>,
    ) -> Result<VerifiedNotification, VerifyError> {
        let form = Form::decode(raw_form_body, content_type_charset)?;
        let get = |name: &str| form.get(name);

        match get("sign_type") {
            Some("RSA2") => {}
            Some(other) => return Err(VerifyError::Unsupported(format!("sign_type {other}"))),
            None => return Err(VerifyError::Unsupported("sign_type missing".into())),
        }
        // A '+' that reached us unencoded was turned into ' ' by form decoding; base64
        // never contains spaces, so restoring them is safe.
        let sign = get("sign")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| VerifyError::Malformed("missing sign".into()))?
            .replace(' ', "+");
        if !self
            .alipay_public_key
            .verify_sha256_b64(&notify_content(&form), &sign)
        {
            return Err(VerifyError::BadSignature);
        }

        if get("app_id") != Some(self.app_id.as_str()) {
            return Err(VerifyError::WrongApp);
        }
        if let Some(seller) = &self.seller_id {
            if get("seller_id") != Some(seller.as_str()) {
                return Err(VerifyError::WrongMerchant);
            }
        }
        let status = get("trade_status")
            .ok_or_else(|| VerifyError::Malformed("missing trade_status".into()))?;
        let kind = match status {
            "TRADE_SUCCESS" | "TRADE_FINISHED" => NotificationKind::Paid,
            "TRADE_CLOSED" => NotificationKind::Closed,
            "WAIT_BUYER_PAY" => NotificationKind::Pending,
            other => return Err(VerifyError::Unsupported(format!("trade_status {other}"))),
        };
        let out_trade_no = non_empty(get("out_trade_no"), "out_trade_no")?;
        let trade_no = non_empty(get("trade_no"), "trade_no")?;
        let total = get("total_amount")
            .ok_or_else(|| VerifyError::Malformed("missing total_amount".into()))?;
        let amount_minor =
            yuan_to_fen(total).ok_or_else(|| VerifyError::Malformed("total_amount".into()))?;
        let refunded_minor = match get("refund_fee") {
            Some(r) => {
                Some(yuan_to_fen(r).ok_or_else(|| VerifyError::Malformed("refund_fee".into()))?)
            }
            None => None,
        };
        let time_field = match kind {
            NotificationKind::Paid => "gmt_payment",
            NotificationKind::Closed => "gmt_close",
            _ => "gmt_create",
        };
        let occurred_at = get(time_field)
            .or(get("notify_time"))
            .and_then(parse_cst_datetime);

        let mut raw = Map::new();
        for f in &form.fields {
            if f.name != "sign" {
                raw.insert(f.name.clone(), Value::String(f.value.clone()));
            }
        }
        Ok(VerifiedNotification {
            kind,
            out_trade_no,
            provider_txn_id: trade_no,
            amount_minor,
            refunded_minor,
            // A refund's notification names its refund request (`out_request_no` of the
            // refund call) as `out_biz_no`.
            refund_id: get("out_biz_no")
                .or(get("out_request_no"))
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            currency: "CNY".into(),
            occurred_at,
            event: status.to_owned(),
            raw: Value::Object(raw),
        })
    }
}

fn non_empty(v: Option<&str>, name: &str) -> Result<String, VerifyError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(VerifyError::Malformed(format!("missing {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::alipay::wire::testing::{base_params, fx, notify_body, with, Fx};
    use crate::providers::rsa::{testkeys, RsaPrivateKey};

    #[test]
    fn notify_paid_with_plus_and_percent_2b() {
        let f = fx();
        let body = notify_body(&f, &base_params(), encoding_rs::UTF_8);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains("subject=C%2B%2B+live%3A+a%2Bb+c"), "{text}");
        let n = f.cfg.verify_notify(&body, None).unwrap();
        assert_eq!(n.kind, NotificationKind::Paid);
        assert_eq!(n.out_trade_no, "TEST171");
        assert_eq!(n.provider_txn_id, "2020032522001456380542497258");
        assert_eq!(n.amount_minor, 1200);
        assert_eq!(n.currency, "CNY");
        assert_eq!(n.occurred_at, parse_cst_datetime("2020-03-25 10:59:38"));
        assert_eq!(n.raw["subject"], "C++ live: a+b c");
        assert!(n.raw.get("sign").is_none());

        // If someone decodes twice ('+' → ' '), the signature no longer matches:
        let twice = text.replace("%2B", "+");
        assert_eq!(
            f.cfg.verify_notify(twice.as_bytes(), None),
            Err(VerifyError::BadSignature)
        );
        // A sign whose '+' arrived unencoded is restored (base64 has no spaces).
        let sign_enc = text.split("sign=").nth(1).unwrap().to_string();
        if sign_enc.contains("%2B") {
            let raw_plus = text.replace(&sign_enc, &sign_enc.replace("%2B", "+"));
            assert!(f.cfg.verify_notify(raw_plus.as_bytes(), None).is_ok());
        }
    }

    #[test]
    fn notify_gbk() {
        let f = fx();
        let p = with(
            with(base_params(), "charset", "gbk"),
            "subject",
            "直播门票 + 回放",
        );
        let body = notify_body(&f, &p, encoding_rs::GBK);
        // GBK bytes on the wire: 直 = D6 B1
        assert!(String::from_utf8_lossy(&body).contains("%D6%B1"));
        let n = f.cfg.verify_notify(&body, Some("utf-8")).unwrap();
        assert_eq!(n.raw["subject"], "直播门票 + 回放");
        // Same body but declared/decoded as UTF-8 is rejected (invalid UTF-8).
        let p2 = with(p.clone(), "charset", "");
        let body2 = notify_body(&f, &p2, encoding_rs::GBK);
        assert!(matches!(
            f.cfg.verify_notify(&body2, None),
            Err(VerifyError::Malformed(_))
        ));
        // ...and accepted when the Content-Type says GBK.
        assert!(f.cfg.verify_notify(&body2, Some("GBK")).is_ok());
    }

    #[test]
    fn notify_status_mapping_and_refund_fields() {
        let f = fx();
        for (st, kind) in [
            ("TRADE_FINISHED", NotificationKind::Paid),
            ("TRADE_CLOSED", NotificationKind::Closed),
            ("WAIT_BUYER_PAY", NotificationKind::Pending),
        ] {
            let p = with(
                with(base_params(), "trade_status", st),
                "gmt_close",
                "2020-03-26 10:00:00",
            );
            let n = f
                .cfg
                .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None)
                .unwrap();
            assert_eq!(n.kind, kind, "{st}");
        }
        let p = with(
            with(
                with(base_params(), "trade_status", "TRADE_CLOSED"),
                "refund_fee",
                "12.00",
            ),
            "gmt_refund",
            "2020-03-26 10:00:00.123",
        );
        let n = f
            .cfg
            .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None)
            .unwrap();
        assert_eq!(n.kind, NotificationKind::Closed);
        assert_eq!(n.refunded_minor, Some(1200));
        assert_eq!(n.refund_id, None);
        let named = with(p, "out_biz_no", "HZ01RF001");
        let n = f
            .cfg
            .verify_notify(&notify_body(&f, &named, encoding_rs::UTF_8), None)
            .unwrap();
        assert_eq!(n.refund_id.as_deref(), Some("HZ01RF001"));
        assert_eq!(n.raw["refund_fee"], "12.00");
        assert_eq!(n.raw["gmt_refund"], "2020-03-26 10:00:00.123");
    }

    #[test]
    fn notify_rejections() {
        let f = fx();
        let good = notify_body(&f, &base_params(), encoding_rs::UTF_8);
        assert!(f.cfg.verify_notify(&good, None).is_ok());
        // one byte tampered in a value
        let t = String::from_utf8(good.clone())
            .unwrap()
            .replace("total_amount=12.00", "total_amount=13.00");
        assert_eq!(
            f.cfg.verify_notify(t.as_bytes(), None),
            Err(VerifyError::BadSignature)
        );
        // extra parameter
        let mut t = good.clone();
        t.extend_from_slice(b"&extra=1");
        assert_eq!(
            f.cfg.verify_notify(&t, None),
            Err(VerifyError::BadSignature)
        );
        // empty extra parameter is ignored (SDK skips empty values)
        let mut t = good.clone();
        t.extend_from_slice(b"&extra=");
        assert!(f.cfg.verify_notify(&t, None).is_ok());
        // signed by another key
        let (other, _) = testkeys::rsa_pem(1);
        let f2 = Fx {
            alipay_sk: RsaPrivateKey::from_pem_or_base64(&other).unwrap(),
            ..fx()
        };
        assert_eq!(
            f.cfg
                .verify_notify(&notify_body(&f2, &base_params(), encoding_rs::UTF_8), None),
            Err(VerifyError::BadSignature)
        );
        // wrong app / seller (validly signed)
        let p = with(base_params(), "app_id", "2021000000000000");
        assert_eq!(
            f.cfg
                .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None),
            Err(VerifyError::WrongApp)
        );
        let p = with(base_params(), "seller_id", "2088000000000000");
        assert_eq!(
            f.cfg
                .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None),
            Err(VerifyError::WrongMerchant)
        );
        // amounts
        for bad in ["12.001", "1e3", "-1", "12.", ""] {
            let p = with(base_params(), "total_amount", bad);
            assert!(
                matches!(
                    f.cfg
                        .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad}"
            );
        }
        // sign_type RSA (SHA1) / unknown status / unknown charset
        let p = with(base_params(), "sign_type", "RSA");
        assert!(matches!(
            f.cfg
                .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None),
            Err(VerifyError::Unsupported(_))
        ));
        let p = with(base_params(), "trade_status", "TRADE_PENDING");
        assert!(matches!(
            f.cfg
                .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None),
            Err(VerifyError::Unsupported(_))
        ));
        let p = with(base_params(), "charset", "big5");
        assert!(matches!(
            f.cfg
                .verify_notify(&notify_body(&f, &p, encoding_rs::UTF_8), None),
            Err(VerifyError::Unsupported(_))
        ));
        // missing sign, duplicates, bad escapes, empty, binary junk
        let no_sign = String::from_utf8(good.clone()).unwrap();
        let no_sign = no_sign.split("&sign=").next().unwrap();
        assert!(matches!(
            f.cfg.verify_notify(no_sign.as_bytes(), None),
            Err(VerifyError::Malformed(_))
        ));
        let mut dup = good.clone();
        dup.extend_from_slice(b"&out_trade_no=OTHER");
        assert!(matches!(
            f.cfg.verify_notify(&dup, None),
            Err(VerifyError::Malformed(_))
        ));
        for junk in [&b""[..], b"&&&", b"a=%zz", b"a=%4", b"=x", b"\xff\xfe=\x00"] {
            assert!(f.cfg.verify_notify(junk, None).is_err());
        }
        let sign_garbage = String::from_utf8(good).unwrap() + "x";
        assert_eq!(
            f.cfg.verify_notify(sign_garbage.as_bytes(), None),
            Err(VerifyError::BadSignature)
        );
    }
}
