//! An asynchronous notification's form body, decoded the way Alipay's signature expects.
//!
//! The body is decoded exactly once: `+` → space, `%XX` → byte (so a literal `+` sent as
//! `%2B` survives), then the bytes are read in the charset named by the `charset` field, else
//! the `Content-Type`'s, else UTF-8 (GBK, GB2312 and GB18030 are supported). Each value also
//! keeps its bytes as sent, because the signature covers the check content in the
//! notification's own charset (the Java SDK's `content.getBytes(charset)`), not a
//! re-encoding of the decoded text.

use std::collections::HashSet;

use encoding_rs::Encoding;

use crate::providers::wire_error::VerifyError;

/// A decoded form body, in the order the fields arrived; names are unique.
#[derive(Debug)]
pub(super) struct Form {
    pub encoding: &'static Encoding,
    pub fields: Vec<Field>,
}

#[derive(Debug)]
pub(super) struct Field {
    pub name: String,
    pub value: String,
    /// The value's bytes after percent-decoding, before charset decoding.
    pub raw_value: Vec<u8>,
}

impl Form {
    /// Decodes `body`; `content_type_charset` is the `charset` of the request's
    /// `Content-Type`, used when the form names none. Malformed escapes, text invalid in
    /// the charset, empty names and repeated names are refused.
    pub fn decode(body: &[u8], content_type_charset: Option<&str>) -> Result<Form, VerifyError> {
        let pairs = parse_pairs(body)?;
        let charset_name = pairs
            .iter()
            .find(|(k, v)| k == b"charset" && !v.is_empty())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .or_else(|| content_type_charset.map(str::to_string))
            .unwrap_or_else(|| "utf-8".to_string());
        let encoding = charset(&charset_name)?;

        // Strict decoding: a malformed sequence is refused, never replaced.
        let mut seen = HashSet::with_capacity(pairs.len());
        let mut fields = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let name = decode_strict(encoding, &k)?;
            let value = decode_strict(encoding, &v)?;
            if !seen.insert(name.clone()) {
                return Err(VerifyError::Malformed(format!(
                    "duplicate parameter {name}"
                )));
            }
            fields.push(Field {
                name,
                value,
                raw_value: v,
            });
        }
        Ok(Form { encoding, fields })
    }

    /// The decoded value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }
}

/// A field name in the form's charset, for the check content. Names are ASCII in practice,
/// and ASCII is the same in every supported charset.
pub(super) fn encode_name(enc: &'static Encoding, name: &[u8]) -> Vec<u8> {
    if name.is_ascii() {
        return name.to_vec();
    }
    match std::str::from_utf8(name) {
        Ok(s) => enc.encode(s).0.into_owned(),
        Err(_) => name.to_vec(),
    }
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Split on `&` and `=`, `+` → space, strict `%XX` decoding to raw bytes.
fn parse_pairs(body: &[u8]) -> Result<Pairs, VerifyError> {
    let mut out = Vec::new();
    for part in body.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let k = percent_decode(k)?;
        if k.is_empty() {
            return Err(VerifyError::Malformed("empty parameter name".into()));
        }
        out.push((k, percent_decode(v)?));
    }
    if out.is_empty() {
        return Err(VerifyError::Malformed("empty form body".into()));
    }
    Ok(out)
}

fn percent_decode(s: &[u8]) -> Result<Vec<u8>, VerifyError> {
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

fn charset(name: &str) -> Result<&'static Encoding, VerifyError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(encoding_rs::UTF_8),
        "gbk" | "gb2312" | "cp936" => Ok(encoding_rs::GBK),
        "gb18030" => Ok(encoding_rs::GB18030),
        other => Err(VerifyError::Unsupported(format!("charset {other}"))),
    }
}

fn decode_strict(enc: &'static Encoding, bytes: &[u8]) -> Result<String, VerifyError> {
    enc.decode_without_bom_handling_and_without_replacement(bytes)
        .map(|c| c.into_owned())
        .ok_or_else(|| VerifyError::Malformed(format!("invalid {} text", enc.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(r: Result<Form, VerifyError>) -> bool {
        matches!(r, Err(VerifyError::Malformed(_)))
    }

    #[test]
    fn plus_is_space_and_percent_2b_is_plus() {
        let f = Form::decode(b"a=x+y%2Bz&b=%e7%9b%b4", None).unwrap();
        assert_eq!(f.get("a"), Some("x y+z"));
        assert_eq!(f.fields[0].raw_value, b"x y+z");
        assert_eq!(f.get("b"), Some("直"));
        assert_eq!(f.encoding, encoding_rs::UTF_8);
    }

    #[test]
    fn empty_parts_skipped_and_missing_equals_is_an_empty_value() {
        let f = Form::decode(b"&&a=1&&flag&", None).unwrap();
        let names: Vec<&str> = f.fields.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["a", "flag"]);
        assert_eq!(f.get("flag"), Some(""));
        assert_eq!(f.get("absent"), None);
    }

    #[test]
    fn charset_field_wins_over_content_type_then_utf8() {
        // 直播 in GBK is D6 B1 B2 A5, which is not valid UTF-8.
        let gbk = b"charset=gbk&s=%D6%B1%B2%A5";
        let f = Form::decode(gbk, Some("utf-8")).unwrap();
        assert_eq!(f.encoding, encoding_rs::GBK);
        assert_eq!(f.get("s"), Some("直播"));
        assert_eq!(f.fields[1].raw_value, [0xD6, 0xB1, 0xB2, 0xA5]);

        let bare = b"s=%D6%B1%B2%A5";
        assert!(malformed(Form::decode(bare, None)));
        assert_eq!(
            Form::decode(bare, Some(" GB2312 ")).unwrap().get("s"),
            Some("直播")
        );
        // An empty charset field does not count as naming one.
        assert!(Form::decode(b"charset=&s=%D6%B1%B2%A5", Some("cp936")).is_ok());
        assert_eq!(
            Form::decode(b"charset=GB18030&s=1", None).unwrap().encoding,
            encoding_rs::GB18030
        );
    }

    #[test]
    fn unknown_charset_is_unsupported() {
        assert!(matches!(
            Form::decode(b"charset=big5&a=1", None),
            Err(VerifyError::Unsupported(_))
        ));
        assert!(matches!(
            Form::decode(b"a=1", Some("latin1")),
            Err(VerifyError::Unsupported(_))
        ));
    }

    #[test]
    fn refusals() {
        for junk in [
            &b""[..],
            b"&&&",
            b"a=%zz",
            b"a=%4",
            b"a=%",
            b"=x",
            b"%3D=x&=y",
            b"a=1&a=2",
            b"a=1&%61=2",
            b"\xff\xfe=\x00",
        ] {
            assert!(
                malformed(Form::decode(junk, None)),
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
        // Names are compared after decoding: a repeated name is refused whatever its escapes.
        let e = Form::decode(b"out_trade_no=1&out%5Ftrade%5Fno=2", None).unwrap_err();
        assert_eq!(
            e,
            VerifyError::Malformed("duplicate parameter out_trade_no".into())
        );
    }

    #[test]
    fn many_distinct_fields_are_accepted() {
        let body: Vec<String> = (0..5000).map(|i| format!("k{i}=v{i}")).collect();
        let f = Form::decode(body.join("&").as_bytes(), None).unwrap();
        assert_eq!(f.fields.len(), 5000);
        assert_eq!(f.get("k4999"), Some("v4999"));
    }

    #[test]
    fn names_are_encoded_in_the_form_charset() {
        assert_eq!(encode_name(encoding_rs::GBK, b"subject"), b"subject");
        assert_eq!(encode_name(encoding_rs::GBK, "直".as_bytes()), [0xD6, 0xB1]);
        assert_eq!(encode_name(encoding_rs::GBK, b"\xff"), b"\xff");
    }
}
