//! The payment providers' callbacks (`POST /callbacks/{provider}`, Huya's `GET` too), through
//! each provider's registered verifier: signature, freshness, ids and parsing at once. An
//! accepted callback yields a provider event, which must be a genuine callback's.

use super::super::{Input, Target, Verdict};
use crate::{alipay as ali, huya as hy, wechat as wx, SANDBOX_SECRET, T0};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tollgate::app::App;
use tollgate::providers::CallbackRequest;

/// Orders the genuine callbacks are about.
const ORDERS: [&str; 4] = [
    "01KF8Z5Q3C7W1M6J2N4R8T0V9X",
    "01KF8Z5Q3C7W1M6J2N4R8T0V9Y",
    "01KF8Z5Q3C7W1M6J2N4R8T0VA0",
    "01KF8Z5Q3C7W1M6J2N4R8T0VA1",
];

/// How an input becomes a request: which fields are which headers, the query, the body.
#[derive(Clone, Copy)]
enum Layout {
    /// Fields are these headers, then the body (POST).
    Post(&'static [&'static str]),
    /// Fields are these headers, then the query string (GET).
    Get(&'static [&'static str]),
}

/// Signs plain content into an input of the callback's layout.
type Sealer = Box<dyn Fn(&Input) -> Input>;

pub struct Callback {
    name: &'static str,
    provider: &'static str,
    layout: Layout,
    fields: &'static [&'static str],
    app: Arc<App>,
    seeds: Vec<Input>,
    plain: Vec<Input>,
    sealer: Sealer,
}

impl Callback {
    /// `None`: HTTP cannot carry one of the header values (control bytes), so no such
    /// request reaches Tollgate. An empty header field means the header is absent.
    fn request(&self, input: &Input) -> Option<CallbackRequest> {
        let (method, headers) = match self.layout {
            Layout::Post(h) => (Method::POST, h),
            Layout::Get(h) => (Method::GET, h),
        };
        let mut map = HeaderMap::new();
        for (i, name) in headers.iter().enumerate() {
            let v = input.field(i);
            if !v.is_empty() {
                map.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_bytes(v).ok()?,
                );
            }
        }
        let last = input.field(headers.len());
        Some(match method {
            Method::GET => CallbackRequest {
                method,
                // A query is text in a URI: bytes a URI cannot hold never arrive.
                query: Some(std::str::from_utf8(last).ok()?.to_owned()),
                headers: map,
                body: Bytes::new(),
            },
            _ => CallbackRequest {
                method,
                query: None,
                headers: map,
                body: Bytes::copy_from_slice(last),
            },
        })
    }
}

impl Target for Callback {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fields(&self) -> &'static [&'static str] {
        self.fields
    }

    fn seeds(&self) -> &[Input] {
        &self.seeds
    }

    fn plain_seeds(&self) -> &[Input] {
        &self.plain
    }

    fn seal(&self, plain: &Input) -> Input {
        (self.sealer)(plain)
    }

    fn check(&self, input: &Input) -> Verdict {
        let Some(req) = self.request(input) else {
            return Verdict::Rejected;
        };
        let Some(verifier) = self.app.providers.verifier(self.provider) else {
            return Verdict::Wrong(format!("provider {} is not enabled", self.provider));
        };
        match verifier.verify_callback(&req, T0) {
            Ok(event) => Verdict::Accepted(format!("{event:?}")),
            Err(_) => Verdict::Rejected,
        }
    }
}

/// Genuine inputs and the plain content they were signed from, with how to sign it.
struct Made {
    seeds: Vec<Input>,
    plain: Vec<Input>,
    sealer: Sealer,
}

impl Made {
    /// Seeds are the plain seeds, signed.
    fn new(plain: Vec<Input>, sealer: Sealer) -> Self {
        Made {
            seeds: plain.iter().map(&sealer).collect(),
            plain,
            sealer,
        }
    }
}

fn callback(
    name: &'static str,
    provider: &'static str,
    layout: Layout,
    fields: &'static [&'static str],
    made: Made,
) -> Callback {
    Callback {
        name,
        provider,
        layout,
        fields,
        app: super::app(),
        seeds: made.seeds,
        plain: made.plain,
        sealer: made.sealer,
    }
}

/// Sandbox callbacks: JSON signed with an HMAC of the shared secret. Plain content:
/// content type and body.
pub fn sandbox() -> Callback {
    let body = |order: &str, status: &str, amount: i64| {
        json!({
            "order_id": order, "transaction_id": format!("txn-{order}"), "status": status,
            "amount": {"amount": amount, "currency": "CNY"}, "timestamp": T0
        })
        .to_string()
    };
    let plain = [
        body(ORDERS[0], "paid", 900),
        body(ORDERS[1], "refunded", 3000),
    ]
    .iter()
    .map(|b| Input::new([b"application/json", b.as_bytes()]))
    .collect();
    let sealer: Sealer = Box::new(|p: &Input| {
        let sig = tollgate::providers::sandbox::sign(SANDBOX_SECRET, p.field(1));
        Input::new([sig.as_bytes(), p.field(0), p.field(1)])
    });
    callback(
        "sandbox",
        "sandbox",
        Layout::Post(&["x-sandbox-signature", "content-type"]),
        &["x-sandbox-signature", "content-type", "body"],
        Made::new(plain, sealer),
    )
}

/// A WeChat Pay notification body around `resource` (any bytes), encrypted with the APIv3
/// key as WeChat Pay does.
fn wechat_body(event_type: &[u8], resource: &[u8]) -> Vec<u8> {
    let (nonce, aad) = ("fdasflkja484", "transaction");
    json!({
        "id": "EV-2018022511223320873", "create_time": "2027-01-15T16:00:05+08:00",
        "resource_type": "encrypt-resource", "event_type": String::from_utf8_lossy(event_type),
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": wx::encrypt(resource, nonce, aad, wx::API_V3_KEY),
            "associated_data": aad, "nonce": nonce
        }
    })
    .to_string()
    .into_bytes()
}

/// WeChat Pay notifications: AES-256-GCM resources, RSA-signed under either platform key.
/// Plain content: which platform key signs (`0`, `1`), the event type and the decrypted
/// resource.
pub fn wechat() -> Callback {
    const HEADERS: &[&str] = &[
        "wechatpay-timestamp",
        "wechatpay-nonce",
        "wechatpay-serial",
        "wechatpay-signature",
        "content-type",
    ];
    let keys = [
        (wx::platform_signer(), wx::PUB_KEY_ID),
        (
            tollgate::providers::rsa::RsaPrivateKey::from_pem_or_base64(&crate::fake::key(
                "wechat_platform2_key.pem",
            ))
            .expect("platform key 2"),
            wx::CERT_SERIAL,
        ),
    ];
    let plain = vec![
        Input::new([
            b"0",
            b"TRANSACTION.SUCCESS",
            wx::transaction(ORDERS[0], "4200000001", 900)
                .to_string()
                .as_bytes(),
        ]),
        Input::new([
            b"0",
            b"REFUND.SUCCESS",
            wx::refund(ORDERS[1], "4200000002", 3000, 3000)
                .to_string()
                .as_bytes(),
        ]),
        Input::new([
            b"1",
            b"TRANSACTION.SUCCESS",
            wx::transaction(ORDERS[2], "4200000003", 1800)
                .to_string()
                .as_bytes(),
        ]),
    ];
    let sealer: Sealer = Box::new(move |p: &Input| {
        let (signer, serial) = &keys[usize::from(p.field(0).first() == Some(&b'1'))];
        let body = wechat_body(p.field(1), p.field(2));
        let headers = wx::signed_headers(&body, T0, signer, serial);
        let mut fields: Vec<Vec<u8>> = HEADERS
            .iter()
            .map(|name| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_bytes().to_vec())
                    .unwrap_or_default()
            })
            .collect();
        fields.push(body);
        Input(fields)
    });
    callback(
        "wechat",
        "wechat",
        Layout::Post(HEADERS),
        &[
            "wechatpay-timestamp",
            "wechatpay-nonce",
            "wechatpay-serial",
            "wechatpay-signature",
            "content-type",
            "body",
        ],
        Made::new(plain, sealer),
    )
}

/// An Alipay notification in GBK, as Alipay sends when the app's charset is GBK: the check
/// string is signed as GBK bytes and every value is percent-encoded from GBK.
fn alipay_gbk(fields: &BTreeMap<String, String>) -> String {
    let gbk = encoding_rs::GBK;
    let content = ali::sign_content(fields, true);
    let sign = ali::alipay_signer()
        .sign_sha256_b64(&gbk.encode(&content).0)
        .expect("sign");
    let mut parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let value: String = form_urlencoded::byte_serialize(&gbk.encode(v).0).collect();
            format!("{k}={value}")
        })
        .collect();
    parts.push(format!(
        "sign={}",
        form_urlencoded::byte_serialize(sign.as_bytes()).collect::<String>()
    ));
    parts.join("&")
}

/// Alipay notifications: RSA2 over the sorted form, in UTF-8 and in GBK. Plain content:
/// the content type and the form's fields (a form, signed after decoding, in the charset it
/// names).
pub fn alipay() -> Callback {
    const FORM: &[u8] = b"application/x-www-form-urlencoded; charset=utf-8";
    let paid = ali::fields(ORDERS[0], "TRADE_SUCCESS", "9.00");
    let mut refund = ali::fields(ORDERS[1], "TRADE_CLOSED", "30.00");
    refund.insert("refund_fee".into(), "30.00".into());
    refund.insert("gmt_refund".into(), "2027-01-15 17:00:00.123".into());
    let waiting = ali::fields(ORDERS[2], "WAIT_BUYER_PAY", "18.00");
    let mut gbk = ali::fields(ORDERS[3], "TRADE_FINISHED", "6.00");
    gbk.insert("charset".into(), "gbk".into());
    gbk.insert("subject".into(), "频道通行证 (七天)".into());
    let form = |f: &BTreeMap<String, String>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in f {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let plain = vec![
        Input::new([FORM, form(&paid).as_bytes()]),
        Input::new([FORM, form(&refund).as_bytes()]),
        Input::new([FORM, form(&waiting).as_bytes()]),
        Input::new([
            b"application/x-www-form-urlencoded; charset=gbk",
            form(&gbk).as_bytes(),
        ]),
    ];
    let signer = ali::alipay_signer();
    let sealer: Sealer = Box::new(move |p: &Input| {
        let fields: BTreeMap<String, String> = form_urlencoded::parse(p.field(1))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let gbk = fields
            .get("charset")
            .is_some_and(|c| c.eq_ignore_ascii_case("gbk"));
        let body = if gbk {
            alipay_gbk(&fields)
        } else {
            ali::notification(&fields, &signer)
        };
        Input::new([p.field(0), body.as_bytes()])
    });
    callback(
        "alipay",
        "alipay",
        Layout::Post(&["content-type"]),
        &["content-type", "body"],
        Made::new(plain, sealer),
    )
}

fn huya_fields(order: &str, goods: &str, level: &str) -> Vec<(&'static str, String)> {
    hy::fields(order, "fan-1", goods, level, T0)
}

/// The `timestamp` a Huya POST body carries, as the authorization covers it.
fn huya_timestamp(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("timestamp").cloned())
    {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => T0.to_string(),
    }
}

/// Huya purchase callbacks by POST: an MD5 authorization over the JSON body. Plain content:
/// the content type and the body.
pub fn huya_post() -> Callback {
    let plain = [
        huya_fields("HY-1001", "hy-pass", "1"),
        huya_fields("HY-1002", "hy-pass", "2"),
    ]
    .iter()
    .map(|f| Input::new([b"application/json", hy::json_body(f).as_bytes()]))
    .collect();
    let sealer: Sealer = Box::new(|p: &Input| {
        let body = p.field(1);
        let auth = hy::authorization(hy::EXT_SECRET, &huya_timestamp(body), body);
        Input::new([auth.as_bytes(), p.field(0), body])
    });
    callback(
        "huya_post",
        "huya",
        Layout::Post(&["authorization", "content-type"]),
        &["authorization", "content-type", "body"],
        Made::new(plain, sealer),
    )
}

/// The seven fields Huya signs, in its documented order.
const HUYA_FIELDS: [&str; 7] = [
    "goodsUuid",
    "orderTime",
    "orderId",
    "extUuid",
    "profileId",
    "expenseLevel",
    "timestamp",
];

/// Huya purchase callbacks by GET: the fields in the query, the authorization over their
/// JSON. Plain content: the query.
pub fn huya_get() -> Callback {
    let plain = [
        huya_fields("HY-2001", "hy-pass", "1"),
        huya_fields("HY-2002", "hy-pass", "2"),
    ]
    .iter()
    .map(|f| Input(vec![hy::get(f, hy::EXT_SECRET).1.into_bytes()]))
    .collect();
    let sealer: Sealer = Box::new(|p: &Input| {
        let query = p.field(0);
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query) {
            pairs
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        let fields: Vec<(&'static str, String)> = HUYA_FIELDS
            .iter()
            .map(|k| (*k, pairs.get(*k).cloned().unwrap_or_default()))
            .collect();
        let ts = pairs.get("timestamp").cloned().unwrap_or_default();
        let auth = hy::authorization(hy::EXT_SECRET, &ts, hy::json_body(&fields).as_bytes());
        Input::new([auth.as_bytes(), query])
    });
    callback(
        "huya_get",
        "huya",
        Layout::Get(&["authorization"]),
        &["authorization", "query"],
        Made::new(plain, sealer),
    )
}
