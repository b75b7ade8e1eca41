//! Alipay Open Platform (openapi.alipay.com, "RSA2" key mode) wire format.
//!
//! Pure: no network, no clock (callers pass `now`), no panics on any input.
//! [`AlipayConfig`] holds the app's ids and keys; its methods live with what they do:
//! - `trade`: the signed `alipay.trade.*` requests (app, page and wap payments; query and
//!   close) and the verified gateway answers to them;
//! - `refunds`: `alipay.trade.refund` and `alipay.trade.fastpay.refund.query`;
//! - `notify`: asynchronous notifications and the answers Alipay expects to them;
//! - `form`: a notification's form body, decoded in its own charset;
//! - `sign`: what each RSA2 signature covers (requests, notifications, gateway answers).

mod form;
mod notify;
mod refunds;
mod sign;
mod trade;

pub use notify::{NOTIFY_FAILURE_BODY, NOTIFY_SUCCESS_BODY};
pub use refunds::{RefundOutcome, RefundQueryOutcome};
pub use trade::{CloseOutcome, Expiry, GatewayRequest, OrderRequest, QueryOutcome, TradeStatus};

use std::fmt;

use crate::domain::{Currency, Money};
use crate::providers::rsa::{KeyError as ConfigError, RsaPrivateKey, RsaPublicKey};

/// Production gateway.
pub const GATEWAY_PROD: &str = "https://openapi.alipay.com/gateway.do";
/// Sandbox gateway.
pub const GATEWAY_SANDBOX: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";

/// Alipay's yuan amounts ("12.00") in fen, exactly, through [`Money`]'s one decimal parser.
fn yuan_to_fen(s: &str) -> Option<i64> {
    Money::parse_decimal(s, Currency::CNY)
        .ok()
        .map(|m| m.amount)
}

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
}

/// The app configuration, the key that plays Alipay's and notifications signed with it, for
/// the Alipay modules' tests.
#[cfg(test)]
pub(super) mod testing {
    use super::AlipayConfig;
    use crate::providers::rsa::{testkeys, RsaPrivateKey, RsaPublicKey};

    pub const APP_ID: &str = "2021001144680325";
    pub const SELLER: &str = "2088031940831575";

    pub struct Fx {
        pub cfg: AlipayConfig,
        /// plays Alipay's private key
        pub alipay_sk: RsaPrivateKey,
        pub app_pk: RsaPublicKey,
    }

    pub fn fx() -> Fx {
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

    /// A notify body as Alipay builds it: check content in `enc`, values percent-encoded
    /// from their `enc` bytes.
    pub fn notify_body(
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

    pub fn base_params() -> Vec<(&'static str, &'static str)> {
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

    /// `p` with field `k` set to `v` (added if absent).
    pub fn with(
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
}

#[cfg(test)]
mod tests {
    use super::testing::APP_ID;
    use super::*;
    use crate::providers::rsa::testkeys;

    const PKCS1_KEY: &str = include_str!("../../testdata/alipay_app_key_pkcs1.pem");

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
}
