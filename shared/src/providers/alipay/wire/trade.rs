//! The `alipay.trade.*` gateway methods: signed requests (`app.pay` order strings, `page.pay`
//! and `wap.pay` URLs, `query` and `close` form bodies) and the verified answers to them.
//!
//! Sources checked:
//! - Common parameters (app_id, method, format=JSON, charset, sign_type=RSA2, sign,
//!   timestamp `yyyy-MM-dd HH:mm:ss`, version 1.0, notify_url, biz_content):
//!   <https://w3cschool.cn/aliminiapp/aliminiapp-2wa52f4q.html>
//! - product_code: app `QUICK_MSECURITY_PAY`, page `FAST_INSTANT_TRADE_PAY`, wap `QUICK_WAP_WAY`:
//!   <https://yq.aliyun.com/articles/710944>
//! - `timeout_express` format `1m`..`15d`: <https://github.com/lneoe/alipay/blob/master/wap_type.go>

use serde_json::{json, Value};

use super::sign::{request_content, verified_response_node};
use super::{yuan_to_fen, AlipayConfig};
use crate::domain::{Currency, Money};
use crate::providers::china_time::{format_cst_datetime, parse_cst_datetime};
use crate::providers::wire_error::{BuildError, VerifyError};

/// How long the buyer may take to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Absolute deadline (unix seconds) → `time_expire` (`yyyy-MM-dd HH:mm:ss`, UTC+8).
    At(i64),
    /// Relative → `timeout_express` (`1m`..`15d`, e.g. `"30m"`).
    Relative(String),
}

#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub out_trade_no: String,
    pub subject: String,
    pub amount_fen: i64,
    pub expiry: Option<Expiry>,
}

/// A signed request for `query` / `close`: POST `form_body`
/// (`application/x-www-form-urlencoded;charset=utf-8`) to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequest {
    pub url: String,
    pub form_body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStatus {
    WaitBuyerPay,
    TradeClosed,
    TradeSuccess,
    TradeFinished,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    /// code 10000.
    Found {
        status: TradeStatus,
        out_trade_no: String,
        trade_no: String,
        total_amount_fen: i64,
        /// `send_pay_date` (unix seconds) if present.
        paid_at: Option<i64>,
        raw: Value,
    },
    /// `sub_code` = `ACQ.TRADE_NOT_EXIST`: the buyer never opened/scanned the order → not paid.
    NotExist,
    /// Any other business / system error.
    Error {
        code: String,
        msg: String,
        sub_code: Option<String>,
        sub_msg: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    /// `ACQ.TRADE_NOT_EXIST`: nothing to close (the order was never created on Alipay's side).
    NotExist,
    Error {
        code: String,
        msg: String,
        sub_code: Option<String>,
        sub_msg: Option<String>,
    },
}

impl AlipayConfig {
    // ------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------

    /// `alipay.trade.app.pay`: the signed, URL-encoded order string handed to the
    /// Alipay app SDK (`payV2(orderInfo)`), as `AlipayClient.sdkExecute` produces.
    pub fn app_pay_order_string(
        &self,
        order: &OrderRequest,
        notify_url: &str,
        now: i64,
    ) -> Result<String, BuildError> {
        let biz = biz_content(order, "QUICK_MSECURITY_PAY")?;
        let params =
            self.signed_params("alipay.trade.app.pay", biz, Some(notify_url), None, now)?;
        Ok(encode_query(&params))
    }

    /// `alipay.trade.page.pay` (desktop): a GET URL on the gateway to redirect the buyer to.
    pub fn page_pay_url(
        &self,
        order: &OrderRequest,
        notify_url: &str,
        return_url: Option<&str>,
        now: i64,
    ) -> Result<String, BuildError> {
        self.pay_url(
            "alipay.trade.page.pay",
            "FAST_INSTANT_TRADE_PAY",
            order,
            notify_url,
            return_url,
            now,
        )
    }

    /// `alipay.trade.wap.pay` (mobile web): a GET URL on the gateway.
    pub fn wap_pay_url(
        &self,
        order: &OrderRequest,
        notify_url: &str,
        return_url: Option<&str>,
        now: i64,
    ) -> Result<String, BuildError> {
        self.pay_url(
            "alipay.trade.wap.pay",
            "QUICK_WAP_WAY",
            order,
            notify_url,
            return_url,
            now,
        )
    }

    /// A signed GET URL on the gateway for a browser pay method.
    fn pay_url(
        &self,
        method: &str,
        product_code: &str,
        order: &OrderRequest,
        notify_url: &str,
        return_url: Option<&str>,
        now: i64,
    ) -> Result<String, BuildError> {
        let biz = biz_content(order, product_code)?;
        let params = self.signed_params(method, biz, Some(notify_url), return_url, now)?;
        Ok(format!("{}?{}", self.gateway, encode_query(&params)))
    }

    /// `alipay.trade.query` by out_trade_no.
    pub fn query_request(
        &self,
        out_trade_no: &str,
        now: i64,
    ) -> Result<GatewayRequest, BuildError> {
        self.by_out_trade_no("alipay.trade.query", out_trade_no, now)
    }

    /// `alipay.trade.close` by out_trade_no.
    pub fn close_request(
        &self,
        out_trade_no: &str,
        now: i64,
    ) -> Result<GatewayRequest, BuildError> {
        self.by_out_trade_no("alipay.trade.close", out_trade_no, now)
    }

    /// A signed gateway call whose only business parameter is our order id.
    fn by_out_trade_no(
        &self,
        method: &str,
        out_trade_no: &str,
        now: i64,
    ) -> Result<GatewayRequest, BuildError> {
        check_out_trade_no(out_trade_no)?;
        let biz = json!({ "out_trade_no": out_trade_no });
        let params = self.signed_params(method, biz, None, None, now)?;
        Ok(GatewayRequest {
            url: self.gateway.clone(),
            form_body: encode_query(&params),
        })
    }

    pub(super) fn signed_params(
        &self,
        method: &str,
        biz: Value,
        notify_url: Option<&str>,
        return_url: Option<&str>,
        now: i64,
    ) -> Result<Vec<(String, String)>, BuildError> {
        let mut p: Vec<(String, String)> = vec![
            ("app_id".into(), self.app_id.clone()),
            ("method".into(), method.into()),
            ("format".into(), "JSON".into()),
            ("charset".into(), "utf-8".into()),
            ("sign_type".into(), "RSA2".into()),
            (
                "timestamp".into(),
                format_cst_datetime(now)
                    .ok_or_else(|| BuildError::InvalidInput("timestamp".into()))?,
            ),
            ("version".into(), "1.0".into()),
            ("biz_content".into(), biz.to_string()),
        ];
        if let Some(u) = notify_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(BuildError::InvalidInput(
                    "notify_url must be http(s)".into(),
                ));
            }
            p.push(("notify_url".into(), u.into()));
        }
        if let Some(u) = return_url {
            p.push(("return_url".into(), u.into()));
        }
        p.sort_by(|a, b| a.0.cmp(&b.0));
        let content = request_content(&p);
        let sign = self.app_private_key.sign_sha256_b64(content.as_bytes())?;
        p.push(("sign".into(), sign));
        Ok(p)
    }

    // ------------------------------------------------------------------
    // Responses
    // ------------------------------------------------------------------

    /// Verify and parse an `alipay.trade.query` response body.
    pub fn parse_query_response(&self, body: &[u8]) -> Result<QueryOutcome, VerifyError> {
        let node =
            verified_response_node(&self.alipay_public_key, body, "alipay_trade_query_response")?;
        let code = str_field(&node, "code").unwrap_or_default();
        if code != "10000" {
            let sub_code = str_field(&node, "sub_code");
            if sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") {
                return Ok(QueryOutcome::NotExist);
            }
            return Ok(QueryOutcome::Error {
                code,
                msg: str_field(&node, "msg").unwrap_or_default(),
                sub_code,
                sub_msg: str_field(&node, "sub_msg"),
            });
        }
        let status = match str_field(&node, "trade_status").as_deref() {
            Some("WAIT_BUYER_PAY") => TradeStatus::WaitBuyerPay,
            Some("TRADE_CLOSED") => TradeStatus::TradeClosed,
            Some("TRADE_SUCCESS") => TradeStatus::TradeSuccess,
            Some("TRADE_FINISHED") => TradeStatus::TradeFinished,
            other => {
                return Err(VerifyError::Unsupported(format!(
                    "trade_status {}",
                    other.unwrap_or("missing")
                )))
            }
        };
        let total = str_field(&node, "total_amount")
            .ok_or_else(|| VerifyError::Malformed("missing total_amount".into()))?;
        Ok(QueryOutcome::Found {
            status,
            out_trade_no: str_field(&node, "out_trade_no")
                .ok_or_else(|| VerifyError::Malformed("missing out_trade_no".into()))?,
            trade_no: str_field(&node, "trade_no")
                .ok_or_else(|| VerifyError::Malformed("missing trade_no".into()))?,
            total_amount_fen: yuan_to_fen(&total)
                .ok_or_else(|| VerifyError::Malformed("total_amount".into()))?,
            paid_at: str_field(&node, "send_pay_date")
                .as_deref()
                .and_then(parse_cst_datetime),
            raw: node,
        })
    }

    /// Verify and parse an `alipay.trade.close` response body.
    pub fn parse_close_response(&self, body: &[u8]) -> Result<CloseOutcome, VerifyError> {
        let node =
            verified_response_node(&self.alipay_public_key, body, "alipay_trade_close_response")?;
        let code = str_field(&node, "code").unwrap_or_default();
        if code == "10000" {
            return Ok(CloseOutcome::Closed);
        }
        let sub_code = str_field(&node, "sub_code");
        if sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") {
            return Ok(CloseOutcome::NotExist);
        }
        Ok(CloseOutcome::Error {
            code,
            msg: str_field(&node, "msg").unwrap_or_default(),
            sub_code,
            sub_msg: str_field(&node, "sub_msg"),
        })
    }
}

// ----------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------

fn biz_content(order: &OrderRequest, product_code: &str) -> Result<Value, BuildError> {
    check_out_trade_no(&order.out_trade_no)?;
    if order.subject.is_empty() || order.subject.chars().count() > 256 {
        return Err(BuildError::InvalidInput(
            "subject must be 1..=256 chars".into(),
        ));
    }
    if order.amount_fen <= 0 || order.amount_fen > 10_000_000_000 {
        return Err(BuildError::InvalidInput(
            "amount must be 0.01..=100000000.00 yuan".into(),
        ));
    }
    let mut biz = json!({
        "out_trade_no": order.out_trade_no,
        "total_amount": Money::new(order.amount_fen, Currency::CNY)
            .map_err(|_| BuildError::InvalidInput("amount".into()))?
            .to_decimal_string(),
        "subject": order.subject,
        "product_code": product_code,
    });
    match &order.expiry {
        Some(Expiry::At(t)) => {
            biz["time_expire"] = Value::String(
                format_cst_datetime(*t)
                    .ok_or_else(|| BuildError::InvalidInput("time_expire".into()))?,
            )
        }
        Some(Expiry::Relative(s)) => {
            let ok = s.len() >= 2
                && (s.ends_with(['m', 'h', 'd'])
                    && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
                    || s == "1c");
            if !ok {
                return Err(BuildError::InvalidInput(
                    "timeout_express must look like 30m / 2h / 1d / 1c".into(),
                ));
            }
            biz["timeout_express"] = Value::String(s.clone());
        }
        None => {}
    }
    Ok(biz)
}

pub(super) fn check_out_trade_no(s: &str) -> Result<(), BuildError> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(BuildError::InvalidInput(
            "out_trade_no must be 1..=64 of [0-9A-Za-z_-]".into(),
        ));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` UTF-8 (same alphabet as Java's `URLEncoder`).
pub(super) fn encode_query(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

pub(super) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::alipay::wire::testing::{fx, Fx};
    use crate::providers::alipay::wire::{GATEWAY_PROD, GATEWAY_SANDBOX};

    fn decode_query(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn check_request_signature(f: &Fx, params: &[(String, String)]) {
        let sign = &params.iter().find(|(k, _)| k == "sign").unwrap().1;
        let mut rest: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "sign")
            .cloned()
            .collect();
        rest.sort();
        assert!(f
            .app_pk
            .verify_sha256_b64(request_content(&rest).as_bytes(), sign));
        assert!(request_content(&rest).contains("sign_type=RSA2"));
    }

    #[test]
    fn build_requests() {
        let f = fx();
        let order = OrderRequest {
            out_trade_no: "T_1".into(),
            subject: "直播 a+b&c=d".into(),
            amount_fen: 1234,
            expiry: Some(Expiry::Relative("30m".into())),
        };
        let s = f
            .cfg
            .app_pay_order_string(&order, "https://example.com/alipay/notify", 1432099775)
            .unwrap();
        let p = decode_query(&s);
        check_request_signature(&f, &p);
        let get = |p: &[(String, String)], k: &str| {
            p.iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get(&p, "method"), "alipay.trade.app.pay");
        assert_eq!(get(&p, "timestamp"), "2015-05-20 13:29:35");
        let biz: Value = serde_json::from_str(&get(&p, "biz_content")).unwrap();
        assert_eq!(
            biz,
            json!({"out_trade_no": "T_1", "total_amount": "12.34", "subject": "直播 a+b&c=d", "product_code": "QUICK_MSECURITY_PAY", "timeout_express": "30m"})
        );
        assert!(!s.contains(' ') && !s.contains('"'));

        let order2 = OrderRequest {
            expiry: Some(Expiry::At(1432099775)),
            ..order.clone()
        };
        let url = f
            .cfg
            .page_pay_url(
                &order2,
                "https://example.com/n",
                Some("https://example.com/r"),
                1432099775,
            )
            .unwrap();
        let (gw, q) = url.split_once('?').unwrap();
        assert_eq!(gw, GATEWAY_PROD);
        let p = decode_query(q);
        check_request_signature(&f, &p);
        let biz: Value = serde_json::from_str(&get(&p, "biz_content")).unwrap();
        assert_eq!(biz["product_code"], "FAST_INSTANT_TRADE_PAY");
        assert_eq!(biz["time_expire"], "2015-05-20 13:29:35");
        assert_eq!(get(&p, "return_url"), "https://example.com/r");

        let url = f
            .cfg
            .wap_pay_url(&order, "https://example.com/n", None, 0)
            .unwrap();
        let p = decode_query(url.split_once('?').unwrap().1);
        assert_eq!(get(&p, "method"), "alipay.trade.wap.pay");
        assert!(get(&p, "biz_content").contains("QUICK_WAP_WAY"));

        let q = f
            .cfg
            .with_gateway(GATEWAY_SANDBOX)
            .query_request("T_1", 0)
            .unwrap();
        assert_eq!(q.url, GATEWAY_SANDBOX);
        let f = fx();
        let p = decode_query(&f.cfg.query_request("T_1", 0).unwrap().form_body);
        check_request_signature(&f, &p);
        assert_eq!(get(&p, "method"), "alipay.trade.query");
        assert_eq!(get(&p, "biz_content"), r#"{"out_trade_no":"T_1"}"#);
        let p = decode_query(&f.cfg.close_request("T_1", 0).unwrap().form_body);
        assert_eq!(get(&p, "method"), "alipay.trade.close");

        for bad in [
            OrderRequest {
                amount_fen: 0,
                ..order.clone()
            },
            OrderRequest {
                out_trade_no: "a b".into(),
                ..order.clone()
            },
            OrderRequest {
                subject: String::new(),
                ..order.clone()
            },
            OrderRequest {
                expiry: Some(Expiry::Relative("1.5h".into())),
                ..order.clone()
            },
        ] {
            assert!(f.cfg.app_pay_order_string(&bad, "https://x", 0).is_err());
        }
    }

    fn signed_response(f: &Fx, node_name: &str, node_raw: &str) -> String {
        let sig = f.alipay_sk.sign_sha256_b64(node_raw.as_bytes()).unwrap();
        format!("{{\"{node_name}\":{node_raw},\"sign\":\"{sig}\"}}")
    }

    #[test]
    fn query_responses() {
        let f = fx();
        // Deliberately odd formatting/escapes: we must verify the raw text, not a re-serialisation.
        let node = r#"{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","out_trade_no":"TEST171","trade_no":"2020032522001456380542497258","trade_status":"TRADE_SUCCESS","total_amount":"12.00","send_pay_date":"2020-03-25 10:59:38","subject":"a\"}{\\\/b" , "x":[1,{"y":"}"}]}"#;
        let body = signed_response(&f, "alipay_trade_query_response", node);
        match f.cfg.parse_query_response(body.as_bytes()).unwrap() {
            QueryOutcome::Found {
                status,
                total_amount_fen,
                paid_at,
                trade_no,
                ..
            } => {
                assert_eq!(status, TradeStatus::TradeSuccess);
                assert_eq!(total_amount_fen, 1200);
                assert_eq!(paid_at, parse_cst_datetime("2020-03-25 10:59:38"));
                assert_eq!(trade_no, "2020032522001456380542497258");
            }
            other => panic!("{other:?}"),
        }
        // tampered
        let t = body.replace("12.00", "13.00");
        assert_eq!(
            f.cfg.parse_query_response(t.as_bytes()),
            Err(VerifyError::BadSignature)
        );
        // success without sign
        let unsigned = format!("{{\"alipay_trade_query_response\":{node}}}");
        assert_eq!(
            f.cfg.parse_query_response(unsigned.as_bytes()),
            Err(VerifyError::BadSignature)
        );
        // not exist (signed) and gateway error (unsigned)
        let ne = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"TEST171"}"#;
        assert_eq!(
            f.cfg
                .parse_query_response(
                    signed_response(&f, "alipay_trade_query_response", ne).as_bytes()
                )
                .unwrap(),
            QueryOutcome::NotExist
        );
        let err = r#"{"alipay_trade_query_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}"#;
        assert!(
            matches!(f.cfg.parse_query_response(err.as_bytes()).unwrap(), QueryOutcome::Error { code, .. } if code == "40002")
        );
        // The scanner's refusals are sign.rs's tests; here, what the parser itself refuses.
        let signed = |node: &str| signed_response(&f, "alipay_trade_query_response", node);
        let waiting = r#"{"code":"10000","out_trade_no":"T","trade_no":"1","trade_status":"WAIT_BUYER_PAY","total_amount":"1.00"}"#;
        assert!(matches!(
            f.cfg.parse_query_response(signed(waiting).as_bytes()),
            Ok(QueryOutcome::Found {
                status: TradeStatus::WaitBuyerPay,
                paid_at: None,
                ..
            })
        ));
        let unknown = waiting.replace("WAIT_BUYER_PAY", "TRADE_PENDING");
        assert!(matches!(
            f.cfg.parse_query_response(signed(&unknown).as_bytes()),
            Err(VerifyError::Unsupported(_))
        ));
        let no_trade_no = waiting.replace(r#""trade_no":"1","#, "");
        assert!(matches!(
            f.cfg.parse_query_response(signed(&no_trade_no).as_bytes()),
            Err(VerifyError::Malformed(_))
        ));
        let close_node = signed_response(&f, "alipay_trade_close_response", waiting);
        assert!(matches!(
            f.cfg.parse_query_response(close_node.as_bytes()),
            Err(VerifyError::Malformed(_))
        ));
        let bad_amount = r#"{"code":"10000","msg":"Success","out_trade_no":"T","trade_no":"1","trade_status":"TRADE_SUCCESS","total_amount":"1.001"}"#;
        assert!(matches!(
            f.cfg.parse_query_response(
                signed_response(&f, "alipay_trade_query_response", bad_amount).as_bytes()
            ),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn close_responses() {
        let f = fx();
        let ok = r#"{"code":"10000","msg":"Success","out_trade_no":"T_1","trade_no":"2013112111001004500000675971"}"#;
        assert_eq!(
            f.cfg
                .parse_close_response(
                    signed_response(&f, "alipay_trade_close_response", ok).as_bytes()
                )
                .unwrap(),
            CloseOutcome::Closed
        );
        let ne = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#;
        assert_eq!(
            f.cfg
                .parse_close_response(
                    signed_response(&f, "alipay_trade_close_response", ne).as_bytes()
                )
                .unwrap(),
            CloseOutcome::NotExist
        );
        let busy = r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"aop.ACQ.SYSTEM_ERROR"}"#;
        assert_eq!(
            f.cfg
                .parse_close_response(
                    signed_response(&f, "alipay_trade_close_response", busy).as_bytes()
                )
                .unwrap(),
            CloseOutcome::Error {
                code: "20000".into(),
                msg: "Service Currently Unavailable".into(),
                sub_code: Some("aop.ACQ.SYSTEM_ERROR".into()),
                sub_msg: None,
            }
        );
        // a query node is not a close node
        assert!(f
            .cfg
            .parse_close_response(signed_response(&f, "alipay_trade_query_response", ok).as_bytes())
            .is_err());
    }
}
