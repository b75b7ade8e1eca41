//! The `/v3/refund/domestic/refunds` calls: asking for a refund of a paid order and asking
//! how one went, and the answers to both. Requests are built here and sent (and signed) by
//! the caller.
//!
//! Sources:
//! - Apply for a refund `POST /v3/refund/domestic/refunds` (`transaction_id` or
//!   `out_trade_no`, `out_refund_no` 1-64 of `[0-9A-Za-z_-|*@]`, `reason` ≤ 80 characters,
//!   `notify_url`, `amount {refund, total, currency}`); answer `refund_id`, `out_refund_no`,
//!   `status` SUCCESS / CLOSED / PROCESSING / ABNORMAL, `amount {total, refund, currency…}`:
//!   <https://pay.weixin.qq.com/docs/merchant/apis/refund/refunds/create.html>
//! - Query a refund `GET /v3/refund/domestic/refunds/{out_refund_no}`, same answer; an
//!   unknown refund is 404 `RESOURCE_NOT_EXISTS`:
//!   <https://pay.weixin.qq.com/docs/merchant/apis/refund/refunds/query-by-out-refund-no.html>

use serde_json::{json, Value};

use super::{opt_i64, parse_json, req_str, PreparedRequest, WechatConfig};
use crate::providers::wire_error::{BuildError, VerifyError};

/// What to refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundCall {
    pub out_trade_no: String,
    /// WeChat Pay's id of the payment, when known (preferred by WeChat Pay).
    pub transaction_id: Option<String>,
    pub out_refund_no: String,
    pub reason: String,
    pub notify_url: String,
    pub refund_fen: i64,
    pub total_fen: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Success,
    Processing,
    Closed,
    Abnormal,
}

/// A refund as WeChat Pay reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResult {
    pub refund_id: String,
    pub out_refund_no: String,
    pub transaction_id: Option<String>,
    pub status: RefundStatus,
    pub refund_fen: i64,
    pub total_fen: i64,
    pub currency: String,
}

/// `out_refund_no`: 1..=64 of `[0-9A-Za-z_\-|*@]`; it goes into a URL path for queries.
fn check_out_refund_no(s: &str) -> Result<(), BuildError> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
    {
        return Err(BuildError::InvalidInput(
            "out_refund_no must be 1..=64 of [0-9A-Za-z_-|*@]".into(),
        ));
    }
    Ok(())
}

impl WechatConfig {
    /// `POST /v3/refund/domestic/refunds`.
    pub fn refund_request(&self, r: &RefundCall) -> Result<PreparedRequest, BuildError> {
        check_out_refund_no(&r.out_refund_no)?;
        if r.out_trade_no.is_empty() || r.out_trade_no.len() > 32 {
            return Err(BuildError::InvalidInput("out_trade_no invalid".into()));
        }
        if r.refund_fen <= 0 || r.refund_fen > r.total_fen {
            return Err(BuildError::InvalidInput(
                "refund must be 1..=total fen".into(),
            ));
        }
        let mut body = json!({
            "out_trade_no": r.out_trade_no,
            "out_refund_no": r.out_refund_no,
            "notify_url": r.notify_url,
            "amount": {"refund": r.refund_fen, "total": r.total_fen, "currency": "CNY"},
        });
        let reason: String = r.reason.chars().take(80).collect();
        if !reason.is_empty() {
            body["reason"] = json!(reason);
        }
        if let Some(t) = &r.transaction_id {
            body["transaction_id"] = json!(t);
        }
        Ok(PreparedRequest {
            method: "POST",
            path: "/v3/refund/domestic/refunds".into(),
            body: body.to_string(),
        })
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
    pub fn refund_query_request(&self, out_refund_no: &str) -> Result<PreparedRequest, BuildError> {
        check_out_refund_no(out_refund_no)?;
        Ok(PreparedRequest {
            method: "GET",
            path: format!("/v3/refund/domestic/refunds/{out_refund_no}"),
            body: String::new(),
        })
    }

    /// Parse a (signature-verified) 200 answer to either refund call.
    pub fn parse_refund_response(&self, body: &[u8]) -> Result<RefundResult, VerifyError> {
        let v: Value = parse_json(body)?;
        let status = match req_str(&v, "status")?.as_str() {
            "SUCCESS" => RefundStatus::Success,
            "PROCESSING" => RefundStatus::Processing,
            "CLOSED" => RefundStatus::Closed,
            "ABNORMAL" => RefundStatus::Abnormal,
            other => return Err(VerifyError::Unsupported(format!("refund status {other}"))),
        };
        let amount = v.get("amount");
        let need = |k: &str| {
            opt_i64(amount, k)?.ok_or_else(|| VerifyError::Malformed(format!("missing amount.{k}")))
        };
        Ok(RefundResult {
            refund_id: req_str(&v, "refund_id")?,
            out_refund_no: req_str(&v, "out_refund_no")?,
            transaction_id: v
                .get("transaction_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status,
            refund_fen: need("refund")?,
            total_fen: need("total")?,
            currency: amount
                .and_then(|a| a.get("currency"))
                .and_then(Value::as_str)
                .unwrap_or("CNY")
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;

    fn call() -> RefundCall {
        RefundCall {
            out_trade_no: "1217752501201407033233368018".into(),
            transaction_id: Some("4200000000202401010000000001".into()),
            out_refund_no: "R0123456789abcdef".into(),
            reason: "stream broke".into(),
            notify_url: "https://example.com/callbacks/wechat".into(),
            refund_fen: 500,
            total_fen: 1200,
        }
    }

    #[test]
    fn refund_requests_carry_the_documented_fields() {
        let f = fixture();
        let p = f.cfg.refund_request(&call()).unwrap();
        assert_eq!(
            (p.method, p.path.as_str()),
            ("POST", "/v3/refund/domestic/refunds")
        );
        let body: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(
            body,
            json!({
                "out_trade_no": "1217752501201407033233368018",
                "transaction_id": "4200000000202401010000000001",
                "out_refund_no": "R0123456789abcdef",
                "reason": "stream broke",
                "notify_url": "https://example.com/callbacks/wechat",
                "amount": {"refund": 500, "total": 1200, "currency": "CNY"}
            })
        );
        let q = f.cfg.refund_query_request("R0123456789abcdef").unwrap();
        assert_eq!(
            (q.method, q.path.as_str(), q.body.as_str()),
            ("GET", "/v3/refund/domestic/refunds/R0123456789abcdef", "")
        );
        assert!(f.cfg.refund_query_request("../x").is_err());
        assert!(f.cfg.refund_query_request("").is_err());
        for bad in [
            RefundCall {
                refund_fen: 0,
                ..call()
            },
            RefundCall {
                refund_fen: 1201,
                ..call()
            },
            RefundCall {
                out_refund_no: "a/b".into(),
                ..call()
            },
        ] {
            assert!(f.cfg.refund_request(&bad).is_err(), "{bad:?}");
        }
        let long = RefundCall {
            reason: "很".repeat(100),
            ..call()
        };
        let body: Value = serde_json::from_str(&f.cfg.refund_request(&long).unwrap().body).unwrap();
        assert_eq!(body["reason"].as_str().unwrap().chars().count(), 80);
    }

    #[test]
    fn refund_answers_are_read_and_odd_ones_refused() {
        let f = fixture();
        let answer = |status: &str| {
            json!({
                "refund_id": "50000000382019052709732678859",
                "out_refund_no": "R0123456789abcdef",
                "transaction_id": "4200000000202401010000000001",
                "out_trade_no": "1217752501201407033233368018",
                "channel": "ORIGINAL", "user_received_account": "招商银行信用卡0403",
                "create_time": "2027-01-15T16:00:00+08:00", "status": status,
                "amount": {"total": 1200, "refund": 500, "payer_total": 1200,
                           "payer_refund": 500, "currency": "CNY"}
            })
        };
        for (s, want) in [
            ("SUCCESS", RefundStatus::Success),
            ("PROCESSING", RefundStatus::Processing),
            ("CLOSED", RefundStatus::Closed),
            ("ABNORMAL", RefundStatus::Abnormal),
        ] {
            let r = f
                .cfg
                .parse_refund_response(answer(s).to_string().as_bytes())
                .unwrap();
            assert_eq!(r.status, want);
            assert_eq!((r.refund_fen, r.total_fen), (500, 1200));
            assert_eq!(r.refund_id, "50000000382019052709732678859");
        }
        assert!(f
            .cfg
            .parse_refund_response(answer("ODD").to_string().as_bytes())
            .is_err());
        let mut no_amount = answer("SUCCESS");
        no_amount["amount"] = json!({"total": 1200});
        assert!(f
            .cfg
            .parse_refund_response(no_amount.to_string().as_bytes())
            .is_err());
        assert!(f.cfg.parse_refund_response(b"<html>").is_err());
    }
}
