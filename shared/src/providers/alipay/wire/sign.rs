//! What Alipay's RSA2 signatures (SHA256withRSA, base64) cover, in each direction.
//!
//! - Requests: the official Java SDK's `AlipaySignature.getSignContent`: parameters sorted
//!   by name, empty values skipped, `sign` excluded, `sign_type` included, `k=v` joined by
//!   `&` (github.com/alipay/alipay-sdk-java-all,
//!   `src/main/java/com/alipay/api/internal/util/AlipaySignature.java`).
//! - Asynchronous notifications: the same SDK's `getSignCheckContentV1` / `rsaCheckV1`: every
//!   parameter but `sign` and `sign_type`, **empty values skipped**, sorted, in the
//!   notification's own charset. Very old SDK copies did not skip empty values; current ones
//!   do (`StringUtils.areNotEmpty`). The same procedure in prose ("除去sign、sign_type两个参数
//!   外…url_decode…字典排序"): <https://blog.csdn.net/qq_39505065/article/details/84429592>
//!   (a copy of docs.open.alipay.com/200/106120).
//! - Synchronous gateway answers: the raw JSON text of the `<method>_response` member, exactly
//!   as received, signed by the top-level `sign` (SDK `extractSignContent` /
//!   `extractJsonObjectEndPosition`; python `fzlee/alipay` `_get_string_to_be_signed`).
//!   [`verified_response_node`] finds that text with a small scanner of the top-level object
//!   that respects strings and escapes, because a re-serialisation would not match.

use serde_json::Value;

use super::form::{encode_name, Form};
use crate::providers::rsa::RsaPublicKey;
use crate::providers::wire_error::VerifyError;

/// The content a request's `sign` covers: `sorted` must be sorted by name.
pub(super) fn request_content(sorted: &[(String, String)]) -> String {
    sorted
        .iter()
        .filter(|(k, v)| k != "sign" && !k.is_empty() && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The bytes a notification's `sign` covers: its values exactly as sent, in its charset.
pub(super) fn notify_content(form: &Form) -> Vec<u8> {
    let mut signed: Vec<(&[u8], &[u8])> = form
        .fields
        .iter()
        .filter(|f| f.name != "sign" && f.name != "sign_type" && !f.value.is_empty())
        .map(|f| (f.name.as_bytes(), f.raw_value.as_slice()))
        .collect();
    // Names are ASCII in practice; byte order == Java String order for ASCII.
    signed.sort_by(|a, b| a.0.cmp(b.0));
    let mut content = Vec::new();
    for (i, (k, v)) in signed.iter().enumerate() {
        if i > 0 {
            content.push(b'&');
        }
        content.extend_from_slice(&encode_name(form.encoding, k));
        content.push(b'=');
        content.extend_from_slice(v);
    }
    content
}

/// Extracts the raw text of `node_name`'s value from the top-level object, verifies the
/// top-level `sign` over exactly those bytes with `key`, and returns the parsed node.
///
/// Unsigned answers are accepted only when `code` != 10000 (gateway-level errors such as an
/// invalid app_id come back unsigned); a success without `sign` is refused.
pub(super) fn verified_response_node(
    key: &RsaPublicKey,
    body: &[u8],
    node_name: &str,
) -> Result<Value, VerifyError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| VerifyError::Malformed("response is not UTF-8".into()))?;
    let members =
        top_level_members(text).ok_or_else(|| VerifyError::Malformed("response JSON".into()))?;
    let mut node_span = None;
    let mut sign = None;
    for (name, span) in members {
        if name == node_name {
            if node_span.replace(span).is_some() {
                return Err(VerifyError::Malformed("duplicate response node".into()));
            }
        } else if name == "sign" {
            sign = Some(span);
        }
    }
    let span = node_span.ok_or_else(|| VerifyError::Malformed(format!("missing {node_name}")))?;
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
            if !key.verify_sha256_b64(raw_node.as_bytes(), &sig) {
                return Err(VerifyError::BadSignature);
            }
        }
        None => {
            if node.get("code").and_then(Value::as_str) == Some("10000") {
                return Err(VerifyError::BadSignature);
            }
        }
    }
    Ok(node)
}

/// A member of the top-level object: its name, raw (escapes left as they are), and the
/// byte span of its raw value.
type Member<'a> = (&'a str, (usize, usize));

/// Scans a JSON text whose root is an object and returns its members; `None` on any
/// syntax problem. Values are only delimited here: serde validates them afterwards.
fn top_level_members(s: &str) -> Option<Vec<Member<'_>>> {
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

/// `b[i]` is `"`; returns the index just past the closing quote.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::rsa::{testkeys, RsaPrivateKey};

    fn keys() -> (RsaPrivateKey, RsaPublicKey) {
        let (sk, pk) = testkeys::rsa_pem(2);
        (
            RsaPrivateKey::from_pem_or_base64(&sk).unwrap(),
            RsaPublicKey::from_pem_or_base64(&pk).unwrap(),
        )
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn request_content_skips_sign_and_empty_values_keeps_sign_type() {
        let p = pairs(&[
            ("app_id", "1"),
            ("biz_content", "{\"a\":\"b c\"}"),
            ("empty", ""),
            ("sign", "xyz"),
            ("sign_type", "RSA2"),
        ]);
        assert_eq!(
            request_content(&p),
            "app_id=1&biz_content={\"a\":\"b c\"}&sign_type=RSA2"
        );
    }

    #[test]
    fn notify_content_is_sorted_raw_bytes_without_sign_fields() {
        let body = b"sign=abc&subject=a%2Bb+c&charset=gbk&sign_type=RSA2&empty=&b=%D6%B1";
        let form = Form::decode(body, None).unwrap();
        let mut want = b"b=".to_vec();
        want.extend_from_slice(&[0xD6, 0xB1]);
        want.extend_from_slice(b"&charset=gbk&subject=a+b c");
        assert_eq!(notify_content(&form), want);
    }

    fn signed(sk: &RsaPrivateKey, node_name: &str, node_raw: &str) -> String {
        let sig = sk.sign_sha256_b64(node_raw.as_bytes()).unwrap();
        format!("{{\"{node_name}\":{node_raw},\"sign\":\"{sig}\"}}")
    }

    const NODE: &str = "alipay_trade_query_response";

    #[test]
    fn the_raw_node_text_is_what_is_verified() {
        let (sk, pk) = keys();
        // Odd spacing and escapes: a re-serialisation would not match the signature.
        let raw = r#"{"code":"10000" , "s":"a\"}{\\\/b","x":[1,{"y":"}"}], "n" : null}"#;
        let node = verified_response_node(&pk, signed(&sk, NODE, raw).as_bytes(), NODE).unwrap();
        assert_eq!(node["s"], "a\"}{\\/b");
        // sign first, whitespace around
        let sig = sk.sign_sha256_b64(raw.as_bytes()).unwrap();
        let body = format!("{{ \"sign\" : \"{sig}\" ,\n \"{NODE}\" : {raw} }}\n");
        assert!(verified_response_node(&pk, body.as_bytes(), NODE).is_ok());
        // tampered
        let t = signed(&sk, NODE, raw).replace("10000", "10001");
        assert_eq!(
            verified_response_node(&pk, t.as_bytes(), NODE),
            Err(VerifyError::BadSignature)
        );
        // signed by another key
        let (other, _) = testkeys::rsa_pem(1);
        let other = RsaPrivateKey::from_pem_or_base64(&other).unwrap();
        assert_eq!(
            verified_response_node(&pk, signed(&other, NODE, raw).as_bytes(), NODE),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn unsigned_answers_only_for_errors() {
        let (_, pk) = keys();
        let err = format!(r#"{{"{NODE}":{{"code":"40002","msg":"Invalid Arguments"}}}}"#);
        assert_eq!(
            verified_response_node(&pk, err.as_bytes(), NODE).unwrap()["code"],
            "40002"
        );
        let ok = format!(r#"{{"{NODE}":{{"code":"10000","msg":"Success"}}}}"#);
        assert_eq!(
            verified_response_node(&pk, ok.as_bytes(), NODE),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn malformed_answers() {
        let (sk, pk) = keys();
        let raw = r#"{"code":"10000"}"#;
        let sig = sk.sign_sha256_b64(raw.as_bytes()).unwrap();
        for junk in [
            "".to_string(),
            "{".into(),
            "[]".into(),
            "{\"a\":1".into(),
            "{\"x\":{}} trailing".into(),
            "{\"x\" 1}".into(),
            "{\"x\":1,}".into(),
            "{\"x\":]}".into(),
            "\u{0}".into(),
            format!("{{\"{NODE}\":1,\"sign\":\"x\"}}"),
            format!("{{\"other_response\":{raw},\"sign\":\"{sig}\"}}"),
            format!("{{\"{NODE}\":{raw},\"{NODE}\":{raw},\"sign\":\"{sig}\"}}"),
            format!("{{\"{NODE}\":{raw},\"sign\":7}}"),
        ] {
            assert!(
                matches!(
                    verified_response_node(&pk, junk.as_bytes(), NODE),
                    Err(VerifyError::Malformed(_))
                ),
                "{junk:?}"
            );
        }
        assert!(verified_response_node(&pk, b"\xff", NODE).is_err());
    }

    #[test]
    fn scanner_spans() {
        let s = r#" { "a" : "x\"y" , "b":[1,{"c":"]"}] ,"d":-1.5e3,"e":true } "#;
        let m = top_level_members(s).unwrap();
        let got: Vec<(&str, &str)> = m.iter().map(|(k, (a, b))| (*k, &s[*a..*b])).collect();
        assert_eq!(
            got,
            [
                ("a", r#""x\"y""#),
                ("b", r#"[1,{"c":"]"}]"#),
                ("d", "-1.5e3"),
                ("e", "true")
            ]
        );
        assert_eq!(top_level_members(" {} ").unwrap(), []);
        assert!(top_level_members("{} x").is_none());
        assert!(top_level_members(r#"{"a":"unterminated}"#).is_none());
        assert!(top_level_members(r#"{"a":[1,2}"#).is_none());
    }
}
