//! WeChat Pay API v3 wire format (direct merchant / 直连商户).
//!
//! The wire format (everything above the provider section) is pure: no network, no clock
//! (callers pass `now` in unix seconds), no panics on any input. [`WechatPay`] at the end
//! adds the HTTP calls and maps notifications to Tollgate's events.
//!
//! Sources checked (stored copies via the search tool):
//! - Request signature, 5-line string `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, URL without host
//!   but with `?query`, GET body empty:
//!   <https://pay.weixin.qq.com/wiki/doc/api_external/en/wechatpay/wechatpay4_0.shtml>,
//!   <https://heiqu.com/zgdfzs_2.html>
//! - Response / callback verification, 3-line string `timestamp\nnonce\nbody\n` (body empty for 204),
//!   key selected by `Wechatpay-Serial`:
//!   <https://pay.weixin.qq.com/wiki/doc/apiv3/wechatpay/wechatpay4_1.shtml>
//! - `Wechatpay-Serial` is either a platform-certificate serial or a WeChat Pay public key id
//!   (`PUB_KEY_ID_...`); during migration both may appear on callbacks:
//!   <https://pay.weixin.qq.com/docs/merchant/products/notification/introduction.html>,
//!   <https://developers.weixin.qq.com/community/develop/doc/0004e8c40b09182972936db6d69400>
//! - Callback decryption AEAD_AES_256_GCM, key = APIv3 key (32 bytes), nonce 12 bytes,
//!   associated_data may be empty, ciphertext base64 with the 16-byte tag appended:
//!   <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter3_2_5.shtml>
//! - JSAPI paySign over `appId\ntimeStamp\nnonceStr\npackage\n`, signType "RSA" not signed:
//!   <https://pay.weixin.qq.com/wiki/doc/api_external/ch/apis/chapter4_1_25.shtml>
//! - APP sign over `appid\ntimestamp\nnoncestr\nprepayid\n`, package fixed `Sign=WXPay`:
//!   <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter5_1_6.shtml>,
//!   <https://pay.weixin.qq.com/doc/v3/merchant/4012265144>
//! - Query by out_trade_no `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=`,
//!   trade_state SUCCESS/REFUND/NOTPAY/CLOSED/REVOKED/USERPAYING/PAYERROR:
//!   <https://pay.weixin.qq.com/docs/merchant/apis/query-order/direct-jsons/query-by-out-trade-no.html>
//! - Callback answer: HTTP 200/204 = received; 4xx/5xx (+ `{"code":"FAIL","message":..}`) = retry.
//!   HTTP status wins over body:
//!   <https://developers.weixin.qq.com/community/pay/doc/000e4c3d4a83607545eb97f5856c00>,
//!   <https://developers.weixin.qq.com/community/pay/doc/00068e32ce46184b499b3d28c57800>
//! - Refund callback fields (mchid, out_trade_no, transaction_id, out_refund_no, refund_id,
//!   refund_status SUCCESS/CLOSED/ABNORMAL, success_time, amount.total/refund/payer_total/payer_refund):
//!   <https://developer.work.weixin.qq.com/document/path/97338> (same schema as the Pay v3 refund notify)

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::china_time::format_rfc3339_cst;
use super::notification::{NotificationKind, VerifiedNotification};
use super::rsa::{normalize_serial, KeyError as ConfigError, RsaPrivateKey, RsaPublicKey};
use super::wire_error::{BuildError, VerifyError};
use crate::crypto::b64_decode;
use crate::domain::time::parse_rfc3339;

/// Default accepted clock skew for `Wechatpay-Timestamp`.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;
/// The only signature scheme WeChat Pay v3 uses with RSA keys.
pub const SIGNATURE_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// Production API host (the caller does the HTTP).
pub const API_BASE: &str = "https://api.mch.weixin.qq.com";

/// Merchant configuration. `Debug` never prints the APIv3 key or private key.
pub struct WechatConfig {
    pub mch_id: String,
    pub app_id: String,
    pub merchant_serial: String,
    api_v3_key: [u8; 32],
    merchant_key: RsaPrivateKey,
    /// Key: uppercase serial (certificate serials without leading zeros) or
    /// `PUB_KEY_ID_...` as given.
    platform_keys: BTreeMap<String, RsaPublicKey>,
    /// Accepted |now - Wechatpay-Timestamp| in seconds.
    pub max_skew_secs: i64,
}

impl fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatConfig")
            .field("mch_id", &self.mch_id)
            .field("app_id", &self.app_id)
            .field("merchant_serial", &self.merchant_serial)
            .field("api_v3_key", &"<redacted>")
            .field("merchant_key", &self.merchant_key)
            .field(
                "platform_serials",
                &self.platform_keys.keys().collect::<Vec<_>>(),
            )
            .field("max_skew_secs", &self.max_skew_secs)
            .finish()
    }
}

fn serial_key(s: &str) -> String {
    let t = s.trim();
    if t.get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("PUB_KEY_ID_"))
    {
        t.to_ascii_uppercase()
    } else {
        normalize_serial(t)
    }
}

impl WechatConfig {
    /// Build a configuration.
    ///
    /// * `api_v3_key`: the 32-character APIv3 key exactly as set in the merchant console.
    /// * `merchant_private_key_pem`: `apiclient_key.pem` (PKCS#8; PKCS#1 also accepted).
    /// * `platform_keys_env`: `serial=PEM;serial=PEM` — see [`parse_platform_keys`].
    pub fn new(
        mch_id: &str,
        app_id: &str,
        api_v3_key: &str,
        merchant_serial: &str,
        merchant_private_key_pem: &str,
        platform_keys_env: &str,
    ) -> Result<Self, ConfigError> {
        let key_bytes = api_v3_key.as_bytes();
        let api_v3_key: [u8; 32] = key_bytes.try_into().map_err(|_| {
            ConfigError(format!(
                "api_v3_key must be 32 bytes, got {}",
                key_bytes.len()
            ))
        })?;
        for (name, v) in [
            ("mch_id", mch_id),
            ("app_id", app_id),
            ("merchant_serial", merchant_serial),
        ] {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ConfigError(format!(
                    "{name} must be non-empty [A-Za-z0-9_]"
                )));
            }
        }
        let merchant_key = RsaPrivateKey::from_pem_or_base64(merchant_private_key_pem)?;
        let platform_keys = parse_platform_keys(platform_keys_env)?;
        if platform_keys.is_empty() {
            return Err(ConfigError("no WeChat Pay platform keys configured".into()));
        }
        Ok(WechatConfig {
            mch_id: mch_id.to_string(),
            app_id: app_id.to_string(),
            merchant_serial: merchant_serial.to_string(),
            api_v3_key,
            merchant_key,
            platform_keys,
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        })
    }

    /// Serials / public key ids that can be verified.
    pub fn platform_serials(&self) -> Vec<String> {
        self.platform_keys.keys().cloned().collect()
    }

    // ------------------------------------------------------------------
    // Request signing
    // ------------------------------------------------------------------

    /// `Authorization` header value for an API request.
    ///
    /// `url_path_with_query` is the absolute URL minus scheme and host, with
    /// `?query` if any (e.g. `/v3/pay/transactions/out-trade-no/X?mchid=1`).
    /// `body` is exactly the bytes that will be sent (empty for GET).
    pub fn authorization_header(
        &self,
        method: &str,
        url_path_with_query: &str,
        body: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<String, BuildError> {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(BuildError::InvalidInput(
                "method must be uppercase ASCII".into(),
            ));
        }
        if !url_path_with_query.starts_with('/') || url_path_with_query.contains(['\n', '\r', ' '])
        {
            return Err(BuildError::InvalidInput(
                "url must be a path starting with '/'".into(),
            ));
        }
        check_nonce(nonce)?;
        let msg = format!("{method}\n{url_path_with_query}\n{timestamp}\n{nonce}\n{body}\n");
        let signature = self.merchant_key.sign_sha256_b64(msg.as_bytes())?;
        Ok(format!(
            "{SIGNATURE_SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mch_id, self.merchant_serial
        ))
    }

    // ------------------------------------------------------------------
    // Prepay
    // ------------------------------------------------------------------

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

    // ------------------------------------------------------------------
    // Query / close
    // ------------------------------------------------------------------

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
        let success_time = match v.get("success_time").and_then(Value::as_str) {
            Some(s) => Some(
                parse_rfc3339(s).ok_or_else(|| VerifyError::Malformed("success_time".into()))?,
            ),
            None => None,
        };
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

    // ------------------------------------------------------------------
    // Verification
    // ------------------------------------------------------------------

    /// Verify the signature of an API response or a callback.
    ///
    /// Message: `Wechatpay-Timestamp\nWechatpay-Nonce\nBODY\n` over the raw
    /// body bytes exactly as received (empty for 204).
    pub fn verify_signature(
        &self,
        h: &SignatureHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        if let Some(t) = h.signature_type {
            if t.trim() != SIGNATURE_SCHEME {
                return Err(VerifyError::Unsupported(format!("signature type {t}")));
            }
        }
        let ts_str = h.timestamp.trim();
        if ts_str.is_empty() || ts_str.len() > 12 || !ts_str.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::Malformed("Wechatpay-Timestamp".into()));
        }
        let ts: i64 = ts_str
            .parse()
            .map_err(|_| VerifyError::Malformed("Wechatpay-Timestamp".into()))?;
        if h.nonce.is_empty() || h.nonce.contains(['\n', '\r']) {
            return Err(VerifyError::Malformed("Wechatpay-Nonce".into()));
        }
        let key = self
            .platform_keys
            .get(&serial_key(h.serial))
            .ok_or_else(|| VerifyError::UnknownKey(h.serial.to_string()))?;
        if (now - ts).abs() > self.max_skew_secs {
            return Err(VerifyError::StaleTimestamp);
        }
        let sig = b64_decode(h.signature.trim()).ok_or(VerifyError::BadSignature)?;
        let mut msg = Vec::with_capacity(body.len() + 64);
        msg.extend_from_slice(ts_str.as_bytes());
        msg.push(b'\n');
        msg.extend_from_slice(h.nonce.as_bytes());
        msg.push(b'\n');
        msg.extend_from_slice(body);
        msg.push(b'\n');
        if key.verify_sha256(&msg, &sig) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    /// Decrypt an `AEAD_AES_256_GCM` resource (callbacks, `/v3/certificates`).
    pub fn decrypt_resource(
        &self,
        algorithm: &str,
        ciphertext_b64: &str,
        nonce: &str,
        associated_data: &str,
    ) -> Result<Vec<u8>, VerifyError> {
        if algorithm != "AEAD_AES_256_GCM" {
            return Err(VerifyError::Unsupported(format!("algorithm {algorithm}")));
        }
        let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes())
            .map_err(|_| VerifyError::Malformed("resource.nonce must be 12 bytes".into()))?;
        let mut buf = b64_decode(ciphertext_b64)
            .ok_or_else(|| VerifyError::Malformed("resource.ciphertext base64".into()))?;
        if buf.len() < AES_256_GCM.tag_len() {
            return Err(VerifyError::Malformed(
                "resource.ciphertext too short".into(),
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, &self.api_v3_key)
            .map_err(|_| VerifyError::Malformed("aead key".into()))?;
        let plain = LessSafeKey::new(key)
            .open_in_place(nonce, Aad::from(associated_data.as_bytes()), &mut buf)
            .map_err(|_| {
                VerifyError::Malformed(
                    "resource decryption failed (wrong APIv3 key or corrupted ciphertext)".into(),
                )
            })?;
        Ok(plain.to_vec())
    }

    /// Verify, decrypt and interpret a payment / refund callback.
    ///
    /// Mapping: `TRANSACTION.SUCCESS` → `Paid` (amount = amount.total);
    /// `REFUND.SUCCESS` → `Refunded`, `REFUND.ABNORMAL` → `Pending`,
    /// `REFUND.CLOSED` → `Closed` (the *refund* closed; the order is still
    /// paid!). For refund events `amount_minor` is `amount.refund`; the order
    /// total is in `raw.resource.amount.total`. `raw.event_type` is always set.
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
        let raw = json!({
            "notification_id": env.id,
            "event_type": env.event_type,
            "create_time": env.create_time,
            "summary": env.summary,
            "original_type": res.original_type,
            "resource": r,
        });
        let amount = r.get("amount");
        match env.event_type.as_str() {
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
                let total = opt_i64(amount, "total")?
                    .ok_or_else(|| VerifyError::Malformed("amount.total".into()))?;
                let success_time = match r.get("success_time").and_then(Value::as_str) {
                    Some(s) => Some(
                        parse_rfc3339(s)
                            .ok_or_else(|| VerifyError::Malformed("success_time".into()))?,
                    ),
                    None => create_time,
                };
                Ok(VerifiedNotification {
                    kind: NotificationKind::Paid,
                    out_trade_no: req_str(&r, "out_trade_no")?,
                    provider_txn_id: req_str(&r, "transaction_id")?,
                    amount_minor: total,
                    refunded_minor: None,
                    currency: currency_of(amount),
                    occurred_at: success_time,
                    event: env.event_type.clone(),
                    raw,
                })
            }
            "REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED" => {
                let kind = match env.event_type.as_str() {
                    "REFUND.SUCCESS" => NotificationKind::Refunded,
                    "REFUND.ABNORMAL" => NotificationKind::Pending,
                    _ => NotificationKind::Closed,
                };
                let refund = opt_i64(amount, "refund")?
                    .ok_or_else(|| VerifyError::Malformed("amount.refund".into()))?;
                let total = opt_i64(amount, "total")?
                    .ok_or_else(|| VerifyError::Malformed("amount.total".into()))?;
                let occurred = match r.get("success_time").and_then(Value::as_str) {
                    Some(s) => Some(
                        parse_rfc3339(s)
                            .ok_or_else(|| VerifyError::Malformed("success_time".into()))?,
                    ),
                    None => create_time,
                };
                Ok(VerifiedNotification {
                    kind,
                    out_trade_no: req_str(&r, "out_trade_no")?,
                    provider_txn_id: req_str(&r, "transaction_id")?,
                    amount_minor: total,
                    refunded_minor: Some(refund),
                    currency: currency_of(amount),
                    occurred_at: occurred,
                    event: env.event_type.clone(),
                    raw,
                })
            }
            other => Err(VerifyError::Unsupported(format!("event_type {other}"))),
        }
    }
}

// ----------------------------------------------------------------------
// Callback answers
// ----------------------------------------------------------------------

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

/// Error body of a non-2xx API answer (`{"code":"ORDER_NOT_EXIST","message":..}`).
pub fn parse_api_error(body: &[u8]) -> Option<ApiError> {
    serde_json::from_slice(body).ok()
}

// ----------------------------------------------------------------------
// Types
// ----------------------------------------------------------------------

/// The four `Wechatpay-*` headers (and optional `Wechatpay-Signature-Type`).
/// Header names are case-insensitive in HTTP; the caller looks them up.
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    pub signature: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub serial: &'a str,
    pub signature_type: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeType {
    Jsapi { openid: String },
    App,
    Native,
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

/// A request ready to be sent to [`API_BASE`]; sign it with
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

// ----------------------------------------------------------------------
// Platform key env parsing
// ----------------------------------------------------------------------

/// Parse `serial=PEM;serial=PEM`. Each PEM is a platform `CERTIFICATE`
/// (its serial must equal the declared one) or a `PUBLIC KEY` (for
/// `PUB_KEY_ID_...`). Literal `\n` escapes are accepted inside the PEM.
pub fn parse_platform_keys(env: &str) -> Result<BTreeMap<String, RsaPublicKey>, ConfigError> {
    let mut out = BTreeMap::new();
    for (i, entry) in env.split(';').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let (serial, pem) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError(format!("platform key #{i}: expected serial=PEM")))?;
        let serial = serial.trim();
        if serial.is_empty()
            || !serial
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ConfigError(format!("platform key #{i}: invalid serial")));
        }
        let (key, cert_serial) = RsaPublicKey::from_pem_or_base64_with_cert_serial(pem)
            .map_err(|e| ConfigError(format!("platform key {serial}: {}", e.0)))?;
        let k = serial_key(serial);
        if let Some(cs) = cert_serial {
            if cs != k {
                return Err(ConfigError(format!(
                    "platform key {serial}: certificate serial is {cs}"
                )));
            }
        }
        if out.insert(k, key).is_some() {
            return Err(ConfigError(format!("platform key {serial}: duplicate")));
        }
    }
    Ok(out)
}

// ----------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------

fn check_nonce(nonce: &str) -> Result<(), BuildError> {
    if nonce.is_empty() || nonce.len() > 32 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BuildError::InvalidInput(
            "nonce must be 1..=32 ASCII alphanumerics".into(),
        ));
    }
    Ok(())
}

fn check_token(name: &str, v: &str) -> Result<(), BuildError> {
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        return Err(BuildError::InvalidInput(format!("{name} invalid")));
    }
    Ok(())
}

/// out_trade_no: 6..=32 of `[0-9A-Za-z_\-*]` (WeChat's documented charset).
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

fn parse_json(body: &[u8]) -> Result<Value, VerifyError> {
    serde_json::from_slice(body).map_err(|_| VerifyError::Malformed("JSON".into()))
}

fn req_str(v: &Value, key: &str) -> Result<String, VerifyError> {
    match v.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(VerifyError::Malformed(format!("missing {key}"))),
    }
}

fn opt_i64(obj: Option<&Value>, key: &str) -> Result<Option<i64>, VerifyError> {
    match obj.and_then(|a| a.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(VerifyError::Malformed(format!("amount.{key}"))),
        },
    }
}

fn currency_of(amount: Option<&Value>) -> String {
    amount
        .and_then(|a| a.get("currency"))
        .and_then(Value::as_str)
        .unwrap_or("CNY")
        .to_string()
}

// ----------------------------------------------------------------------
// The provider: configuration, HTTP and the mapping to Tollgate's events
// ----------------------------------------------------------------------

use super::outbound::{HttpClient, HttpReply};
use super::{
    CallbackAnswer, CallbackRejection, CallbackRequest, CallbackVerifier, OrderQuery, Payer,
    PaymentCreator, ProviderError, ProviderEvent, QueryResult as TollgateQuery,
};
use crate::clock::Clock;
use crate::config::{ConfigError as EnvError, ProviderVars};
use crate::domain::{Catalog, Currency, Money, Order, OrderId};
use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::Full;
use std::sync::Arc;

pub const NAME: &str = "wechat";

/// WeChat Pay v3 as a [`Provider`]. The `channel` of an order picks the product:
/// `app` (APP SDK), `jsapi` (Official Account / Mini Program, needs the payer's openid)
/// or `native` (QR code, the default).
pub struct WechatPay {
    cfg: WechatConfig,
    base_url: String,
    /// The path part of `base_url` ("" for a bare host), part of every signed URL.
    base_path: String,
    notify_url: String,
    /// Product titles: WeChat shows the `description` to the payer.
    titles: BTreeMap<String, String>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for WechatPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPay")
            .field("cfg", &self.cfg)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl WechatPay {
    /// Reads the `WECHATPAY_*` variables; a bad one stops start-up, named.
    pub fn from_vars(
        vars: &ProviderVars,
        catalog: &Catalog,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EnvError> {
        let named = |name: &'static str| move |e: ConfigError| crate::config::err(name, e.0);
        let mch_id = vars.require("WECHATPAY_MCH_ID")?;
        let app_id = vars.require("WECHATPAY_APP_ID")?;
        let serial = vars.require("WECHATPAY_MERCHANT_SERIAL")?;
        let api_v3_key = vars.require("WECHATPAY_API_V3_KEY")?;
        if api_v3_key.len() != 32 {
            return Err(crate::config::err(
                "WECHATPAY_API_V3_KEY",
                "must be the 32-character APIv3 key",
            ));
        }
        let merchant_key = vars.require("WECHATPAY_MERCHANT_PRIVATE_KEY")?;
        RsaPrivateKey::from_pem_or_base64(merchant_key)
            .map_err(named("WECHATPAY_MERCHANT_PRIVATE_KEY"))?;
        let platform = vars.require("WECHATPAY_PLATFORM_KEYS")?;
        parse_platform_keys(platform).map_err(named("WECHATPAY_PLATFORM_KEYS"))?;
        let cfg = WechatConfig::new(mch_id, app_id, api_v3_key, serial, merchant_key, platform)
            .map_err(named("WECHATPAY_MCH_ID"))?;
        let notify_url = vars.require("WECHATPAY_NOTIFY_URL")?;
        if !notify_url.starts_with("https://") || notify_url.contains(['?', '#', ' ']) {
            return Err(crate::config::err(
                "WECHATPAY_NOTIFY_URL",
                "must be an https URL without a query (WeChat Pay's rule)",
            ));
        }
        let base_url = super::outbound::base_url(vars, "WECHATPAY_BASE_URL", API_BASE)?;
        // `base_url` checked that it parses as a URI.
        let base_path = base_url
            .parse::<http::Uri>()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .map_err(|_| crate::config::err("WECHATPAY_BASE_URL", "must be an http(s) URL"))?;
        Ok(WechatPay {
            cfg,
            base_url,
            base_path,
            notify_url: notify_url.to_owned(),
            titles: catalog
                .products()
                .iter()
                .map(|p| (p.id.clone(), p.title.clone()))
                .collect(),
            http,
            clock,
        })
    }

    fn trade_type(channel: Option<&str>, payer: &Payer) -> Result<TradeType, String> {
        match channel.unwrap_or("native") {
            "native" => Ok(TradeType::Native),
            "app" => Ok(TradeType::App),
            "jsapi" => match &payer.openid {
                Some(openid) => Ok(TradeType::Jsapi {
                    openid: openid.clone(),
                }),
                None => Err("channel jsapi needs the payer's openid".into()),
            },
            other => Err(format!(
                "channel {other:?} is not one of app, jsapi, native for wechat"
            )),
        }
    }

    /// Signs and sends one API request.
    async fn call(&self, req: PreparedRequest) -> Result<HttpReply, ProviderError> {
        let nonce = super::outbound::nonce();
        // The signature covers the URL path as sent, including any path of the base URL.
        let signed_path = format!("{}{}", self.base_path, req.path);
        let auth = self
            .cfg
            .authorization_header(
                req.method,
                &signed_path,
                &req.body,
                self.clock.now(),
                &nonce,
            )
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let mut b = http::Request::builder()
            .method(req.method)
            .uri(format!("{}{}", self.base_url, req.path))
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "tollgate");
        if req.method != "GET" {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let http_req = b
            .body(Full::new(Bytes::from(req.body)))
            .map_err(|e| ProviderError::Refused(format!("building request: {e}")))?;
        self.http.send(http_req).await
    }

    /// A 2xx answer must be signed by a platform key we hold: anything else could be an
    /// impostor or a proxy's error page, and is treated as "try again later".
    fn check_signed(&self, reply: &HttpReply) -> Result<(), ProviderError> {
        let h = SignatureHeaders {
            signature: reply.header("wechatpay-signature").unwrap_or(""),
            timestamp: reply.header("wechatpay-timestamp").unwrap_or(""),
            nonce: reply.header("wechatpay-nonce").unwrap_or(""),
            serial: reply.header("wechatpay-serial").unwrap_or(""),
            signature_type: reply.header("wechatpay-signature-type"),
        };
        self.cfg
            .verify_signature(&h, &reply.body, self.clock.now())
            .map_err(|e| ProviderError::Unavailable(format!("answer not trusted: {e}")))
    }

    fn error_of(reply: &HttpReply) -> ProviderError {
        let detail = match parse_api_error(&reply.body) {
            Some(e) => format!("{} {}: {}", reply.status.as_u16(), e.code, e.message),
            None => format!("HTTP {}", reply.status.as_u16()),
        };
        if reply.status.is_client_error() && reply.status != StatusCode::TOO_MANY_REQUESTS {
            ProviderError::Refused(detail)
        } else {
            ProviderError::Unavailable(detail)
        }
    }
}

fn malformed(what: &str) -> CallbackRejection {
    VerifyError::Malformed(what.into()).into()
}

/// Client-side pay parameters as JSON, plus the prepay id the client SDK needs too.
fn pay_params_json(p: impl serde::Serialize, prepay_id: &str) -> Result<Value, ProviderError> {
    let mut v = serde_json::to_value(p)
        .map_err(|e| ProviderError::Unavailable(format!("pay parameters: {e}")))?;
    v["prepay_id"] = json!(prepay_id);
    Ok(v)
}

fn money(fen: i64, currency: &str) -> Option<Money> {
    Money::new(fen, Currency::parse(currency).ok()?).ok()
}

#[async_trait::async_trait]
impl PaymentCreator for WechatPay {
    fn prepares_remotely(&self) -> bool {
        true
    }

    fn check_request(&self, channel: Option<&str>, payer: &Payer) -> Result<(), String> {
        Self::trade_type(channel, payer).map(|_| ())
    }

    async fn payment_params(
        &self,
        order: &Order,
        payer: &Payer,
    ) -> Result<serde_json::Value, ProviderError> {
        let trade_type =
            Self::trade_type(order.channel.as_deref(), payer).map_err(ProviderError::Refused)?;
        if order.amount.currency != Currency::CNY {
            return Err(ProviderError::Refused("WeChat Pay charges CNY only".into()));
        }
        let title = self
            .titles
            .get(&order.product_id)
            .unwrap_or(&order.product_id);
        let req = PrepayRequest {
            trade_type: trade_type.clone(),
            out_trade_no: order.order_id.to_string(),
            description: title.chars().take(127).collect(),
            amount_fen: order.amount.amount,
            time_expire: Some(order.expires_at),
            notify_url: self.notify_url.clone(),
        };
        let prepared = self
            .cfg
            .prepay_request(&req)
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let reply = self.call(prepared).await?;
        if !reply.status.is_success() {
            return Err(Self::error_of(&reply));
        }
        self.check_signed(&reply)?;
        let parsed = WechatConfig::parse_prepay_response(&trade_type, &reply.body)
            .map_err(|e| ProviderError::Unavailable(format!("prepay answer: {e}")))?;
        let now = self.clock.now();
        let nonce = super::outbound::nonce();
        let signing = |e: BuildError| ProviderError::Unavailable(e.to_string());
        let mut v = match (&trade_type, parsed) {
            (TradeType::Native, PrepayResponse::CodeUrl(url)) => json!({ "code_url": url }),
            (TradeType::App, PrepayResponse::PrepayId(id)) => {
                let p = self.cfg.app_pay_params(&id, now, &nonce).map_err(signing)?;
                pay_params_json(p, &id)?
            }
            (TradeType::Jsapi { .. }, PrepayResponse::PrepayId(id)) => {
                let p = self
                    .cfg
                    .jsapi_pay_params(&id, now, &nonce)
                    .map_err(signing)?;
                pay_params_json(p, &id)?
            }
            _ => {
                return Err(ProviderError::Unavailable(
                    "prepay answer of the wrong kind".into(),
                ))
            }
        };
        v["trade_type"] = json!(match trade_type {
            TradeType::Native => "NATIVE",
            TradeType::App => "APP",
            TradeType::Jsapi { .. } => "JSAPI",
        });
        Ok(v)
    }
}

impl CallbackVerifier for WechatPay {
    fn verify_callback(
        &self,
        req: &CallbackRequest,
        now: i64,
    ) -> Result<Option<ProviderEvent>, CallbackRejection> {
        let h = |name: &str| req.header(name).ok_or_else(|| malformed(name));
        let headers = SignatureHeaders {
            signature: h("wechatpay-signature")?,
            timestamp: h("wechatpay-timestamp")?,
            nonce: h("wechatpay-nonce")?,
            serial: h("wechatpay-serial")?,
            signature_type: req.header("wechatpay-signature-type"),
        };
        let n = self
            .cfg
            .verify_notification(&headers, &req.body, now)
            .map_err(CallbackRejection::from)?;
        let order_id =
            OrderId::parse(&n.out_trade_no).map_err(|_| malformed("out_trade_no is not ours"))?;
        let amount = money(n.amount_minor, &n.currency).ok_or_else(|| malformed("currency"))?;
        match n.kind {
            NotificationKind::Paid => Ok(Some(ProviderEvent::Paid {
                order_id,
                provider_txn_id: n.provider_txn_id,
                amount,
                paid_at: n.occurred_at,
            })),
            NotificationKind::Refunded => {
                let refunded = n
                    .refunded_minor
                    .and_then(|r| money(r, &n.currency))
                    .ok_or_else(|| malformed("amount.refund"))?;
                Ok(Some(ProviderEvent::Refunded {
                    order_id,
                    provider_txn_id: n.provider_txn_id,
                    refunded,
                    order_total: amount,
                }))
            }
            // REFUND.ABNORMAL / REFUND.CLOSED: the money did not move; nothing to apply.
            NotificationKind::Pending | NotificationKind::Closed => {
                tracing::info!(order_id = %order_id, event = %n.event, "WeChat refund event acknowledged without change");
                Ok(None)
            }
        }
    }

    fn acknowledge(&self) -> CallbackAnswer {
        CallbackAnswer::empty(StatusCode::NO_CONTENT)
    }

    fn refuse(&self, status: StatusCode, reason: &str) -> CallbackAnswer {
        let (status, body) = notify_failure_response(status.as_u16(), reason);
        CallbackAnswer {
            // `notify_failure_response` answers 4xx/5xx only.
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: Some("application/json"),
            body: Bytes::from(body),
        }
    }
}

#[async_trait::async_trait]
impl OrderQuery for WechatPay {
    async fn query(&self, order: &Order) -> Result<TollgateQuery, ProviderError> {
        let prepared = self
            .cfg
            .query_request(order.order_id.as_str())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let reply = self.call(prepared).await?;
        if reply.status == StatusCode::NOT_FOUND
            && parse_api_error(&reply.body).is_some_and(|e| e.code == "ORDER_NOT_EXIST")
        {
            return Ok(TollgateQuery::NotPaid);
        }
        if !reply.status.is_success() {
            return Err(Self::error_of(&reply));
        }
        self.check_signed(&reply)?;
        let q = self
            .cfg
            .parse_query_response(&reply.body)
            .map_err(|e| ProviderError::Unavailable(format!("query answer: {e}")))?;
        if q.out_trade_no != order.order_id.as_str() {
            return Err(ProviderError::Unavailable(
                "query answer names another order".into(),
            ));
        }
        Ok(match q.state {
            // A refunded trade was paid first: settling it lets the refund notice revoke it.
            TradeState::Success | TradeState::Refund => {
                let (Some(txn), Some(total)) = (q.transaction_id, q.amount_total) else {
                    return Err(ProviderError::Unavailable(
                        "paid query answer without transaction_id or amount".into(),
                    ));
                };
                let amount = money(total, q.currency.as_deref().unwrap_or("CNY"))
                    .ok_or_else(|| ProviderError::Unavailable("query answer currency".into()))?;
                TollgateQuery::Paid(ProviderEvent::Paid {
                    order_id: order.order_id.clone(),
                    provider_txn_id: txn,
                    amount,
                    paid_at: q.success_time,
                })
            }
            TradeState::NotPay | TradeState::UserPaying => TollgateQuery::NotPaid,
            TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
                TollgateQuery::Closed
            }
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ProviderError> {
        let prepared = self
            .cfg
            .close_request(order.order_id.as_str())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let reply = self.call(prepared).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(Self::error_of(&reply))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::rsa::testkeys;

    const MCH: &str = "1900000109";
    const APP: &str = "wx8888888888888888";
    const V3KEY: &str = "0123456789abcdef0123456789ABCDEF";
    const CERT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    const PUBKEY_ID: &str = "PUB_KEY_ID_0114232036612025012300000000000000";
    const NOW: i64 = 1_700_000_000;
    const PLATFORM_CERT: &str = include_str!("testdata/wechat_platform_cert.pem");
    const PLATFORM_CERT_KEY: &str = include_str!("testdata/wechat_platform_key.pem");

    struct Fixture {
        cfg: WechatConfig,
        /// signs as the "PUB_KEY_ID" platform key
        pubkey_signer: RsaPrivateKey,
        /// signs as the certificate platform key
        cert_signer: RsaPrivateKey,
        merchant_pub: RsaPublicKey,
    }

    fn fixture() -> Fixture {
        let (merchant_sk, merchant_pk) = testkeys::rsa_pem(0);
        let (wx_sk, wx_pk) = testkeys::rsa_pem(1);
        let env = format!(
            "{CERT_SERIAL}={PLATFORM_CERT};{PUBKEY_ID}={}",
            wx_pk.replace('\n', "\\n")
        );
        let cfg =
            WechatConfig::new(MCH, APP, V3KEY, "MERCHANTSERIAL01", &merchant_sk, &env).unwrap();
        Fixture {
            cfg,
            pubkey_signer: RsaPrivateKey::from_pem_or_base64(&wx_sk).unwrap(),
            cert_signer: RsaPrivateKey::from_pem_or_base64(PLATFORM_CERT_KEY).unwrap(),
            merchant_pub: RsaPublicKey::from_pem_or_base64(&merchant_pk).unwrap(),
        }
    }

    fn encrypt(plain: &[u8], nonce: &str, aad: &str, key: &str) -> String {
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.as_bytes()).unwrap());
        let mut buf = plain.to_vec();
        k.seal_in_place_append_tag(
            Nonce::try_assume_unique_for_key(nonce.as_bytes()).unwrap(),
            Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .unwrap();
        crate::crypto::b64_encode(&buf)
    }

    fn transaction(mchid: &str, appid: &str) -> Value {
        json!({
            "appid": appid, "mchid": mchid, "out_trade_no": "order_123456",
            "transaction_id": "4200000000202401010000000001", "trade_type": "JSAPI",
            "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "attach": "", "success_time": "2024-01-01T12:00:00+08:00",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": 1200, "payer_total": 1200, "currency": "CNY", "payer_currency": "CNY"}
        })
    }

    fn envelope(event: &str, resource_plain: &Value, key: &str) -> Vec<u8> {
        let nonce = "fdasflkja484";
        let aad = "transaction";
        json!({
            "id": "EV-2018022511223320873", "create_time": "2024-01-01T12:00:05+08:00",
            "resource_type": "encrypt-resource", "event_type": event, "summary": "支付成功",
            "resource": {
                "original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": encrypt(resource_plain.to_string().as_bytes(), nonce, aad, key),
                "associated_data": aad, "nonce": nonce
            }
        })
        .to_string()
        .into_bytes()
    }

    fn sign(signer: &RsaPrivateKey, ts: i64, nonce: &str, body: &[u8]) -> String {
        let mut m = format!("{ts}\n{nonce}\n").into_bytes();
        m.extend_from_slice(body);
        m.push(b'\n');
        signer.sign_sha256_b64(&m).unwrap()
    }

    fn headers<'a>(sig: &'a str, ts: &'a str, serial: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders {
            signature: sig,
            timestamp: ts,
            nonce: "593BEC0C930BF1AFEB40B4A08C8FB242",
            serial,
            signature_type: Some(SIGNATURE_SCHEME),
        }
    }

    fn signed(f: &Fixture, body: &[u8], ts: i64) -> String {
        sign(
            &f.pubkey_signer,
            ts,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            body,
        )
    }

    #[test]
    fn debug_redacts_secrets() {
        let f = fixture();
        let d = format!("{:?}", f.cfg);
        assert!(!d.contains(V3KEY) && !d.contains("MII"), "{d}");
        assert!(d.contains("redacted"));
    }

    #[test]
    fn config_rejects_bad_inputs() {
        let (sk, pk) = testkeys::rsa_pem(0);
        let env = format!("{PUBKEY_ID}={pk}");
        assert!(WechatConfig::new(MCH, APP, "short", "S", &sk, &env).is_err());
        assert!(WechatConfig::new(MCH, APP, V3KEY, "S", "nope", &env).is_err());
        assert!(WechatConfig::new(MCH, APP, V3KEY, "S", &sk, "").is_err());
        assert!(WechatConfig::new(MCH, APP, V3KEY, "S", &sk, "noequals").is_err());
        // Certificate serial mismatch is caught.
        let bad = format!("ABCDEF={PLATFORM_CERT}");
        let e = WechatConfig::new(MCH, APP, V3KEY, "S", &sk, &bad).unwrap_err();
        assert!(e.0.contains("certificate serial"), "{e}");
        // Lower-case serial for the cert is accepted.
        let lower = format!("{}={PLATFORM_CERT}", CERT_SERIAL.to_lowercase());
        assert!(WechatConfig::new(MCH, APP, V3KEY, "S", &sk, &lower).is_ok());
        // Error messages never contain key material.
        let e = WechatConfig::new(MCH, APP, V3KEY, "S", &sk[..200], &env).unwrap_err();
        assert!(!e.to_string().contains("MII"));
    }

    #[test]
    fn authorization_header_format_and_signature() {
        let f = fixture();
        let body = r#"{"mchid":"1900000109"}"#;
        let h = f
            .cfg
            .authorization_header(
                "POST",
                "/v3/pay/transactions/out-trade-no/order_123456/close",
                body,
                1554208460,
                "593BEC0C930BF1AFEB40B4A08C8FB242",
            )
            .unwrap();
        assert!(h.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",signature=\""));
        assert!(h.ends_with(",timestamp=\"1554208460\",serial_no=\"MERCHANTSERIAL01\""));
        let sig = h
            .split("signature=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let msg = format!("POST\n/v3/pay/transactions/out-trade-no/order_123456/close\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{body}\n");
        assert!(f.merchant_pub.verify_sha256_b64(msg.as_bytes(), sig));
        assert!(f
            .cfg
            .authorization_header("post", "/v3", "", 1, "n")
            .is_err());
        assert!(f.cfg.authorization_header("GET", "v3", "", 1, "n").is_err());
        assert!(f
            .cfg
            .authorization_header("GET", "/v3", "", 1, "bad\"nonce")
            .is_err());
    }

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
        assert_eq!(
            parse_api_error(br#"{"code":"ORDER_NOT_EXIST","message":"x"}"#)
                .unwrap()
                .code,
            "ORDER_NOT_EXIST"
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
    }

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
        // platform certificate (serial in lower case in the header also works)
        let sig = sign(
            &f.cert_signer,
            NOW - 10,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            &body,
        );
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
            let mut r = json!({
                "mchid": MCH, "out_trade_no": "order_123456", "transaction_id": "4200000000202401010000000001",
                "out_refund_no": "refund_1", "refund_id": "50000000382019052709732678859", "refund_status": status,
                "user_received_account": "支付用户零钱",
                "amount": {"total": 1200, "refund": 500, "payer_total": 1200, "payer_refund": 500}
            });
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
    }

    #[test]
    fn rejections() {
        let f = fixture();
        let body = envelope("TRANSACTION.SUCCESS", &transaction(MCH, APP), V3KEY);
        let ts = NOW.to_string();
        let sig = signed(&f, &body, NOW);
        let ok = headers(&sig, &ts, PUBKEY_ID);
        assert!(f.cfg.verify_notification(&ok, &body, NOW).is_ok());

        // bad signature bytes
        let mut bad = b64_decode(&sig).unwrap();
        bad[10] ^= 1;
        let bad = crate::crypto::b64_encode(&bad);
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&bad, &ts, PUBKEY_ID), &body, NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            f.cfg
                .verify_notification(&headers("!!notbase64", &ts, PUBKEY_ID), &body, NOW),
            Err(VerifyError::BadSignature)
        );
        // every single-byte tamper of the body is caught
        for i in [0, body.len() / 2, body.len() - 1] {
            let mut t = body.clone();
            t[i] ^= 0x01;
            assert_eq!(
                f.cfg.verify_notification(&ok, &t, NOW),
                Err(VerifyError::BadSignature),
                "byte {i}"
            );
        }
        // trailing whitespace / re-serialised JSON is a different body
        let mut t = body.clone();
        t.push(b'\n');
        assert_eq!(
            f.cfg.verify_notification(&ok, &t, NOW),
            Err(VerifyError::BadSignature)
        );
        // nonce and timestamp are signed
        let other_nonce = SignatureHeaders {
            nonce: "other",
            ..ok
        };
        assert_eq!(
            f.cfg.verify_notification(&other_nonce, &body, NOW),
            Err(VerifyError::BadSignature)
        );
        let ts2 = (NOW + 1).to_string();
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig, &ts2, PUBKEY_ID), &body, NOW),
            Err(VerifyError::BadSignature)
        );
        // unknown serial (also non-ASCII, must not panic)
        assert!(matches!(
            f.cfg
                .verify_notification(&headers(&sig, &ts, "PUB_KEY_I虎_x"), &body, NOW),
            Err(VerifyError::UnknownKey(_))
        ));
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig, &ts, "PUB_KEY_ID_999"), &body, NOW),
            Err(VerifyError::UnknownKey("PUB_KEY_ID_999".into()))
        );
        // stale / future timestamps (boundary 300 s accepted)
        let old = (NOW - 301).to_string();
        let sig_old = signed(&f, &body, NOW - 301);
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig_old, &old, PUBKEY_ID), &body, NOW),
            Err(VerifyError::StaleTimestamp)
        );
        let fut = (NOW + 301).to_string();
        let sig_fut = signed(&f, &body, NOW + 301);
        assert_eq!(
            f.cfg
                .verify_notification(&headers(&sig_fut, &fut, PUBKEY_ID), &body, NOW),
            Err(VerifyError::StaleTimestamp)
        );
        let edge = (NOW - 300).to_string();
        let sig_edge = signed(&f, &body, NOW - 300);
        assert!(f
            .cfg
            .verify_notification(&headers(&sig_edge, &edge, PUBKEY_ID), &body, NOW)
            .is_ok());
        // malformed timestamp
        for bad_ts in ["", "abc", "-1", "1e9", "99999999999999999999"] {
            assert!(
                matches!(
                    f.cfg
                        .verify_notification(&headers(&sig, bad_ts, PUBKEY_ID), &body, NOW),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad_ts}"
            );
        }
        // unsupported signature type
        let sm2 = SignatureHeaders {
            signature_type: Some("WECHATPAY2-SM2-WITH-SM3"),
            ..ok
        };
        assert!(matches!(
            f.cfg.verify_notification(&sm2, &body, NOW),
            Err(VerifyError::Unsupported(_))
        ));

        // wrong mchid / appid inside the (signed, encrypted) resource
        for (tx, want) in [
            (transaction("1900000000", APP), VerifyError::WrongMerchant),
            (
                transaction(MCH, "wx0000000000000000"),
                VerifyError::WrongApp,
            ),
        ] {
            let b = envelope("TRANSACTION.SUCCESS", &tx, V3KEY);
            let s = signed(&f, &b, NOW);
            assert_eq!(
                f.cfg
                    .verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW),
                Err(want)
            );
        }

        // encrypted with another key => tag failure
        let b = envelope(
            "TRANSACTION.SUCCESS",
            &transaction(MCH, APP),
            "ffffffffffffffffffffffffffffffff",
        );
        let s = signed(&f, &b, NOW);
        assert!(
            matches!(f.cfg.verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW), Err(VerifyError::Malformed(m)) if m.contains("decryption"))
        );

        // ciphertext / tag / aad / nonce tampering (re-signed so only AEAD catches it)
        let mut env: Value = serde_json::from_slice(&body).unwrap();
        let ct = b64_decode(env["resource"]["ciphertext"].as_str().unwrap()).unwrap();
        let mut variants = Vec::new();
        for idx in [0, ct.len() - 1] {
            let mut c = ct.clone();
            c[idx] ^= 0x80;
            let mut e = env.clone();
            e["resource"]["ciphertext"] = json!(crate::crypto::b64_encode(&c));
            variants.push(e);
        }
        let mut e = env.clone();
        e["resource"]["associated_data"] = json!("refund");
        variants.push(e);
        let mut e = env.clone();
        e["resource"]["nonce"] = json!("fdasflkja485");
        variants.push(e);
        for e in variants {
            let b = e.to_string().into_bytes();
            let s = signed(&f, &b, NOW);
            assert!(matches!(
                f.cfg
                    .verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW),
                Err(VerifyError::Malformed(_))
            ));
        }
        // bad nonce length / algorithm / short ciphertext / not base64
        for (field, val) in [
            ("nonce", json!("short")),
            ("algorithm", json!("AES_128")),
            ("ciphertext", json!("AAAA")),
            ("ciphertext", json!("%%%")),
        ] {
            let mut e = env.clone();
            e["resource"][field] = val;
            let b = e.to_string().into_bytes();
            let s = signed(&f, &b, NOW);
            assert!(
                f.cfg
                    .verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW)
                    .is_err(),
                "{field}"
            );
        }
        // malformed outer JSON, signed
        for b in [
            &b"not json"[..],
            b"{}",
            br#"{"event_type":"TRANSACTION.SUCCESS"}"#,
            b"\xff\xfe",
        ] {
            let s = signed(&f, b, NOW);
            assert!(matches!(
                f.cfg
                    .verify_notification(&headers(&s, &ts, PUBKEY_ID), b, NOW),
                Err(VerifyError::Malformed(_))
            ));
        }
        // malformed inner JSON (valid AEAD)
        env["resource"]["ciphertext"] =
            json!(encrypt(b"[1,2", "fdasflkja484", "transaction", V3KEY));
        let b = env.to_string().into_bytes();
        let s = signed(&f, &b, NOW);
        assert!(matches!(
            f.cfg
                .verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW),
            Err(VerifyError::Malformed(_))
        ));
        // unknown event type
        let b = envelope("TRANSACTION.FAIL", &transaction(MCH, APP), V3KEY);
        let s = signed(&f, &b, NOW);
        assert!(matches!(
            f.cfg
                .verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW),
            Err(VerifyError::Unsupported(_))
        ));
        // missing amount
        let mut tx = transaction(MCH, APP);
        tx.as_object_mut().unwrap().remove("amount");
        let b = envelope("TRANSACTION.SUCCESS", &tx, V3KEY);
        let s = signed(&f, &b, NOW);
        assert!(matches!(
            f.cfg
                .verify_notification(&headers(&s, &ts, PUBKEY_ID), &b, NOW),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn response_signature_with_empty_body() {
        // 204 answers (close) are signed over "ts\nnonce\n\n".
        let f = fixture();
        let sig = signed(&f, b"", NOW);
        let ts = NOW.to_string();
        assert!(f
            .cfg
            .verify_signature(&headers(&sig, &ts, PUBKEY_ID), b"", NOW)
            .is_ok());
    }

    /// NIST GCM spec test cases 13/14 (AES-256, zero key and IV) check our
    /// "tag appended to ciphertext" layout against aws-lc.
    #[test]
    fn aes_gcm_known_answer() {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0u8; 32]).unwrap());
        let mut buf = vec![0u8; 16];
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::empty(),
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            hex::encode(&buf),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        let mut empty = Vec::new();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::empty(),
            &mut empty,
        )
        .unwrap();
        assert_eq!(hex::encode(&empty), "530f8afbc74536b9a963b4f1c4cb738b");
    }
}
