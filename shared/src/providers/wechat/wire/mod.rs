//! WeChat Pay API v3 wire format (direct merchant / 直连商户).
//!
//! Pure: no network, no clock (callers pass `now` in unix seconds), no panics on any input.
//! [`WechatConfig`] holds a merchant's ids and keys; its methods live with what they do:
//! - `sign`: the `WECHATPAY2-SHA256-RSA2048` scheme (request `Authorization`, response and
//!   callback signatures) and the `AEAD_AES_256_GCM` decryption of callback resources;
//! - `transactions`: prepay, query and close requests and their answers, and the signed
//!   parameters a client pays a prepay with;
//! - `notify`: payment and refund callbacks, and the answers WeChat Pay expects to them;
//! - `refunds`: asking for a refund and asking how it went.
//!
//! Sources (this module: platform keys):
//! - `Wechatpay-Serial` is either a platform-certificate serial or a WeChat Pay public key id
//!   (`PUB_KEY_ID_...`); during migration both may appear on callbacks:
//!   <https://pay.weixin.qq.com/docs/merchant/products/notification/introduction.html>,
//!   <https://developers.weixin.qq.com/community/develop/doc/0004e8c40b09182972936db6d69400>

mod notify;
mod refunds;
mod sign;
mod transactions;

pub use notify::{notify_failure_response, NOTIFY_SUCCESS_STATUS};
pub use refunds::{RefundCall, RefundResult, RefundStatus};
pub use sign::{SignatureHeaders, SIGNATURE_SCHEME};
pub use transactions::{
    parse_api_error, ApiError, AppPayParams, JsapiPayParams, PreparedRequest, PrepayRequest,
    PrepayResponse, QueryResult, TradeState, TradeType,
};

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::domain::time::parse_rfc3339;
use crate::providers::rsa::{normalize_serial, KeyError, RsaPrivateKey, RsaPublicKey};
use crate::providers::wire_error::VerifyError;

/// Default accepted clock skew for `Wechatpay-Timestamp`.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;
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

/// The form platform keys are stored and looked up under, so a serial matches however the
/// header or the configuration spells it.
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
    ) -> Result<Self, KeyError> {
        let key_bytes = api_v3_key.as_bytes();
        let api_v3_key: [u8; 32] = key_bytes.try_into().map_err(|_| {
            KeyError(format!(
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
                return Err(KeyError(format!("{name} must be non-empty [A-Za-z0-9_]")));
            }
        }
        let merchant_key = RsaPrivateKey::from_pem_or_base64(merchant_private_key_pem)?;
        let platform_keys = parse_platform_keys(platform_keys_env)?;
        if platform_keys.is_empty() {
            return Err(KeyError("no WeChat Pay platform keys configured".into()));
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
}

/// Parse `serial=PEM;serial=PEM`. Each PEM is a platform `CERTIFICATE`
/// (its serial must equal the declared one) or a `PUBLIC KEY` (for
/// `PUB_KEY_ID_...`). Literal `\n` escapes are accepted inside the PEM.
pub fn parse_platform_keys(env: &str) -> Result<BTreeMap<String, RsaPublicKey>, KeyError> {
    let mut out = BTreeMap::new();
    for (i, entry) in env.split(';').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let (serial, pem) = entry
            .split_once('=')
            .ok_or_else(|| KeyError(format!("platform key #{i}: expected serial=PEM")))?;
        let serial = serial.trim();
        if serial.is_empty()
            || !serial
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(KeyError(format!("platform key #{i}: invalid serial")));
        }
        let (key, cert_serial) = RsaPublicKey::from_pem_or_base64_with_cert_serial(pem)
            .map_err(|e| KeyError(format!("platform key {serial}: {}", e.0)))?;
        let k = serial_key(serial);
        if let Some(cs) = cert_serial {
            if cs != k {
                return Err(KeyError(format!(
                    "platform key {serial}: certificate serial is {cs}"
                )));
            }
        }
        if out.insert(k, key).is_some() {
            return Err(KeyError(format!("platform key {serial}: duplicate")));
        }
    }
    Ok(out)
}

// Reading the decrypted / verified JSON documents (transactions and notifications).

fn parse_json(body: &[u8]) -> Result<Value, VerifyError> {
    serde_json::from_slice(body).map_err(|_| VerifyError::Malformed("JSON".into()))
}

fn req_str(v: &Value, key: &str) -> Result<String, VerifyError> {
    match v.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(VerifyError::Malformed(format!("missing {key}"))),
    }
}

/// `amount.{key}`: absent or null is `None`; anything but a non-negative integer is refused.
fn opt_i64(obj: Option<&Value>, key: &str) -> Result<Option<i64>, VerifyError> {
    match obj.and_then(|a| a.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(VerifyError::Malformed(format!("amount.{key}"))),
        },
    }
}

/// `success_time` as unix seconds: absent is `None`, present but unreadable is refused.
fn success_time(v: &Value) -> Result<Option<i64>, VerifyError> {
    match v.get("success_time").and_then(Value::as_str) {
        Some(s) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| VerifyError::Malformed("success_time".into())),
        None => Ok(None),
    }
}

/// Keys and documents the wire tests (and the provider's) share: a merchant key, a platform
/// public key (`PUB_KEY_ID_...`) and a platform certificate, and WeChat-shaped notifications.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::providers::rsa::testkeys;
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    use serde_json::json;

    pub const MCH: &str = "1900000109";
    pub const APP: &str = "wx8888888888888888";
    pub const V3KEY: &str = "0123456789abcdef0123456789ABCDEF";
    pub const CERT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    pub const PUBKEY_ID: &str = "PUB_KEY_ID_0114232036612025012300000000000000";
    pub const NOW: i64 = 1_700_000_000;
    pub const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
    pub const PLATFORM_CERT: &str = include_str!("../../testdata/wechat_platform_cert.pem");
    pub const PLATFORM_CERT_KEY: &str = include_str!("../../testdata/wechat_platform_key.pem");

    pub struct Fixture {
        pub cfg: WechatConfig,
        /// signs as the "PUB_KEY_ID" platform key
        pub pubkey_signer: RsaPrivateKey,
        /// signs as the certificate platform key
        pub cert_signer: RsaPrivateKey,
        pub merchant_pub: RsaPublicKey,
    }

    /// `WECHATPAY_PLATFORM_KEYS` naming both platform keys, the PEM of the public key with
    /// escaped newlines as an environment variable may carry it.
    pub fn platform_keys_env() -> String {
        let (_, wx_pk) = testkeys::rsa_pem(1);
        format!(
            "{CERT_SERIAL}={PLATFORM_CERT};{PUBKEY_ID}={}",
            wx_pk.replace('\n', "\\n")
        )
    }

    pub fn fixture() -> Fixture {
        let (merchant_sk, merchant_pk) = testkeys::rsa_pem(0);
        let (wx_sk, _) = testkeys::rsa_pem(1);
        let cfg = WechatConfig::new(
            MCH,
            APP,
            V3KEY,
            "MERCHANTSERIAL01",
            &merchant_sk,
            &platform_keys_env(),
        )
        .unwrap();
        Fixture {
            cfg,
            pubkey_signer: RsaPrivateKey::from_pem_or_base64(&wx_sk).unwrap(),
            cert_signer: RsaPrivateKey::from_pem_or_base64(PLATFORM_CERT_KEY).unwrap(),
            merchant_pub: RsaPublicKey::from_pem_or_base64(&merchant_pk).unwrap(),
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
        crate::crypto::b64_encode(&buf)
    }

    pub fn transaction(mchid: &str, appid: &str) -> Value {
        json!({
            "appid": appid, "mchid": mchid, "out_trade_no": "order_123456",
            "transaction_id": "4200000000202401010000000001", "trade_type": "JSAPI",
            "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "attach": "", "success_time": "2024-01-01T12:00:00+08:00",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": 1200, "payer_total": 1200, "currency": "CNY", "payer_currency": "CNY"}
        })
    }

    pub fn refund(mchid: &str, status: &str) -> Value {
        json!({
            "mchid": mchid, "out_trade_no": "order_123456", "transaction_id": "4200000000202401010000000001",
            "out_refund_no": "refund_1", "refund_id": "50000000382019052709732678859", "refund_status": status,
            "user_received_account": "支付用户零钱",
            "amount": {"total": 1200, "refund": 500, "payer_total": 1200, "payer_refund": 500}
        })
    }

    pub fn envelope(event: &str, resource_plain: &Value, key: &str) -> Vec<u8> {
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

    pub fn sign(signer: &RsaPrivateKey, ts: i64, nonce: &str, body: &[u8]) -> String {
        let mut m = format!("{ts}\n{nonce}\n").into_bytes();
        m.extend_from_slice(body);
        m.push(b'\n');
        signer.sign_sha256_b64(&m).unwrap()
    }

    pub fn headers<'a>(sig: &'a str, ts: &'a str, serial: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders {
            signature: sig,
            timestamp: ts,
            nonce: NONCE,
            serial,
            signature_type: Some(SIGNATURE_SCHEME),
        }
    }

    /// `body` signed at `ts` by the `PUB_KEY_ID` platform key.
    pub fn signed(f: &Fixture, body: &[u8], ts: i64) -> String {
        sign(&f.pubkey_signer, ts, NONCE, body)
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;
    use crate::providers::rsa::testkeys;

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
}
