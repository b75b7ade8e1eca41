//! The `/v3/pay/transactions` calls: prepay (JSAPI, APP, Native) and the signed parameters a
//! client pays the prepay with, query and close by `out_trade_no`, and the error body of a
//! refused call. Requests are built here and sent (and signed) by the caller.
//!
//! Sources:
//! - JSAPI paySign over `appId\ntimeStamp\nnonceStr\npackage\n`, signType "RSA" not signed:
//!   <https://pay.weixin.qq.com/wiki/doc/api_external/ch/apis/chapter4_1_25.shtml>
//! - APP sign over `appid\ntimestamp\nnoncestr\nprepayid\n`, package fixed `Sign=WXPay`:
//!   <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter5_1_6.shtml>,
//!   <https://pay.weixin.qq.com/doc/v3/merchant/4012265144>
//! - Query by out_trade_no `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=`,
//!   trade_state SUCCESS/REFUND/NOTPAY/CLOSED/REVOKED/USERPAYING/PAYERROR:
//!   <https://pay.weixin.qq.com/docs/merchant/apis/query-order/direct-jsons/query-by-out-trade-no.html>

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::sign::check_nonce;
use super::{opt_i64, parse_json, req_str, success_time, WechatConfig};
use crate::providers::china_time::format_rfc3339_cst;
use crate::providers::wire_error::{BuildError, VerifyError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeType {
    Jsapi { openid: String },
    App,
    Native,
}

impl TradeType {
    /// WeChat Pay's own name for it (`trade_type` in its answers).
    pub fn as_str(&self) -> &'static str {
        match self {
            TradeType::Jsapi { .. } => "JSAPI",
            TradeType::App => "APP",
            TradeType::Native => "NATIVE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PrepayRequest {
    pub trade_type: TradeType,
    pub out_trade_no: String,
    pub description: String,
    pub amount_fen: i64,
    /// Unix seconds; rendered as RFC 3339 in +08:00.
    pub time_expire: Option<i64>,
    pub notify_url: String,
}

/// A request ready to be sent to [`API_BASE`](super::API_BASE); sign it with
/// [`WechatConfig::authorization_header`] using the same `path` and `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    pub method: &'static str,
    pub path: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepayResponse {
    PrepayId(String),
    CodeUrl(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsapiPayParams {
    #[serde(rename = "appId")]
    pub app_id: String,
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    pub package: String,
    #[serde(rename = "signType")]
    pub sign_type: String,
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppPayParams {
    pub appid: String,
    pub partnerid: String,
    pub prepayid: String,
    pub package: String,
    pub noncestr: String,
    pub timestamp: String,
    pub sign: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    Success,
    Refund,
    NotPay,
    Closed,
    Revoked,
    UserPaying,
    PayError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub state: TradeState,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub amount_total: Option<i64>,
    pub payer_total: Option<i64>,
    pub currency: Option<String>,
    pub success_time: Option<i64>,
    pub trade_state_desc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Error body of a non-2xx API answer (`{"code":"ORDER_NOT_EXIST","message":..}`).
pub fn parse_api_error(body: &[u8]) -> Option<ApiError> {
    serde_json::from_slice(body).ok()
}

fn check_token(name: &str, v: &str) -> Result<(), BuildError> {
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        return Err(BuildError::InvalidInput(format!("{name} invalid")));
    }
    Ok(())
}

/// out_trade_no: 6..=32 of `[0-9A-Za-z_\-*]` (WeChat's documented charset). It goes into
/// URL paths, so nothing else may pass.
fn check_out_trade_no(s: &str) -> Result<(), BuildError> {
    if s.len() < 6
        || s.len() > 32
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'))
    {
        return Err(BuildError::InvalidInput(
            "out_trade_no must be 6..=32 of [0-9A-Za-z_-*]".into(),
        ));
    }
    Ok(())
}

impl WechatConfig {
    /// Build `POST /v3/pay/transactions/{jsapi|app|native}`.
    pub fn prepay_request(&self, req: &PrepayRequest) -> Result<PreparedRequest, BuildError> {
        check_out_trade_no(&req.out_trade_no)?;
        if req.description.is_empty() || req.description.chars().count() > 127 {
            return Err(BuildError::InvalidInput(
                "description must be 1..=127 chars".into(),
            ));
        }
        if req.amount_fen <= 0 || req.amount_fen > i32::MAX as i64 {
            return Err(BuildError::InvalidInput(
                "amount must be 1..=2147483647 fen".into(),
            ));
        }
        if !req.notify_url.starts_with("https://") {
            return Err(BuildError::InvalidInput("notify_url must be https".into()));
        }
        let mut body = json!({
            "appid": self.app_id,
            "mchid": self.mch_id,
            "description": req.description,
            "out_trade_no": req.out_trade_no,
            "notify_url": req.notify_url,
            "amount": { "total": req.amount_fen, "currency": "CNY" },
        });
        if let Some(t) = req.time_expire {
            body["time_expire"] = Value::String(
                format_rfc3339_cst(t)
                    .ok_or_else(|| BuildError::InvalidInput("time_expire".into()))?,
            );
        }
        let path = match &req.trade_type {
            TradeType::Jsapi { openid } => {
                if openid.is_empty() {
                    return Err(BuildError::InvalidInput("openid required for JSAPI".into()));
                }
                body["payer"] = json!({ "openid": openid });
                "/v3/pay/transactions/jsapi"
            }
            TradeType::App => "/v3/pay/transactions/app",
            TradeType::Native => "/v3/pay/transactions/native",
        };
        Ok(PreparedRequest {
            method: "POST",
            path: path.to_string(),
            body: body.to_string(),
        })
    }

    /// Parse a (signature-verified) 200 response of a prepay call.
    pub fn parse_prepay_response(
        trade_type: &TradeType,
        body: &[u8],
    ) -> Result<PrepayResponse, VerifyError> {
        let v: Value = parse_json(body)?;
        match trade_type {
            TradeType::Jsapi { .. } | TradeType::App => {
                Ok(PrepayResponse::PrepayId(req_str(&v, "prepay_id")?))
            }
            TradeType::Native => Ok(PrepayResponse::CodeUrl(req_str(&v, "code_url")?)),
        }
    }

    /// Parameters for `wx.requestPayment` / `WeixinJSBridge getBrandWCPayRequest`.
    pub fn jsapi_pay_params(
        &self,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<JsapiPayParams, BuildError> {
        check_nonce(nonce)?;
        check_token("prepay_id", prepay_id)?;
        let package = format!("prepay_id={prepay_id}");
        let ts = timestamp.to_string();
        let msg = format!("{}\n{ts}\n{nonce}\n{package}\n", self.app_id);
        Ok(JsapiPayParams {
            app_id: self.app_id.clone(),
            time_stamp: ts,
            nonce_str: nonce.to_string(),
            package,
            sign_type: "RSA".into(),
            pay_sign: self.merchant_key.sign_sha256_b64(msg.as_bytes())?,
        })
    }

    /// Parameters for the APP SDK `PayReq`.
    pub fn app_pay_params(
        &self,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<AppPayParams, BuildError> {
        check_nonce(nonce)?;
        check_token("prepay_id", prepay_id)?;
        let ts = timestamp.to_string();
        let msg = format!("{}\n{ts}\n{nonce}\n{prepay_id}\n", self.app_id);
        Ok(AppPayParams {
            appid: self.app_id.clone(),
            partnerid: self.mch_id.clone(),
            prepayid: prepay_id.to_string(),
            package: "Sign=WXPay".into(),
            noncestr: nonce.to_string(),
            timestamp: ts,
            sign: self.merchant_key.sign_sha256_b64(msg.as_bytes())?,
        })
    }

    /// `GET /v3/pay/transactions/out-trade-no/{id}?mchid=..` (body empty).
    pub fn query_request(&self, out_trade_no: &str) -> Result<PreparedRequest, BuildError> {
        check_out_trade_no(out_trade_no)?;
        Ok(PreparedRequest {
            method: "GET",
            path: format!(
                "/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={}",
                self.mch_id
            ),
            body: String::new(),
        })
    }

    /// Parse a (signature-verified) 200 query response. mchid / appid must
    /// match the configuration.
    pub fn parse_query_response(&self, body: &[u8]) -> Result<QueryResult, VerifyError> {
        let v: Value = parse_json(body)?;
        if req_str(&v, "mchid")? != self.mch_id {
            return Err(VerifyError::WrongMerchant);
        }
        if let Some(appid) = v.get("appid").and_then(Value::as_str) {
            if appid != self.app_id {
                return Err(VerifyError::WrongApp);
            }
        }
        let state = match req_str(&v, "trade_state")?.as_str() {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            other => return Err(VerifyError::Unsupported(format!("trade_state {other}"))),
        };
        let amount = v.get("amount");
        let success_time = success_time(&v)?;
        Ok(QueryResult {
            state,
            out_trade_no: req_str(&v, "out_trade_no")?,
            transaction_id: v
                .get("transaction_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            amount_total: opt_i64(amount, "total")?,
            payer_total: opt_i64(amount, "payer_total")?,
            currency: amount
                .and_then(|a| a.get("currency"))
                .and_then(Value::as_str)
                .map(str::to_string),
            success_time,
            trade_state_desc: v
                .get("trade_state_desc")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// `POST /v3/pay/transactions/out-trade-no/{id}/close` with `{"mchid":..}`;
    /// success is HTTP 204 with empty body.
    pub fn close_request(&self, out_trade_no: &str) -> Result<PreparedRequest, BuildError> {
        check_out_trade_no(out_trade_no)?;
        Ok(PreparedRequest {
            method: "POST",
            path: format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close"),
            body: json!({ "mchid": self.mch_id }).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;

    #[test]
    fn prepay_bodies_and_responses() {
        let f = fixture();
        let mut req = PrepayRequest {
            trade_type: TradeType::Jsapi {
                openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
            },
            out_trade_no: "order_123456".into(),
            description: "Live stream ticket".into(),
            amount_fen: 1200,
            time_expire: Some(1432099775),
            notify_url: "https://example.com/wechat/notify".into(),
        };
        let p = f.cfg.prepay_request(&req).unwrap();
        assert_eq!(
            (p.method, p.path.as_str()),
            ("POST", "/v3/pay/transactions/jsapi")
        );
        let v: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(v["appid"], APP);
        assert_eq!(v["mchid"], MCH);
        assert_eq!(v["amount"], json!({"total": 1200, "currency": "CNY"}));
        assert_eq!(v["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
        assert_eq!(v["time_expire"], "2015-05-20T13:29:35+08:00");
        req.trade_type = TradeType::App;
        let p = f.cfg.prepay_request(&req).unwrap();
        assert_eq!(p.path, "/v3/pay/transactions/app");
        assert!(serde_json::from_str::<Value>(&p.body)
            .unwrap()
            .get("payer")
            .is_none());
        req.trade_type = TradeType::Native;
        assert_eq!(
            f.cfg.prepay_request(&req).unwrap().path,
            "/v3/pay/transactions/native"
        );
        for bad in [0, -5] {
            let r = PrepayRequest {
                amount_fen: bad,
                ..req.clone()
            };
            assert!(f.cfg.prepay_request(&r).is_err());
        }
        let r = PrepayRequest {
            out_trade_no: "a/b/../c".into(),
            ..req.clone()
        };
        assert!(f.cfg.prepay_request(&r).is_err());

        assert_eq!(
            WechatConfig::parse_prepay_response(
                &TradeType::App,
                br#"{"prepay_id":"wx201410272009395522657a690389285100"}"#
            )
            .unwrap(),
            PrepayResponse::PrepayId("wx201410272009395522657a690389285100".into())
        );
        assert_eq!(
            WechatConfig::parse_prepay_response(
                &TradeType::Native,
                br#"{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}"#
            )
            .unwrap(),
            PrepayResponse::CodeUrl("weixin://wxpay/bizpayurl?pr=p4lpSuKzz".into())
        );
        assert!(WechatConfig::parse_prepay_response(&TradeType::Native, b"{}").is_err());
        assert!(WechatConfig::parse_prepay_response(&TradeType::Native, b"\xff").is_err());
    }

    #[test]
    fn trade_type_names() {
        let jsapi = TradeType::Jsapi { openid: "o".into() };
        assert_eq!(
            [
                jsapi.as_str(),
                TradeType::App.as_str(),
                TradeType::Native.as_str()
            ],
            ["JSAPI", "APP", "NATIVE"]
        );
    }

    #[test]
    fn client_pay_params_sign_documented_strings() {
        let f = fixture();
        let j = f
            .cfg
            .jsapi_pay_params(
                "wx201410272009395522657a690389285100",
                1414561699,
                "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
            )
            .unwrap();
        assert_eq!(j.package, "prepay_id=wx201410272009395522657a690389285100");
        assert_eq!(j.sign_type, "RSA");
        let msg = "wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n";
        assert!(f
            .merchant_pub
            .verify_sha256_b64(msg.as_bytes(), &j.pay_sign));
        let js = serde_json::to_value(&j).unwrap();
        for k in [
            "appId",
            "timeStamp",
            "nonceStr",
            "package",
            "signType",
            "paySign",
        ] {
            assert!(js.get(k).is_some(), "{k}");
        }
        let a = f
            .cfg
            .app_pay_params(
                "WX1217752501201407033233368018",
                1412000000,
                "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
            )
            .unwrap();
        assert_eq!(
            (a.package.as_str(), a.partnerid.as_str()),
            ("Sign=WXPay", MCH)
        );
        let msg = "wx8888888888888888\n1412000000\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nWX1217752501201407033233368018\n";
        assert!(f.merchant_pub.verify_sha256_b64(msg.as_bytes(), &a.sign));
        // The prepay id and nonce end up in signed strings: nothing odd passes.
        assert!(f.cfg.app_pay_params("wx\"1", 1, "n").is_err());
        assert!(f.cfg.jsapi_pay_params("wx1", 1, "n-1").is_err());
    }

    #[test]
    fn query_and_close() {
        let f = fixture();
        let q = f.cfg.query_request("order_123456").unwrap();
        assert_eq!(
            q.path,
            "/v3/pay/transactions/out-trade-no/order_123456?mchid=1900000109"
        );
        assert_eq!((q.method, q.body.as_str()), ("GET", ""));
        let c = f.cfg.close_request("order_123456").unwrap();
        assert_eq!(
            c.path,
            "/v3/pay/transactions/out-trade-no/order_123456/close"
        );
        assert_eq!(c.body, r#"{"mchid":"1900000109"}"#);
        assert!(f.cfg.query_request("a?b=c#").is_err());
        assert!(f.cfg.close_request("../../x").is_err());

        let body = transaction(MCH, APP).to_string();
        let r = f.cfg.parse_query_response(body.as_bytes()).unwrap();
        assert_eq!(r.state, TradeState::Success);
        assert_eq!(r.amount_total, Some(1200));
        assert_eq!(r.success_time, Some(1704081600));
        for (s, st) in [
            ("REFUND", TradeState::Refund),
            ("NOTPAY", TradeState::NotPay),
            ("CLOSED", TradeState::Closed),
            ("REVOKED", TradeState::Revoked),
            ("USERPAYING", TradeState::UserPaying),
            ("PAYERROR", TradeState::PayError),
        ] {
            let mut t = json!({"mchid": MCH, "appid": APP, "out_trade_no": "order_123456", "trade_state": s, "trade_state_desc": "x"});
            if s == "REFUND" {
                t["amount"] = json!({"total": 5, "payer_total": 5, "currency": "CNY"});
            }
            assert_eq!(
                f.cfg
                    .parse_query_response(t.to_string().as_bytes())
                    .unwrap()
                    .state,
                st
            );
        }
        let wrong = transaction("1900000000", APP).to_string();
        assert_eq!(
            f.cfg.parse_query_response(wrong.as_bytes()),
            Err(VerifyError::WrongMerchant)
        );
        let wrong = transaction(MCH, "wx0000").to_string();
        assert_eq!(
            f.cfg.parse_query_response(wrong.as_bytes()),
            Err(VerifyError::WrongApp)
        );
        let odd = json!({"mchid": MCH, "out_trade_no": "order_123456", "trade_state": "ACCEPT"})
            .to_string();
        assert!(matches!(
            f.cfg.parse_query_response(odd.as_bytes()),
            Err(VerifyError::Unsupported(_))
        ));
        let neg = json!({"mchid": MCH, "out_trade_no": "o", "trade_state": "SUCCESS", "amount": {"total": -1}}).to_string();
        assert!(matches!(
            f.cfg.parse_query_response(neg.as_bytes()),
            Err(VerifyError::Malformed(_))
        ));
        let mut late = transaction(MCH, APP);
        late["success_time"] = json!("yesterday");
        assert_eq!(
            f.cfg.parse_query_response(late.to_string().as_bytes()),
            Err(VerifyError::Malformed("success_time".into()))
        );
        assert_eq!(
            parse_api_error(br#"{"code":"ORDER_NOT_EXIST","message":"x"}"#)
                .unwrap()
                .code,
            "ORDER_NOT_EXIST"
        );
        assert_eq!(parse_api_error(b"<html>"), None);
    }
}
