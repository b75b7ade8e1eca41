//! Refunds: `alipay.trade.refund` (give money back, synchronously) and
//! `alipay.trade.fastpay.refund.query` (how a refund request went), signed requests and the
//! verified answers.
//!
//! Sources checked:
//! - `alipay.trade.refund`: biz_content `out_trade_no`, `refund_amount` (yuan, two
//!   decimals), `out_request_no` (the refund's id, required for partial refunds; Alipay
//!   dedupes on it), `refund_reason`; answer `code` 10000 with `fund_change` (Y: money moved
//!   by this call) and `refund_fee` (all refunded on the trade so far), or an error `code`
//!   with `sub_code` (`ACQ.SYSTEM_ERROR` is worth retrying):
//!   <https://opendocs.alipay.com/open/02e7go>
//! - `alipay.trade.fastpay.refund.query`: biz_content `out_trade_no`, `out_request_no`;
//!   answer `refund_status` REFUND_SUCCESS when refunded (absent: the request was not
//!   received, or failed), `refund_amount`, `out_request_no`:
//!   <https://opendocs.alipay.com/open/02e7gm>

use serde_json::json;

use super::sign::verified_response_node;
use super::trade::{check_out_trade_no, encode_query, str_field, GatewayRequest};
use super::{yuan_to_fen, AlipayConfig};
use crate::domain::{Currency, Money};
use crate::providers::wire_error::{BuildError, VerifyError};

/// What `alipay.trade.refund` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Refunded (now, or by an earlier call with the same `out_request_no`).
    Refunded {
        /// `fund_change`: whether this very call moved the money.
        fund_change: bool,
        /// `refund_fee`: everything refunded on the trade so far, in fen.
        refund_fee_fen: Option<i64>,
    },
    Error {
        code: String,
        sub_code: Option<String>,
    },
}

/// What `alipay.trade.fastpay.refund.query` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundQueryOutcome {
    /// `refund_status` REFUND_SUCCESS: this request's `refund_amount` went back.
    Refunded { refund_amount_fen: i64 },
    /// No `refund_status`: Alipay did not receive the request, or it failed.
    NotRefunded,
    Error {
        code: String,
        sub_code: Option<String>,
    },
}

/// `out_request_no`: 1..=64 of `[0-9A-Za-z_-]`.
fn check_out_request_no(s: &str) -> Result<(), BuildError> {
    check_out_trade_no(s).map_err(|_| {
        BuildError::InvalidInput("out_request_no must be 1..=64 of [0-9A-Za-z_-]".into())
    })
}

impl AlipayConfig {
    /// `alipay.trade.refund` of `refund_fen` of the trade `out_trade_no`, as refund
    /// `out_request_no`.
    pub fn refund_request(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
        refund_fen: i64,
        reason: &str,
        now: i64,
    ) -> Result<GatewayRequest, BuildError> {
        check_out_trade_no(out_trade_no)?;
        check_out_request_no(out_request_no)?;
        let amount = Money::new(refund_fen, Currency::CNY)
            .ok()
            .filter(|_| refund_fen > 0)
            .ok_or_else(|| BuildError::InvalidInput("refund_amount".into()))?;
        let mut biz = json!({
            "out_trade_no": out_trade_no,
            "out_request_no": out_request_no,
            "refund_amount": amount.to_decimal_string(),
        });
        let reason: String = reason.chars().take(256).collect();
        if !reason.is_empty() {
            biz["refund_reason"] = json!(reason);
        }
        let params = self.signed_params("alipay.trade.refund", biz, None, None, now)?;
        Ok(GatewayRequest {
            url: self.gateway.clone(),
            form_body: encode_query(&params),
        })
    }

    /// `alipay.trade.fastpay.refund.query` of refund `out_request_no` of `out_trade_no`.
    pub fn refund_query_request(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
        now: i64,
    ) -> Result<GatewayRequest, BuildError> {
        check_out_trade_no(out_trade_no)?;
        check_out_request_no(out_request_no)?;
        let biz = json!({ "out_trade_no": out_trade_no, "out_request_no": out_request_no });
        let params =
            self.signed_params("alipay.trade.fastpay.refund.query", biz, None, None, now)?;
        Ok(GatewayRequest {
            url: self.gateway.clone(),
            form_body: encode_query(&params),
        })
    }

    /// Verify and parse an `alipay.trade.refund` answer.
    pub fn parse_refund_response(&self, body: &[u8]) -> Result<RefundOutcome, VerifyError> {
        let node = verified_response_node(
            &self.alipay_public_key,
            body,
            "alipay_trade_refund_response",
        )?;
        let code = str_field(&node, "code").unwrap_or_default();
        if code != "10000" {
            return Ok(RefundOutcome::Error {
                code,
                sub_code: str_field(&node, "sub_code"),
            });
        }
        let refund_fee_fen = match str_field(&node, "refund_fee") {
            None => None,
            Some(fee) => {
                Some(yuan_to_fen(&fee).ok_or_else(|| VerifyError::Malformed("refund_fee".into()))?)
            }
        };
        Ok(RefundOutcome::Refunded {
            fund_change: str_field(&node, "fund_change").as_deref() == Some("Y"),
            refund_fee_fen,
        })
    }

    /// Verify and parse an `alipay.trade.fastpay.refund.query` answer.
    pub fn parse_refund_query_response(
        &self,
        body: &[u8],
    ) -> Result<RefundQueryOutcome, VerifyError> {
        let node = verified_response_node(
            &self.alipay_public_key,
            body,
            "alipay_trade_fastpay_refund_query_response",
        )?;
        let code = str_field(&node, "code").unwrap_or_default();
        if code != "10000" {
            return Ok(RefundQueryOutcome::Error {
                code,
                sub_code: str_field(&node, "sub_code"),
            });
        }
        if str_field(&node, "refund_status").as_deref() != Some("REFUND_SUCCESS") {
            return Ok(RefundQueryOutcome::NotRefunded);
        }
        let amount = str_field(&node, "refund_amount")
            .ok_or_else(|| VerifyError::Malformed("missing refund_amount".into()))?;
        Ok(RefundQueryOutcome::Refunded {
            refund_amount_fen: yuan_to_fen(&amount)
                .ok_or_else(|| VerifyError::Malformed("refund_amount".into()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::alipay::wire::testing::fx;
    use serde_json::Value;

    fn signed(f: &super::super::testing::Fx, node: &str, v: &Value) -> Vec<u8> {
        let raw = v.to_string();
        let sign = f.alipay_sk.sign_sha256_b64(raw.as_bytes()).unwrap();
        format!("{{\"{node}\":{raw},\"sign\":{}}}", Value::String(sign)).into_bytes()
    }

    #[test]
    fn refund_requests_are_signed_with_the_documented_fields() {
        let f = fx();
        let r = f
            .cfg
            .refund_request("ORDER1", "R01", 250, "stream broke", 1_800_000_000)
            .unwrap();
        let p: Vec<(String, String)> = form_urlencoded::parse(r.form_body.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("method").as_deref(), Some("alipay.trade.refund"));
        assert!(get("sign").is_some());
        let biz: Value = serde_json::from_str(&get("biz_content").unwrap()).unwrap();
        assert_eq!(
            biz,
            json!({"out_trade_no": "ORDER1", "out_request_no": "R01",
                   "refund_amount": "2.50", "refund_reason": "stream broke"})
        );
        assert!(f.cfg.refund_request("ORDER1", "R01", 0, "", 0).is_err());
        assert!(f.cfg.refund_request("ORDER1", "R/1", 1, "", 0).is_err());
        let q = f
            .cfg
            .refund_query_request("ORDER1", "R01", 1_800_000_000)
            .unwrap();
        assert!(q
            .form_body
            .contains("method=alipay.trade.fastpay.refund.query"));
    }

    #[test]
    fn refund_answers_are_verified_and_read() {
        let f = fx();
        let ok = json!({"code": "10000", "msg": "Success", "fund_change": "Y",
                        "refund_fee": "2.50", "out_trade_no": "ORDER1"});
        let body = signed(&f, "alipay_trade_refund_response", &ok);
        assert_eq!(
            f.cfg.parse_refund_response(&body),
            Ok(RefundOutcome::Refunded {
                fund_change: true,
                refund_fee_fen: Some(250)
            })
        );
        let err = json!({"code": "40004", "msg": "Business Failed",
                         "sub_code": "ACQ.TRADE_HAS_FINISHED"});
        assert_eq!(
            f.cfg
                .parse_refund_response(&signed(&f, "alipay_trade_refund_response", &err)),
            Ok(RefundOutcome::Error {
                code: "40004".into(),
                sub_code: Some("ACQ.TRADE_HAS_FINISHED".into())
            })
        );
        let mut forged = body.clone();
        let at = forged.iter().position(|&b| b == b'Y').unwrap();
        forged[at] = b'N';
        assert!(f.cfg.parse_refund_response(&forged).is_err());

        let node = "alipay_trade_fastpay_refund_query_response";
        let done = json!({"code": "10000", "msg": "Success", "refund_status": "REFUND_SUCCESS",
                          "refund_amount": "2.50", "out_request_no": "R01"});
        assert_eq!(
            f.cfg.parse_refund_query_response(&signed(&f, node, &done)),
            Ok(RefundQueryOutcome::Refunded {
                refund_amount_fen: 250
            })
        );
        let none = json!({"code": "10000", "msg": "Success"});
        assert_eq!(
            f.cfg.parse_refund_query_response(&signed(&f, node, &none)),
            Ok(RefundQueryOutcome::NotRefunded)
        );
    }
}
