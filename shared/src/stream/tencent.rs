//! Tencent Cloud CSS (live) hotlink protection.
//!
//! Per <https://www.tencentcloud.com/document/product/267/31560> and the URL
//! splicing rules at <https://www.tencentcloud.com/document/product/267/38393>:
//! `txSecret = lowercase hex md5(KEY + StreamName + txTime)`, where `txTime`
//! is the time the URL **expires**, as unix seconds in hexadecimal (the docs'
//! examples use uppercase, e.g. `5C271099`, and also show lowercase
//! `65029b21`). `StreamName` is the stream id as it appears in the path,
//! without the protocol suffix (`.flv`, `.m3u8`, ...):
//! `http://domain/AppName/StreamName.flv?txSecret=...&txTime=...`. The docs
//! also note that the CDN's actual cut-off is `txTime` plus the validity
//! period configured for the key in the console; [`verify_tencent_url`] is
//! strict and stops at `txTime` (the second itself still valid).

use super::digest::{check_digest, decode_hex16, md5_bytes};
use super::url::{append_params, required_param, trim_base, LinkError, UrlError};

/// Parses a non-empty run of ASCII hex digits (either case, no sign, no `0x`).
fn parse_hex(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(s, 16).ok()
}

/// Characters allowed in an app / stream name used as a path segment.
fn is_segment_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!' | b'*')
        })
}

/// `txTime` for an expiry: unix seconds as uppercase hex (e.g. `5C271099`).
pub fn tencent_tx_time(expires: i64) -> Result<String, UrlError> {
    if expires <= 0 {
        return Err(UrlError::InvalidExpiry);
    }
    Ok(format!("{expires:X}"))
}

/// `txSecret = lowercase hex md5(key + stream_name + tx_time)`.
///
/// `stream_name` excludes the protocol suffix (`test`, not `test.flv`);
/// `tx_time` is the exact text placed in the URL.
pub fn tencent_tx_secret(key: &str, stream_name: &str, tx_time: &str) -> String {
    hex::encode(md5_bytes(&[
        key.as_bytes(),
        stream_name.as_bytes(),
        tx_time.as_bytes(),
    ]))
}

/// Builds `{base}/{app}/{stream}{.ext}?txSecret=..&txTime=..`.
///
/// `ext` is the protocol suffix without the dot (`"flv"`, `"m3u8"`), or `""`
/// for RTMP/WebRTC style URLs without one. `app` and `stream` must be
/// non-empty and made of `[A-Za-z0-9-_.~!*]`.
pub fn tencent_play_url(
    base: &str,
    app: &str,
    stream: &str,
    ext: &str,
    key: &str,
    expires: i64,
) -> Result<String, UrlError> {
    if !is_segment_safe(app) {
        return Err(UrlError::InvalidComponent("app"));
    }
    if !is_segment_safe(stream) {
        return Err(UrlError::InvalidComponent("stream"));
    }
    if !ext.is_empty() && !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(UrlError::InvalidComponent("ext"));
    }
    let tx_time = tencent_tx_time(expires)?;
    let secret = tencent_tx_secret(key, stream, &tx_time);
    let dot = if ext.is_empty() { "" } else { "." };
    Ok(format!(
        "{}/{app}/{stream}{dot}{ext}?txSecret={secret}&txTime={tx_time}",
        trim_base(base)
    ))
}

/// Appends `txSecret` / `txTime` to an existing origin URL (existing query
/// kept, joined with `&`; fragment kept last). `stream_name` is passed
/// explicitly (see [`tencent_stream_name_from_path`] to derive it).
pub fn tencent_sign_url(
    url: &str,
    stream_name: &str,
    key: &str,
    expires: i64,
) -> Result<String, UrlError> {
    if stream_name.is_empty() {
        return Err(UrlError::InvalidComponent("stream"));
    }
    let tx_time = tencent_tx_time(expires)?;
    let secret = tencent_tx_secret(key, stream_name, &tx_time);
    append_params(url, &[("txSecret", &secret), ("txTime", &tx_time)])
}

/// Protocol suffixes stripped from the last path segment to get StreamName.
pub(super) const TENCENT_SUFFIXES: &[&str] = &[".flv", ".m3u8", ".mpd", ".sdp", ".ts", ".mp4"];

/// StreamName from a playback path: the last segment without a known
/// protocol suffix (`/live/test.flv` → `test`). `None` if empty.
pub fn tencent_stream_name_from_path(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next()?;
    let name = TENCENT_SUFFIXES
        .iter()
        .find_map(|s| last.strip_suffix(s))
        .unwrap_or(last);
    if name.is_empty() {
        None
    } else {
        Some(name)
    }
}

/// Verifies a Tencent CSS playback request (`path` e.g. `/live/test.flv`,
/// raw `query`). `txTime` is parsed as hex (either case); the digest is
/// computed over the `txTime` text as given. Expired when `now > txTime`.
pub fn verify_tencent_url(path: &str, query: &str, key: &str, now: i64) -> Result<(), LinkError> {
    let stream = tencent_stream_name_from_path(path).ok_or(LinkError::Malformed("path"))?;
    let secret = required_param(query, "txSecret")?;
    let tx_time = required_param(query, "txTime")?;
    let expires = if tx_time.len() <= 15 {
        parse_hex(tx_time)
    } else {
        None
    }
    .ok_or(LinkError::Malformed("txTime"))?;
    let given = decode_hex16(secret).ok_or(LinkError::Malformed("txSecret"))?;
    let expected = md5_bytes(&[key.as_bytes(), stream.as_bytes(), tx_time.as_bytes()]);
    check_digest(&given, &expected, now, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::url::url_path;

    #[test]
    fn tencent_published_vector() {
        assert_eq!(
            tencent_tx_secret("e12c46f2612d5106e2034781ab261ca3", "test", "5C271099"),
            "f85a2ab363fe4deaffef9754d79da6fe"
        );
        assert_eq!(tencent_tx_time(0x5C27_1099).unwrap(), "5C271099");
        assert_eq!(tencent_tx_time(0), Err(UrlError::InvalidExpiry));
    }

    #[test]
    fn tencent_play_url_round_trip() {
        let key = "e12c46f2612d5106e2034781ab261ca3";
        let url = tencent_play_url(
            "https://play.example.com/",
            "live",
            "test",
            "flv",
            key,
            0x5C27_1099,
        )
        .unwrap();
        assert_eq!(
            url,
            "https://play.example.com/live/test.flv?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"
        );
        let (head, q) = url.split_once('?').unwrap();
        let path = url_path(head);
        assert_eq!(verify_tencent_url(path, q, key, 0x5C27_1099), Ok(()));
        assert_eq!(
            verify_tencent_url(path, q, key, 0x5C27_1099 + 1),
            Err(LinkError::Expired)
        );
        assert_eq!(
            verify_tencent_url("/live/test.m3u8", q, key, 0),
            Ok(()),
            "suffix is not part of StreamName"
        );
        assert_eq!(
            verify_tencent_url("/live/other.flv", q, key, 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_tencent_url(path, q, "wrong", 0),
            Err(LinkError::BadSignature)
        );
        // Uppercase hex digest and lowercase txTime text are both verified as given.
        let lower_time = "5c271099";
        let s = tencent_tx_secret(key, "test", lower_time);
        let q2 = format!("txSecret={}&txTime={lower_time}", s.to_uppercase());
        assert_eq!(verify_tencent_url("/live/test", &q2, key, 0), Ok(()));
        // No suffix (RTMP).
        let rtmp = tencent_play_url("rtmp://p", "live", "test", "", key, 0x5C27_1099).unwrap();
        assert!(rtmp.starts_with("rtmp://p/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&"));
    }

    #[test]
    fn tencent_sign_existing_url() {
        let key = "e12c46f2612d5106e2034781ab261ca3";
        let signed =
            tencent_sign_url("http://p/live/test.flv?a=1#frag", "test", key, 0x5C27_1099).unwrap();
        assert_eq!(
            signed,
            "http://p/live/test.flv?a=1&txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099#frag"
        );
        let signed = tencent_sign_url("http://p/live/test.m3u8", "test", key, 0x5C27_1099).unwrap();
        assert!(signed.starts_with("http://p/live/test.m3u8?txSecret="));
        assert_eq!(
            tencent_sign_url(&signed, "test", key, 0x5C27_1099),
            Err(UrlError::AlreadySigned("txSecret"))
        );
        assert_eq!(
            tencent_sign_url("http://p/live/x", "", key, 1),
            Err(UrlError::InvalidComponent("stream"))
        );
    }

    #[test]
    fn tencent_builder_rejects_bad_names() {
        for (app, stream, ext) in [
            ("", "s", "flv"),
            ("a/b", "s", "flv"),
            ("a", "s?x", "flv"),
            ("a", "s", "f.v"),
            ("a", "é", ""),
        ] {
            assert!(tencent_play_url("http://p", app, stream, ext, "k", 10).is_err());
        }
    }

    #[test]
    fn tencent_stream_names() {
        assert_eq!(
            tencent_stream_name_from_path("/live/test.flv"),
            Some("test")
        );
        assert_eq!(
            tencent_stream_name_from_path("/live/test.m3u8"),
            Some("test")
        );
        assert_eq!(
            tencent_stream_name_from_path("/live/test_hd"),
            Some("test_hd")
        );
        assert_eq!(tencent_stream_name_from_path("/live/"), None);
        assert_eq!(tencent_stream_name_from_path("/live/.flv"), None);
        assert_eq!(tencent_stream_name_from_path(""), None);
    }

    #[test]
    fn tencent_verify_malformed() {
        let good = "f85a2ab363fe4deaffef9754d79da6fe";
        let cases = [
            String::new(),
            "txTime=5C271099".into(),
            format!("txSecret={good}"),
            format!("txSecret={good}&txTime="),
            format!("txSecret={good}&txTime=+5C27"),
            format!("txSecret={good}&txTime=0x5C27"),
            format!("txSecret={good}&txTime=ZZZZ"),
            format!("txSecret={good}&txTime=FFFFFFFFFFFFFFFFFFFF"),
            "txSecret=f85a&txTime=5C271099".into(),
            "txSecret=g85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099".into(),
            format!("txSecret={good}00&txTime=5C271099"),
            format!("txSecret={good}&txSecret={good}&txTime=5C271099"),
        ];
        for q in &cases {
            let r = verify_tencent_url("/live/test.flv", q, "k", 0);
            assert!(
                matches!(r, Err(LinkError::Missing(_) | LinkError::Malformed(_))),
                "{q:?}: {r:?}"
            );
        }
        assert_eq!(
            verify_tencent_url("/live/", &format!("txSecret={good}&txTime=1"), "k", 0),
            Err(LinkError::Malformed("path"))
        );
    }
}
