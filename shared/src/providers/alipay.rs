//! Alipay Open Platform (openapi.alipay.com, "RSA2" key mode) wire format.
//!
//! The wire format is pure: no network, no clock (callers pass `now`), no panics. [`Alipay`]
//! at the end adds the gateway calls and maps notifications to Tollgate's events.
//!
//! Sources checked (stored copies via the search tool):
//! - Notification check content = all params except `sign` and `sign_type`, **empty values
//!   skipped**, keys sorted, `k=v` joined by `&`, values as decoded by the servlet container;
//!   the bytes signed are the content encoded in the request charset:
//!   official Java SDK `AlipaySignature.getSignCheckContentV1` / `rsaCheckV1`
//!   (github.com/alipay/alipay-sdk-java-all, `src/main/java/com/alipay/api/internal/util/AlipaySignature.java`).
//!   Note: very old SDK copies did not skip empty values; current ones do (`StringUtils.areNotEmpty`).
//! - Same procedure described in prose ("除去sign、sign_type两个参数外…url_decode…字典排序"):
//!   <https://blog.csdn.net/qq_39505065/article/details/84429592> (copy of docs.open.alipay.com/200/106120)
//! - Request signing = `getSignContent` (sorted, empty values skipped, `sign` excluded, `sign_type`
//!   included), SHA256withRSA, base64: same SDK file.
//! - Synchronous response verification: the signed content is the raw JSON text of the
//!   `<method>_response` node, extracted by brace matching that respects strings/escapes
//!   (SDK `extractSignContent` / `extractJsonObjectEndPosition`; python `fzlee/alipay`
//!   `_get_string_to_be_signed`). We do the same with a small top-level JSON scanner.
//! - product_code: app `QUICK_MSECURITY_PAY`, page `FAST_INSTANT_TRADE_PAY`, wap `QUICK_WAP_WAY`:
//!   <https://yq.aliyun.com/articles/710944>
//! - Common params (app_id, method, format=JSON, charset, sign_type=RSA2, sign,
//!   timestamp `yyyy-MM-dd HH:mm:ss`, version 1.0, notify_url, biz_content):
//!   <https://w3cschool.cn/aliminiapp/aliminiapp-2wa52f4q.html>
//! - Notification answer: the body must be exactly `success`; anything else → retried 8 times
//!   over ~25 h: <https://blog.csdn.net/terry_water/article/details/75254860> (copy of docs.open.alipay.com/270/105902)
//! - `timeout_express` format `1m`..`15d`: <https://github.com/lneoe/alipay/blob/master/wap_type.go>

use std::fmt;

use serde_json::{json, Map, Value};

use super::china_time::{format_cst_datetime, parse_cst_datetime};
use super::notification::{NotificationKind, VerifiedNotification};
use super::rsa::{KeyError as ConfigError, RsaPrivateKey, RsaPublicKey};
use super::wire_error::{BuildError, VerifyError};
use crate::domain::{Currency, Money};

/// Production gateway.
pub const GATEWAY_PROD: &str = "https://openapi.alipay.com/gateway.do";
/// Sandbox gateway.
pub const GATEWAY_SANDBOX: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";
/// Body to answer a notification we accepted (HTTP 200, `text/plain`).
pub const NOTIFY_SUCCESS_BODY: &str = "success";

/// Alipay's yuan amounts ("12.00") in fen, exactly, through [`Money`]'s one decimal parser.
fn yuan_to_fen(s: &str) -> Option<i64> {
    Money::parse_decimal(s, Currency::CNY)
        .ok()
        .map(|m| m.amount)
}
/// Body to answer a notification we could not process (Alipay retries).
pub const NOTIFY_FAILURE_BODY: &str = "failure";

/// App configuration. `Debug` never prints key material.
pub struct AlipayConfig {
    pub app_id: String,
    /// If set, notifications must carry this `seller_id` (2088… PID).
    pub seller_id: Option<String>,
    pub gateway: String,
    app_private_key: RsaPrivateKey,
    alipay_public_key: RsaPublicKey,
}

impl fmt::Debug for AlipayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlipayConfig")
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("gateway", &self.gateway)
            .field("app_private_key", &self.app_private_key)
            .field("alipay_public_key", &self.alipay_public_key)
            .finish()
    }
}

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
    /// `app_private_key`: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`), or the bare
    /// base64 string from Alipay's key tool (either form). `alipay_public_key`: PEM
    /// `PUBLIC KEY` or the bare base64 "支付宝公钥". Certificate ("公钥证书") mode is not
    /// supported.
    pub fn new(
        app_id: &str,
        seller_id: Option<&str>,
        app_private_key: &str,
        alipay_public_key: &str,
    ) -> Result<Self, ConfigError> {
        if app_id.is_empty() || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError("app_id must be digits".into()));
        }
        if let Some(s) = seller_id {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError("seller_id must be digits".into()));
            }
        }
        Ok(AlipayConfig {
            app_id: app_id.to_string(),
            seller_id: seller_id.map(str::to_string),
            gateway: GATEWAY_PROD.to_string(),
            app_private_key: RsaPrivateKey::from_pem_or_base64(app_private_key)?,
            alipay_public_key: RsaPublicKey::from_pem_or_base64(alipay_public_key)?,
        })
    }

    pub fn with_gateway(mut self, gateway: &str) -> Self {
        self.gateway = gateway.to_string();
        self
    }

    // ------------------------------------------------------------------
    // Notifications
    // ------------------------------------------------------------------

    /// Verify an asynchronous notification (`application/x-www-form-urlencoded` POST body).
    ///
    /// The body is decoded exactly once: `+` → space, `%XX` → byte (so a literal `+` sent
    /// as `%2B` survives), then the bytes are interpreted in the charset given by the
    /// `charset` form field, else `content_type_charset`, else UTF-8 (GBK/GB2312/GB18030
    /// supported). The signature is checked over the decoded bytes exactly as sent, i.e.
    /// the check string in the notification's own charset, as the Java SDK does
    /// (`content.getBytes(charset)`).
    pub fn verify_notify(
        &self,
        raw_form_body: &[u8],
        content_type_charset: Option<&str>,
    ) -> Result<VerifiedNotification, VerifyError> {
        let pairs = parse_form(raw_form_body)?;
        let charset_name = pairs
            .iter()
            .find(|(k, v)| k == b"charset" && !v.is_empty())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .or_else(|| content_type_charset.map(str::to_string))
            .unwrap_or_else(|| "utf-8".to_string());
        let encoding = charset(&charset_name)?;

        // Decode keys/values to text (strict: malformed sequences are rejected).
        let mut fields: Vec<(String, String, &[u8])> = Vec::with_capacity(pairs.len());
        for (k, v) in &pairs {
            let key = decode_strict(encoding, k)?;
            let val = decode_strict(encoding, v)?;
            if fields.iter().any(|(fk, _, _)| *fk == key) {
                return Err(VerifyError::Malformed(format!("duplicate parameter {key}")));
            }
            fields.push((key, val, v.as_slice()));
        }
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _, _)| k == name)
                .map(|(_, v, _)| v.as_str())
        };

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

        // Check content over the raw decoded bytes (= content.getBytes(charset)).
        let mut signed: Vec<(&[u8], &[u8])> = fields
            .iter()
            .filter(|(k, v, _)| k != "sign" && k != "sign_type" && !v.is_empty())
            .map(|(k, _, raw)| (k.as_bytes(), *raw))
            .collect();
        // Keys are ASCII in practice; byte order == Java String order for ASCII.
        signed.sort_by(|a, b| a.0.cmp(b.0));
        let mut content = Vec::new();
        for (i, (k, v)) in signed.iter().enumerate() {
            if i > 0 {
                content.push(b'&');
            }
            // Keys were decoded with an ASCII-compatible charset; re-encode for GBK keys.
            content.extend_from_slice(&encode_key(encoding, k));
            content.push(b'=');
            content.extend_from_slice(v);
        }
        if !self.alipay_public_key.verify_sha256_b64(&content, &sign) {
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
        for (k, v, _) in &fields {
            if k != "sign" {
                raw.insert(k.clone(), Value::String(v.clone()));
            }
        }
        Ok(VerifiedNotification {
            kind,
            out_trade_no,
            provider_txn_id: trade_no,
            amount_minor,
            refunded_minor,
            currency: "CNY".into(),
            occurred_at,
            event: status.to_owned(),
            raw: Value::Object(raw),
        })
    }

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
        check_out_trade_no(out_trade_no)?;
        let params = self.signed_params(
            "alipay.trade.query",
            json!({ "out_trade_no": out_trade_no }),
            None,
            None,
            now,
        )?;
        Ok(GatewayRequest {
            url: self.gateway.clone(),
            form_body: encode_query(&params),
        })
    }

    /// `alipay.trade.close` by out_trade_no.
    pub fn close_request(
        &self,
        out_trade_no: &str,
        now: i64,
    ) -> Result<GatewayRequest, BuildError> {
        check_out_trade_no(out_trade_no)?;
        let params = self.signed_params(
            "alipay.trade.close",
            json!({ "out_trade_no": out_trade_no }),
            None,
            None,
            now,
        )?;
        Ok(GatewayRequest {
            url: self.gateway.clone(),
            form_body: encode_query(&params),
        })
    }

    fn signed_params(
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
        let content = sign_content(&p);
        let sign = self.app_private_key.sign_sha256_b64(content.as_bytes())?;
        p.push(("sign".into(), sign));
        Ok(p)
    }

    // ------------------------------------------------------------------
    // Responses
    // ------------------------------------------------------------------

    /// Verify and parse an `alipay.trade.query` response body.
    pub fn parse_query_response(&self, body: &[u8]) -> Result<QueryOutcome, VerifyError> {
        let node = self.verified_response_node(body, "alipay_trade_query_response")?;
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
        let node = self.verified_response_node(body, "alipay_trade_close_response")?;
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

    /// Extract the raw text of `node_name`'s value from the top-level object, verify the
    /// top-level `sign` over exactly those bytes, and return the parsed node.
    ///
    /// Unsigned responses are accepted only when `code` != 10000 (gateway-level errors such
    /// as an invalid app_id are returned unsigned); a success without `sign` is rejected.
    fn verified_response_node(&self, body: &[u8], node_name: &str) -> Result<Value, VerifyError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| VerifyError::Malformed("response is not UTF-8".into()))?;
        let members = top_level_members(text)
            .ok_or_else(|| VerifyError::Malformed("response JSON".into()))?;
        let mut node_span = None;
        let mut sign = None;
        for (key, span) in members {
            if key == node_name {
                if node_span.replace(span).is_some() {
                    return Err(VerifyError::Malformed("duplicate response node".into()));
                }
            } else if key == "sign" {
                sign = Some(span);
            }
        }
        let span =
            node_span.ok_or_else(|| VerifyError::Malformed(format!("missing {node_name}")))?;
        let raw_node = &text[span.0..span.1];
        let node: Value = serde_json::from_str(raw_node)
            .map_err(|_| VerifyError::Malformed("response node".into()))?;
        if !node.is_object() {
            return Err(VerifyError::Malformed(
                "response node is not an object".into(),
            ));
        }
        match sign {
            Some(s) => {
                let sig: String = serde_json::from_str(&text[s.0..s.1])
                    .map_err(|_| VerifyError::Malformed("sign".into()))?;
                if !self
                    .alipay_public_key
                    .verify_sha256_b64(raw_node.as_bytes(), &sig)
                {
                    return Err(VerifyError::BadSignature);
                }
            }
            None => {
                if str_field(&node, "code").as_deref() == Some("10000") {
                    return Err(VerifyError::BadSignature);
                }
            }
        }
        Ok(node)
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

fn check_out_trade_no(s: &str) -> Result<(), BuildError> {
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

/// SDK `getSignContent`: sorted by key, empty values skipped, `sign` excluded.
fn sign_content(sorted: &[(String, String)]) -> String {
    sorted
        .iter()
        .filter(|(k, v)| k != "sign" && !k.is_empty() && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded` UTF-8 (same alphabet as Java's `URLEncoder`).
fn encode_query(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Split on `&` and `=`, `+` → space, strict `%XX` decoding to raw bytes.
type FormPairs = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_form(body: &[u8]) -> Result<FormPairs, VerifyError> {
    let mut out = Vec::new();
    for part in body.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let k = percent_decode_form(k)?;
        if k.is_empty() {
            return Err(VerifyError::Malformed("empty parameter name".into()));
        }
        out.push((k, percent_decode_form(v)?));
    }
    if out.is_empty() {
        return Err(VerifyError::Malformed("empty form body".into()));
    }
    Ok(out)
}

fn percent_decode_form(s: &[u8]) -> Result<Vec<u8>, VerifyError> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let (h, l) = match (
                    s.get(i + 1).copied().and_then(hex),
                    s.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(VerifyError::Malformed("bad percent-encoding".into())),
                };
                out.push(h << 4 | l);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

fn charset(name: &str) -> Result<&'static encoding_rs::Encoding, VerifyError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(encoding_rs::UTF_8),
        "gbk" | "gb2312" | "cp936" => Ok(encoding_rs::GBK),
        "gb18030" => Ok(encoding_rs::GB18030),
        other => Err(VerifyError::Unsupported(format!("charset {other}"))),
    }
}

fn decode_strict(enc: &'static encoding_rs::Encoding, bytes: &[u8]) -> Result<String, VerifyError> {
    enc.decode_without_bom_handling_and_without_replacement(bytes)
        .map(|c| c.into_owned())
        .ok_or_else(|| VerifyError::Malformed(format!("invalid {} text", enc.name())))
}

fn encode_key(enc: &'static encoding_rs::Encoding, key: &[u8]) -> Vec<u8> {
    if key.is_ascii() {
        return key.to_vec();
    }
    match std::str::from_utf8(key) {
        Ok(s) => enc.encode(s).0.into_owned(),
        Err(_) => key.to_vec(),
    }
}

fn non_empty(v: Option<&str>, name: &str) -> Result<String, VerifyError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(VerifyError::Malformed(format!("missing {name}"))),
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Scan a JSON text whose root is an object; return each member's (unescaped-free)
/// key and the byte span of its raw value. Keys with escapes are returned raw.
/// Returns `None` on any syntax problem. Values are validated later by serde.
fn top_level_members(s: &str) -> Option<Vec<(&str, (usize, usize))>> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(out);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let kend = string_end(b, i)?;
        let key = &s[i + 1..kend - 1];
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let vstart = i;
        let vend = value_end(b, i)?;
        out.push((key, (vstart, vend)));
        i = skip_ws(b, vend);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => {
                return (skip_ws(b, i + 1) == b.len()).then_some(out);
            }
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// `b[i]` is `"`; return the index just past the closing quote.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

// ----------------------------------------------------------------------
// The provider: configuration, HTTP and the mapping to Tollgate's events
// ----------------------------------------------------------------------

use super::outbound::HttpClient;
use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, OrderQuery, Payer,
    PaymentCreator, ProviderError, ProviderEvent, QueryResult,
};
use crate::clock::Clock;
use crate::config::{ConfigError as EnvError, ProviderVars};
use crate::domain::{Catalog, Order, OrderId};
use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::Full;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const NAME: &str = "alipay";

/// Alipay as a [`Provider`]. Paying needs no call to Alipay: the client gets a signed
/// `alipay.trade.app.pay` order string (channel `app`, the default) or a signed gateway URL
/// (`page` for desktop, `wap` for mobile browsers).
pub struct Alipay {
    cfg: AlipayConfig,
    notify_url: String,
    return_url: Option<String>,
    titles: BTreeMap<String, String>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Alipay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alipay")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Alipay {
    /// Reads the `ALIPAY_*` variables; a bad one stops start-up, named.
    pub fn from_vars(
        vars: &ProviderVars,
        catalog: &Catalog,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EnvError> {
        let named = |name: &'static str| move |e: ConfigError| crate::config::err(name, e.0);
        let app_id = vars.require("ALIPAY_APP_ID")?;
        if !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::config::err("ALIPAY_APP_ID", "must be digits"));
        }
        let seller_id = vars.get("ALIPAY_SELLER_ID");
        if seller_id.is_some_and(|s| !s.bytes().all(|b| b.is_ascii_digit())) {
            return Err(crate::config::err(
                "ALIPAY_SELLER_ID",
                "must be digits (2088…)",
            ));
        }
        let private_key = vars.require("ALIPAY_APP_PRIVATE_KEY")?;
        RsaPrivateKey::from_pem_or_base64(private_key).map_err(named("ALIPAY_APP_PRIVATE_KEY"))?;
        let public_key = vars.require("ALIPAY_PUBLIC_KEY")?;
        RsaPublicKey::from_pem_or_base64(public_key).map_err(named("ALIPAY_PUBLIC_KEY"))?;
        let gateway = super::outbound::base_url(vars, "ALIPAY_GATEWAY_URL", GATEWAY_PROD)?;
        let cfg = AlipayConfig::new(app_id, seller_id, private_key, public_key)
            .map_err(named("ALIPAY_APP_ID"))?
            .with_gateway(&gateway);
        let url = |name: &'static str| -> Result<Option<String>, EnvError> {
            match vars.get(name) {
                None => Ok(None),
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    Ok(Some(u.to_owned()))
                }
                Some(_) => Err(crate::config::err(name, "must be an http(s) URL")),
            }
        };
        let notify_url = url("ALIPAY_NOTIFY_URL")?.ok_or_else(|| {
            crate::config::err("ALIPAY_NOTIFY_URL", "required by an enabled provider")
        })?;
        Ok(Alipay {
            cfg,
            notify_url,
            return_url: url("ALIPAY_RETURN_URL")?,
            titles: catalog
                .products()
                .iter()
                .map(|p| (p.id.clone(), p.title.clone()))
                .collect(),
            http,
            clock,
        })
    }

    async fn gateway(&self, req: GatewayRequest) -> Result<Bytes, ProviderError> {
        let http_req = http::Request::builder()
            .method("POST")
            .uri(&req.url)
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .header(header::USER_AGENT, "tollgate")
            .body(Full::new(Bytes::from(req.form_body)))
            .map_err(|e| ProviderError::Refused(format!("building request: {e}")))?;
        let reply = self.http.send(http_req).await?;
        if reply.status.is_success() {
            Ok(reply.body)
        } else if reply.status.is_client_error() && reply.status != StatusCode::TOO_MANY_REQUESTS {
            Err(ProviderError::Refused(format!(
                "HTTP {}",
                reply.status.as_u16()
            )))
        } else {
            Err(ProviderError::Unavailable(format!(
                "HTTP {}",
                reply.status.as_u16()
            )))
        }
    }
}

/// Gateway-level "service unavailable" (code 20000) is worth retrying; other codes are not.
fn gateway_error(code: &str, sub_code: Option<&str>) -> ProviderError {
    let detail = format!("code {code} {}", sub_code.unwrap_or(""));
    if code == "20000" || sub_code.is_some_and(|s| s.ends_with("SYSTEM_ERROR")) {
        ProviderError::Unavailable(detail)
    } else {
        ProviderError::Refused(detail)
    }
}

fn content_type_charset(req: &CallbackRequest) -> Option<&str> {
    req.header("content-type")?
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[async_trait::async_trait]
impl PaymentCreator for Alipay {
    fn check_request(&self, channel: Option<&str>, _payer: &Payer) -> Result<(), String> {
        match channel.unwrap_or("app") {
            "app" | "page" | "wap" => Ok(()),
            other => Err(format!(
                "channel {other:?} is not one of app, page, wap for alipay"
            )),
        }
    }

    async fn payment_params(
        &self,
        order: &Order,
        _payer: &Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        if order.amount.currency != Currency::CNY {
            return Err(ProviderError::Refused("Alipay charges CNY here".into()));
        }
        let req = OrderRequest {
            out_trade_no: order.order_id.to_string(),
            subject: self
                .titles
                .get(&order.product_id)
                .unwrap_or(&order.product_id)
                .chars()
                .take(256)
                .collect(),
            amount_fen: order.amount.amount,
            // The buyer can pay exactly as long as our order waits for the money.
            expiry: Some(Expiry::At(order.expires_at)),
        };
        let now = self.clock.now();
        let refused = |e: BuildError| ProviderError::Refused(e.to_string());
        let ret = self.return_url.as_deref();
        Ok(match order.channel.as_deref().unwrap_or("app") {
            "page" => {
                json!({ "pay_url": self.cfg.page_pay_url(&req, &self.notify_url, ret, now).map_err(refused)? })
            }
            "wap" => {
                json!({ "pay_url": self.cfg.wap_pay_url(&req, &self.notify_url, ret, now).map_err(refused)? })
            }
            _ => {
                json!({ "order_string": self.cfg.app_pay_order_string(&req, &self.notify_url, now).map_err(refused)? })
            }
        })
    }
}

impl CallbackVerifier for Alipay {
    fn verify_callback(
        &self,
        req: &CallbackRequest,
        _now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection> {
        let n = self
            .cfg
            .verify_notify(&req.body, content_type_charset(req))
            .map_err(CallbackRejection::from)?;
        let order_id = OrderId::parse(&n.out_trade_no).map_err(|_| {
            CallbackRejection::from(VerifyError::Malformed("out_trade_no is not ours".into()))
        })?;
        let amount = Money::new(n.amount_minor, Currency::CNY)
            .map_err(|_| CallbackRejection::from(VerifyError::Malformed("total_amount".into())))?;
        match n.kind {
            NotificationKind::Paid => Ok(Some(ProviderEvent::Paid {
                order_id,
                provider_txn_id: n.provider_txn_id,
                amount,
                paid_at: n.occurred_at,
            })),
            // TRADE_CLOSED means "closed unpaid" or "refunded"; only the latter carries a
            // refund_fee. Whether the refund ends access is the service's rule.
            NotificationKind::Closed => match n.refunded_minor {
                Some(refunded) => Ok(Some(ProviderEvent::Refunded {
                    order_id,
                    provider_txn_id: n.provider_txn_id,
                    refunded: Money::new(refunded, Currency::CNY).map_err(|_| {
                        CallbackRejection::from(VerifyError::Malformed("refund_fee".into()))
                    })?,
                    order_total: amount,
                })),
                None => {
                    tracing::info!(order_id = %order_id, "Alipay trade closed unpaid: acknowledged");
                    Ok(None)
                }
            },
            // WAIT_BUYER_PAY: genuine, nothing happened yet.
            NotificationKind::Pending | NotificationKind::Refunded => Ok(None),
        }
    }

    fn acknowledge(&self) -> CallbackAnswer {
        CallbackAnswer::text(StatusCode::OK, NOTIFY_SUCCESS_BODY)
    }

    fn refuse(&self, status: StatusCode, _reason: &str) -> CallbackAnswer {
        // Alipay reads only the body: anything but `success` is retried later.
        CallbackAnswer::text(status, NOTIFY_FAILURE_BODY)
    }
}

#[async_trait::async_trait]
impl OrderQuery for Alipay {
    async fn query(&self, order: &Order) -> Result<QueryResult, ProviderError> {
        let req = self
            .cfg
            .query_request(order.order_id.as_str(), self.clock.now())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let body = self.gateway(req).await?;
        let outcome = self
            .cfg
            .parse_query_response(&body)
            .map_err(|e| ProviderError::Unavailable(format!("query answer: {e}")))?;
        Ok(match outcome {
            QueryOutcome::NotExist => QueryResult::NotPaid,
            QueryOutcome::Error { code, sub_code, .. } => {
                return Err(gateway_error(&code, sub_code.as_deref()))
            }
            QueryOutcome::Found {
                status,
                out_trade_no,
                trade_no,
                total_amount_fen,
                paid_at,
                ..
            } => {
                if out_trade_no != order.order_id.as_str() {
                    return Err(ProviderError::Unavailable(
                        "query answer names another order".into(),
                    ));
                }
                match status {
                    TradeStatus::WaitBuyerPay => QueryResult::NotPaid,
                    TradeStatus::TradeClosed => QueryResult::Closed,
                    TradeStatus::TradeSuccess | TradeStatus::TradeFinished => {
                        QueryResult::Paid(ProviderEvent::Paid {
                            order_id: order.order_id.clone(),
                            provider_txn_id: trade_no,
                            amount: Money::new(total_amount_fen, Currency::CNY).map_err(|_| {
                                ProviderError::Unavailable("query answer amount".into())
                            })?,
                            paid_at,
                        })
                    }
                }
            }
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ProviderError> {
        let req = self
            .cfg
            .close_request(order.order_id.as_str(), self.clock.now())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let body = self.gateway(req).await?;
        match self
            .cfg
            .parse_close_response(&body)
            .map_err(|e| ProviderError::Unavailable(format!("close answer: {e}")))?
        {
            // Never opened by a buyer: nothing exists at Alipay that could be paid.
            CloseOutcome::Closed | CloseOutcome::NotExist => Ok(()),
            CloseOutcome::Error { code, sub_code, .. } => {
                Err(gateway_error(&code, sub_code.as_deref()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::rsa::testkeys;

    const APP_ID: &str = "2021001144680325";
    const SELLER: &str = "2088031940831575";
    const PKCS1_KEY: &str = include_str!("testdata/alipay_app_key_pkcs1.pem");

    struct Fx {
        cfg: AlipayConfig,
        /// plays Alipay's private key
        alipay_sk: RsaPrivateKey,
        app_pk: RsaPublicKey,
    }

    fn fx() -> Fx {
        let (app_sk, app_pk) = testkeys::rsa_pem(0);
        let (ali_sk, ali_pk) = testkeys::rsa_pem(2);
        // Alipay console form: bare base64 public key.
        let bare: String = ali_pk.lines().filter(|l| !l.starts_with("-----")).collect();
        Fx {
            cfg: AlipayConfig::new(APP_ID, Some(SELLER), &app_sk, &bare).unwrap(),
            alipay_sk: RsaPrivateKey::from_pem_or_base64(&ali_sk).unwrap(),
            app_pk: RsaPublicKey::from_pem_or_base64(&app_pk).unwrap(),
        }
    }

    /// Build a notify body as Alipay does: check content in `enc`, values
    /// percent-encoded from `enc` bytes.
    fn notify_body(
        f: &Fx,
        params: &[(&str, &str)],
        enc: &'static encoding_rs::Encoding,
    ) -> Vec<u8> {
        let mut sorted: Vec<(&str, &str)> = params
            .iter()
            .copied()
            .filter(|(k, v)| *k != "sign_type" && !v.is_empty())
            .collect();
        sorted.sort();
        let content = sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let sig = f
            .alipay_sk
            .sign_sha256_b64(&enc.encode(&content).0)
            .unwrap();
        let mut all: Vec<(&str, String)> =
            params.iter().map(|(k, v)| (*k, v.to_string())).collect();
        all.push(("sign", sig));
        let mut body = String::new();
        for (i, (k, v)) in all.iter().enumerate() {
            if i > 0 {
                body.push('&');
            }
            body.push_str(k);
            body.push('=');
            body.extend(form_urlencoded::byte_serialize(&enc.encode(v).0));
        }
        body.into_bytes()
    }

    fn base_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("gmt_create", "2020-03-25 10:59:32"),
            ("charset", "utf-8"),
            ("gmt_payment", "2020-03-25 10:59:38"),
            ("notify_time", "2020-03-25 10:59:38"),
            ("subject", "C++ live: a+b c"),
            ("buyer_id", "2088002582656381"),
            ("body", ""),
            ("invoice_amount", "12.00"),
            ("version", "1.0"),
            ("notify_id", "2020032500222105938056380529774436"),
            (
                "fund_bill_list",
                r#"[{"amount":"12.00","fundChannel":"PCREDIT"}]"#,
            ),
            ("notify_type", "trade_status_sync"),
            ("out_trade_no", "TEST171"),
            ("total_amount", "12.00"),
            ("trade_status", "TRADE_SUCCESS"),
            ("trade_no", "2020032522001456380542497258"),
            ("auth_app_id", APP_ID),
            ("receipt_amount", "12.00"),
            ("app_id", APP_ID),
            ("sign_type", "RSA2"),
            ("seller_id", SELLER),
        ]
    }

    fn with(
        mut p: Vec<(&'static str, &'static str)>,
        k: &'static str,
        v: &'static str,
    ) -> Vec<(&'static str, &'static str)> {
        if let Some(e) = p.iter_mut().find(|(pk, _)| *pk == k) {
            e.1 = v;
        } else {
            p.push((k, v));
        }
        p
    }

    #[test]
    fn keys_in_all_forms_and_debug_redacted() {
        let (sk, pk) = testkeys::rsa_pem(0);
        assert!(AlipayConfig::new(APP_ID, None, PKCS1_KEY, &pk).is_ok());
        let bare_pkcs1: String = PKCS1_KEY
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(AlipayConfig::new(APP_ID, None, &bare_pkcs1, &pk).is_ok());
        let bare_pkcs8: String = sk.lines().filter(|l| !l.starts_with("-----")).collect();
        let c = AlipayConfig::new(APP_ID, None, &bare_pkcs8, &pk).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains(&bare_pkcs8[..40]) && d.contains("redacted"));
        assert!(AlipayConfig::new("abc", None, &sk, &pk).is_err());
        assert!(AlipayConfig::new(APP_ID, None, "garbage", &pk).is_err());
    }

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
            .verify_sha256_b64(sign_content(&rest).as_bytes(), sign));
        assert!(sign_content(&rest).contains("sign_type=RSA2"));
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
        // sign first, whitespace around
        let sig = f.alipay_sk.sign_sha256_b64(node.as_bytes()).unwrap();
        let body2 =
            format!("{{ \"sign\" : \"{sig}\" ,\n \"alipay_trade_query_response\" : {node} }}");
        assert!(f.cfg.parse_query_response(body2.as_bytes()).is_ok());
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
        // malformed
        for junk in [
            "",
            "{",
            "[]",
            "{\"a\":1",
            "{\"alipay_trade_query_response\":1,\"sign\":\"x\"}",
            "{\"x\":{}} trailing",
            "\u{0}",
        ] {
            assert!(
                f.cfg.parse_query_response(junk.as_bytes()).is_err(),
                "{junk:?}"
            );
        }
        let dup = format!("{{\"alipay_trade_query_response\":{node},\"alipay_trade_query_response\":{node},\"sign\":\"{sig}\"}}");
        assert!(matches!(
            f.cfg.parse_query_response(dup.as_bytes()),
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
        // a query node is not a close node
        assert!(f
            .cfg
            .parse_close_response(signed_response(&f, "alipay_trade_query_response", ok).as_bytes())
            .is_err());
    }
}
