//! Huya mini-program callbacks as Huya sends them: `authorization` = uppercase hex
//! MD5(appId + timestamp + data + extSecret), by GET (query) or POST (JSON body).

use md5::{Digest, Md5};
use serde_json::{json, Value};

pub const APP_ID: &str = "hy-app-7788";
pub const EXT_SECRET: &str = "hy-ext-secret-for-tests-only";
pub const EXT_UUID: &str = "ext-uuid-1234";

pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("PROVIDERS", "sandbox,huya".into()),
        ("HUYA_APP_ID", APP_ID.into()),
        ("HUYA_EXT_SECRET", EXT_SECRET.into()),
        ("HUYA_EXT_UUID", format!("other-ext,{EXT_UUID}")),
    ]
}

pub fn authorization(secret: &str, timestamp: &str, data: &[u8]) -> String {
    authorization_for(APP_ID, secret, timestamp, data)
}

/// The authorization as another Huya app (`app_id`) would compute it.
pub fn authorization_for(app_id: &str, secret: &str, timestamp: &str, data: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(app_id.as_bytes());
    h.update(timestamp.as_bytes());
    h.update(data);
    h.update(secret.as_bytes());
    hex::encode_upper(h.finalize())
}

/// The seven callback fields, every value a string, in Huya's documented order.
pub fn fields(
    order_id: &str,
    profile: &str,
    goods: &str,
    level: &str,
    ts: i64,
) -> Vec<(&'static str, String)> {
    vec![
        ("goodsUuid", goods.into()),
        // 2027-01-15 16:00:00 in China = T0.
        ("orderTime", "20270115160000".into()),
        ("orderId", order_id.into()),
        ("extUuid", EXT_UUID.into()),
        ("profileId", profile.into()),
        ("expenseLevel", level.into()),
        ("timestamp", ts.to_string()),
    ]
}

/// Compact JSON in the given field order (serde_json's map would sort the keys).
pub fn json_body(fields: &[(&'static str, String)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), Value::String(v.clone())))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// (authorization, body) of a POST callback.
pub fn post(fields: &[(&'static str, String)], secret: &str) -> (String, String) {
    let body = json_body(fields);
    let ts = &fields.iter().find(|(k, _)| *k == "timestamp").unwrap().1;
    (authorization(secret, ts, body.as_bytes()), body)
}

/// (authorization, query string) of a GET callback; `data` is the compact JSON of the
/// fields in documented order.
pub fn get(fields: &[(&'static str, String)], secret: &str) -> (String, String) {
    let data = json_body(fields);
    let ts = &fields.iter().find(|(k, _)| *k == "timestamp").unwrap().1;
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        q.append_pair(k, v);
    }
    (authorization(secret, ts, data.as_bytes()), q.finish())
}
