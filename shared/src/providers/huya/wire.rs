//! Huya mini-program (虎牙小程序) in-app purchase callbacks: the wire format.
//!
//! Pure: no network, no clock (callers pass `now`), no panics.
//!
//! Confirmed by Huya's documentation, "小程序内购技术接入说明", section 6 "支付回调接入"
//! (<https://hd.huya.com/h5/hy-open-doc/miniapp/pay/dev>):
//! - The callback URL is configured by the developer as GET or POST. GET: the fields are
//!   appended to the URL. POST: they are the body, `content-type: application/json`. Every
//!   value is a string ("回调的参数类型统一按字符串处理").
//! - The fields, in the documented order ([`FIELD_ORDER`]): `goodsUuid` (the goods),
//!   `orderTime` (`yyyyMMddHHmmss`), `orderId`, `extUuid` (the mini-program), `profileId`
//!   (the buying streamer's unionId), `expenseLevel` (the level of the goods bought) and
//!   `timestamp` (unix **seconds**: "精确到秒"). There is no amount and no currency.
//! - The signature is the `authorization` HTTP header: uppercase hex
//!   `MD5(UTF-8(appId + timestamp + data + extSecret))`, where `data` is the callback's JSON
//!   string with string values (the documented Java sample, `getHuyaPayCallBackSign`, lists
//!   the seven fields in the order above).
//!
//! Not documented there, so assumed here:
//! - Which `timestamp` is signed: the sample signs a `timestamp` argument and no header
//!   carries one, so the `timestamp` field of the callback is used.
//! - `data` of a POST is the body exactly as received; `data` of a GET is rebuilt as compact
//!   JSON of the seven fields in the documented order (alphabetical order is also accepted).
//! - `orderTime` is China Standard Time.
//! - The accepted clock skew ([`DEFAULT_MAX_SKEW_SECS`]) is ours: Huya documents no delivery
//!   delay and no retries.
//! - The answer: Huya documents none. [`callback_success_response`] answers HTTP 200 with
//!   `{"code":0,"msg":"success"}` and [`callback_failure_response`] a 4xx/5xx with
//!   `{"code":<status>,"msg":…}` (Huya's open-API answers use `code`/`msg`); check them with
//!   the console's callback tester before going live.
//! - Accepted beyond the documentation, to be lenient with what is sent: a 13-digit
//!   millisecond `timestamp`, a lowercase `authorization`, and JSON numbers (read as their
//!   text) or nulls (ignored) in a POST body.

use std::collections::BTreeMap;
use std::fmt;

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::crypto::ct_eq;
use crate::providers::china_time::parse_compact_cst;
use crate::providers::notification::{NotificationKind, VerifiedNotification};
use crate::providers::rsa::KeyError as ConfigError;
use crate::providers::wire_error::VerifyError;

/// The callback's fields in Huya's documented order, which is the order of `data` when a
/// GET callback's `data` is rebuilt.
pub const FIELD_ORDER: [&str; 7] = [
    "goodsUuid",
    "orderTime",
    "orderId",
    "extUuid",
    "profileId",
    "expenseLevel",
    "timestamp",
];

/// Default accepted |now - timestamp|, in seconds.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;

/// Mini-program configuration. `Debug` never prints `ext_secret`.
pub struct HuyaConfig {
    pub app_id: String,
    ext_secret: String,
    /// Accepted `extUuid`s (our mini-program ids).
    pub ext_uuids: Vec<String>,
    pub max_skew_secs: i64,
}

impl fmt::Debug for HuyaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HuyaConfig")
            .field("app_id", &self.app_id)
            .field("ext_secret", &"<redacted>")
            .field("ext_uuids", &self.ext_uuids)
            .field("max_skew_secs", &self.max_skew_secs)
            .finish()
    }
}

/// A verified purchase callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuyaPurchase {
    pub goods_uuid: String,
    /// `orderTime` (`yyyyMMddHHmmss`, China time) as unix seconds.
    pub order_time: i64,
    pub order_id: String,
    pub ext_uuid: String,
    pub profile_id: String,
    pub expense_level: String,
    /// The callback `timestamp` normalised to unix seconds.
    pub timestamp: i64,
    /// All received fields, as strings.
    pub fields: BTreeMap<String, String>,
}

impl HuyaPurchase {
    /// Convert to the common notification shape. Huya sends no amount, so the caller
    /// supplies the price it charged for (`goods_uuid`, `expense_level`), and our order id.
    pub fn into_notification(
        self,
        out_trade_no: String,
        amount_minor: i64,
    ) -> VerifiedNotification {
        let raw = Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        );
        VerifiedNotification {
            kind: NotificationKind::Paid,
            out_trade_no,
            provider_txn_id: self.order_id,
            amount_minor,
            refunded_minor: None,
            refund_id: None,
            currency: "CNY".into(),
            occurred_at: Some(self.order_time),
            event: "purchase".into(),
            raw,
        }
    }
}

impl HuyaConfig {
    pub fn new(app_id: &str, ext_secret: &str, ext_uuids: &[&str]) -> Result<Self, ConfigError> {
        if app_id.is_empty() || ext_secret.is_empty() {
            return Err(ConfigError(
                "huya app_id and ext_secret are required".into(),
            ));
        }
        if ext_uuids.is_empty() || ext_uuids.iter().any(|u| u.is_empty()) {
            return Err(ConfigError(
                "at least one non-empty extUuid is required".into(),
            ));
        }
        Ok(HuyaConfig {
            app_id: app_id.to_string(),
            ext_secret: ext_secret.to_string(),
            ext_uuids: ext_uuids.iter().map(|s| s.to_string()).collect(),
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        })
    }

    /// Expected `authorization` (uppercase hex MD5) for a given timestamp and data.
    pub fn compute_authorization(&self, timestamp: &str, data: &[u8]) -> String {
        let mut h = Md5::new();
        h.update(self.app_id.as_bytes());
        h.update(timestamp.as_bytes());
        h.update(data);
        h.update(self.ext_secret.as_bytes());
        hex::encode_upper(h.finalize())
    }

    /// Verify a POST callback: `data` is the body exactly as received.
    pub fn verify_post(
        &self,
        authorization: &str,
        body: &[u8],
        now: i64,
    ) -> Result<HuyaPurchase, VerifyError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| VerifyError::Malformed("callback JSON".into()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| VerifyError::Malformed("callback is not an object".into()))?;
        let mut fields = BTreeMap::new();
        for (k, val) in obj {
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Null => continue,
                _ => return Err(VerifyError::Malformed(format!("field {k} is not a string"))),
            };
            fields.insert(k.clone(), s);
        }
        let ts = fields
            .get("timestamp")
            .cloned()
            .ok_or_else(|| VerifyError::Malformed("missing timestamp".into()))?;
        self.check_auth(authorization, &ts, &[body])?;
        self.finish(fields, now)
    }

    /// Verify a GET callback from its raw query string (without `?`). `data` is rebuilt as
    /// compact JSON of the seven documented fields in documented order; alphabetical
    /// order is also accepted. Other query parameters are ignored.
    pub fn verify_get(
        &self,
        authorization: &str,
        raw_query: &str,
        now: i64,
    ) -> Result<HuyaPurchase, VerifyError> {
        let mut fields = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
            if fields.insert(k.to_string(), v.to_string()).is_some() {
                return Err(VerifyError::Malformed(format!("duplicate parameter {k}")));
            }
        }
        for name in FIELD_ORDER {
            if !fields.contains_key(name) {
                return Err(VerifyError::Malformed(format!("missing {name}")));
            }
        }
        let documented = rebuild_data(&fields, &FIELD_ORDER);
        let mut alpha = FIELD_ORDER;
        alpha.sort_unstable();
        let alphabetical = rebuild_data(&fields, &alpha);
        let ts = fields["timestamp"].clone();
        self.check_auth(
            authorization,
            &ts,
            &[documented.as_bytes(), alphabetical.as_bytes()],
        )?;
        self.finish(fields, now)
    }

    fn check_auth(
        &self,
        authorization: &str,
        timestamp: &str,
        candidates: &[&[u8]],
    ) -> Result<(), VerifyError> {
        let given = authorization.trim().to_ascii_uppercase();
        if given.len() != 32 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VerifyError::BadSignature);
        }
        let mut ok = false;
        for data in candidates {
            // evaluate all candidates; no early exit
            ok |= ct_eq(
                self.compute_authorization(timestamp, data).as_bytes(),
                given.as_bytes(),
            );
        }
        if ok {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn finish(
        &self,
        fields: BTreeMap<String, String>,
        now: i64,
    ) -> Result<HuyaPurchase, VerifyError> {
        let get = |k: &str| -> Result<String, VerifyError> {
            match fields.get(k) {
                Some(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(VerifyError::Malformed(format!("missing {k}"))),
            }
        };
        let ts_raw = get("timestamp")?;
        let timestamp =
            parse_timestamp(&ts_raw).ok_or_else(|| VerifyError::Malformed("timestamp".into()))?;
        if (now - timestamp).abs() > self.max_skew_secs {
            return Err(VerifyError::StaleTimestamp);
        }
        let ext_uuid = get("extUuid")?;
        if !self.ext_uuids.contains(&ext_uuid) {
            return Err(VerifyError::WrongApp);
        }
        let order_time_raw = get("orderTime")?;
        let order_time = parse_compact_cst(&order_time_raw)
            .ok_or_else(|| VerifyError::Malformed("orderTime".into()))?;
        Ok(HuyaPurchase {
            goods_uuid: get("goodsUuid")?,
            order_time,
            order_id: get("orderId")?,
            ext_uuid,
            profile_id: get("profileId")?,
            expense_level: get("expenseLevel")?,
            timestamp,
            fields,
        })
    }
}

/// Compact JSON object with string values in the given key order.
fn rebuild_data(fields: &BTreeMap<String, String>, order: &[&str]) -> String {
    let mut out = String::from("{");
    for (i, k) in order.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String((*k).to_string()).to_string());
        out.push(':');
        out.push_str(&Value::String(fields.get(*k).cloned().unwrap_or_default()).to_string());
    }
    out.push('}');
    out
}

/// Seconds (≤ 10 digits) or milliseconds (13 digits).
fn parse_timestamp(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.len() {
        1..=10 => s.parse().ok(),
        13 => s.parse::<i64>().ok().map(|ms| ms / 1000),
        _ => None,
    }
}

/// Answer for an accepted callback (an assumption: Huya documents none, see the module docs).
pub fn callback_success_response() -> (u16, String) {
    (200, r#"{"code":0,"msg":"success"}"#.to_string())
}

/// Answer for a rejected callback (an assumption, like the success answer): non-2xx, so that
/// a genuine callback can be sent again.
pub fn callback_failure_response(status: u16, msg: &str) -> (u16, String) {
    let status = if (400..=599).contains(&status) {
        status
    } else {
        500
    };
    (
        status,
        serde_json::json!({ "code": status, "msg": msg }).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn cfg() -> HuyaConfig {
        HuyaConfig::new("hyapp123", "s3cr3t-ext", &["ext_abc"]).unwrap()
    }

    fn body(ts: &str) -> String {
        format!(
            r#"{{"goodsUuid":"g-1","orderTime":"20231115061320","orderId":"HY123456","extUuid":"ext_abc","profileId":"un_\"x\"","expenseLevel":"2","timestamp":"{ts}"}}"#
        )
    }

    #[test]
    fn debug_redacts() {
        let d = format!("{:?}", cfg());
        assert!(!d.contains("s3cr3t") && d.contains("redacted"));
    }

    #[test]
    fn authorization_matches_manual_md5() {
        let c = cfg();
        let data = b"{}";
        let mut h = Md5::new();
        h.update(b"hyapp1231700000000{}s3cr3t-ext");
        assert_eq!(
            c.compute_authorization("1700000000", data),
            hex::encode_upper(h.finalize())
        );
    }

    #[test]
    fn post_ok_seconds_and_millis_and_lowercase_header() {
        let c = cfg();
        for ts in ["1700000000", "1700000000123"] {
            let b = body(ts);
            let auth = c.compute_authorization(ts, b.as_bytes());
            let p = c
                .verify_post(&auth.to_lowercase(), b.as_bytes(), NOW + 5)
                .unwrap();
            assert_eq!(p.goods_uuid, "g-1");
            assert_eq!(p.order_id, "HY123456");
            assert_eq!(p.profile_id, "un_\"x\"");
            assert_eq!(p.expense_level, "2");
            assert_eq!(p.order_time, 1700000000);
            assert_eq!(p.timestamp, 1700000000);
            let n = p.into_notification("ord-1".into(), 600);
            assert_eq!(
                (n.kind, n.provider_txn_id.as_str(), n.amount_minor),
                (NotificationKind::Paid, "HY123456", 600)
            );
            assert_eq!(n.raw["goodsUuid"], "g-1");
        }
    }

    #[test]
    fn post_rejections() {
        let c = cfg();
        let b = body("1700000000");
        let auth = c.compute_authorization("1700000000", b.as_bytes());
        // whitespace-reformatted body is a different `data`
        let reformatted = b.replace(",", ", ");
        assert_eq!(
            c.verify_post(&auth, reformatted.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
        let mut t = b.clone().into_bytes();
        t[20] ^= 1;
        assert!(c.verify_post(&auth, &t, NOW).is_err());
        for bad in ["", "zz", &auth[..31], &format!("{auth}0")] {
            assert_eq!(
                c.verify_post(bad, b.as_bytes(), NOW),
                Err(VerifyError::BadSignature)
            );
        }
        let other = HuyaConfig::new("hyapp123", "other", &["ext_abc"]).unwrap();
        assert_eq!(
            other.verify_post(&auth, b.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            c.verify_post(&auth, b.as_bytes(), NOW + 301),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            c.verify_post(&auth, b.as_bytes(), NOW - 301),
            Err(VerifyError::StaleTimestamp)
        );
        let c2 = HuyaConfig::new("hyapp123", "s3cr3t-ext", &["ext_other"]).unwrap();
        assert_eq!(
            c2.verify_post(&auth, b.as_bytes(), NOW),
            Err(VerifyError::WrongApp)
        );
        for junk in ["", "[]", "{", r#"{"timestamp":{}}"#, r#"{"a":"b"}"#] {
            let a = c.compute_authorization("", junk.as_bytes());
            assert!(
                matches!(
                    c.verify_post(&a, junk.as_bytes(), NOW),
                    Err(VerifyError::Malformed(_))
                ),
                "{junk}"
            );
        }
        // bad orderTime / timestamp, validly signed
        for (from, to) in [
            ("20231115061320", "20231315061320"),
            ("\"timestamp\":\"1700000000\"", "\"timestamp\":\"17e8\""),
        ] {
            let bb = b.replace(from, to);
            let ts = if to.contains("17e8") {
                "17e8"
            } else {
                "1700000000"
            };
            let a = c.compute_authorization(ts, bb.as_bytes());
            assert!(matches!(
                c.verify_post(&a, bb.as_bytes(), NOW),
                Err(VerifyError::Malformed(_))
            ));
        }
    }

    #[test]
    fn get_documented_and_alphabetical_order() {
        let c = cfg();
        let q = "goodsUuid=g-1&orderTime=20231115061320&orderId=HY123456&extUuid=ext_abc&profileId=un%20%E8%99%8E&expenseLevel=2&timestamp=1700000000&extra=ignored";
        let mut f = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            f.insert(k.to_string(), v.to_string());
        }
        let documented = rebuild_data(&f, &FIELD_ORDER);
        assert_eq!(
            documented,
            r#"{"goodsUuid":"g-1","orderTime":"20231115061320","orderId":"HY123456","extUuid":"ext_abc","profileId":"un 虎","expenseLevel":"2","timestamp":"1700000000"}"#
        );
        let a1 = c.compute_authorization("1700000000", documented.as_bytes());
        assert_eq!(c.verify_get(&a1, q, NOW).unwrap().profile_id, "un 虎");
        let mut alpha = FIELD_ORDER;
        alpha.sort_unstable();
        let a2 = c.compute_authorization("1700000000", rebuild_data(&f, &alpha).as_bytes());
        assert!(c.verify_get(&a2, q, NOW).is_ok());
        // wrong order / tampered / missing field / duplicate
        let tampered = q.replace("expenseLevel=2", "expenseLevel=3");
        assert_eq!(
            c.verify_get(&a1, &tampered, NOW),
            Err(VerifyError::BadSignature)
        );
        let missing = q.replace("&expenseLevel=2", "");
        assert!(matches!(
            c.verify_get(&a1, &missing, NOW),
            Err(VerifyError::Malformed(_))
        ));
        let dup = format!("{q}&orderId=X");
        assert!(matches!(
            c.verify_get(&a1, &dup, NOW),
            Err(VerifyError::Malformed(_))
        ));
        assert_eq!(
            c.verify_get(&a1, q, NOW + 1000),
            Err(VerifyError::StaleTimestamp)
        );
    }

    /// The example of Huya's documentation: its `data`, signed as its Java sample signs it.
    #[test]
    fn documented_sample() {
        let data = r#"{"goodsUuid":"xxxxxxx","orderTime":"20210316170234","orderId":"21031617023426027961","extUuid":"xxxxxx","profileId":"zzzzzzzzzzzzz","expenseLevel":"1","timestamp":"1615885355"}"#;
        let c = HuyaConfig::new("hyapp123", "s3cr3t-ext", &["xxxxxx"]).unwrap();
        // String.format("%s%s%s%s", appId, timestamp, data, extSecret), MD5, hex, upper case.
        let mut h = Md5::new();
        h.update(format!("hyapp1231615885355{data}s3cr3t-ext").as_bytes());
        let auth = hex::encode_upper(h.finalize());
        assert_eq!(c.compute_authorization("1615885355", data.as_bytes()), auth);

        let p = c
            .verify_post(&auth, data.as_bytes(), 1_615_885_355)
            .unwrap();
        assert_eq!(p.order_id, "21031617023426027961");
        assert_eq!(p.order_time, 1_615_885_354);
        assert_eq!(p.timestamp, 1_615_885_355);

        // The same fields by GET: the rebuilt `data` is the documented JSON, byte for byte.
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p.fields.iter())
            .finish();
        let rebuilt = rebuild_data(&p.fields, &FIELD_ORDER);
        assert_eq!(rebuilt, data);
        assert_eq!(c.verify_get(&auth, &q, 1_615_885_355).unwrap(), p);
    }

    #[test]
    fn answers() {
        assert_eq!(callback_success_response().0, 200);
        assert_eq!(callback_failure_response(200, "x").0, 500);
    }
}
