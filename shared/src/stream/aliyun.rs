//! Alibaba Cloud CDN / ApsaraVideo Live URL signing, type A.
//!
//! `auth_key={timestamp}-{rand}-{uid}-{md5hash}` with
//! `md5hash = lowercase hex md5("{URI}-{timestamp}-{rand}-{uid}-{PrivateKey}")`
//! where URI is the path only (no host, no query). `rand` and `uid` must not
//! contain `-`; `uid` is unused by Alibaba and conventionally `0`.
//!
//! Meaning of `timestamp` (checked in the docs):
//!
//! * CDN / DCDN type A
//!   (<https://www.alibabacloud.com/help/doc-detail/119858.htm>,
//!   <https://help.aliyun.com/en/edge-security-acceleration/dcdn/user-guide/type-a-signing-1>):
//!   "the time when the signing server generates the signed URL"; the URL
//!   expires at `timestamp + the validity period configured in the console`.
//!   The signer may put a future time in it ("Timestamp = UNIX timestamp on
//!   the signing server + TTL assigned by the signing server").
//! * ApsaraVideo Live
//!   (<https://alibabacloud.com/help/en/live/user-guide/url-signing>): same
//!   rule, "the expiration time of a signed URL is equal to the timestamp plus
//!   the validity period"; the console generator uses the current time, and
//!   the official demos (<https://www.alibabacloud.com/help/doc-detail/57388.html>,
//!   <https://help.aliyun.com/en/cdn/user-guide/url-signing-examples>) pass
//!   `exp = now + ttl` as the timestamp.
//!
//! So the real expiry is always `timestamp + console validity`. Tollgate
//! passes the intended expiry as `timestamp`, which makes the CDN accept the
//! URL up to `expiry + console validity`: keep the console validity short.
//! [`verify_aliyun_url`] takes that validity as a parameter.

use super::digest::{check_digest, decode_hex16, md5_bytes};
use super::url::{append_params, parse_decimal, required_param, url_path, LinkError, UrlError};

fn is_aliyun_field(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `md5hash = lowercase hex md5("{uri}-{timestamp}-{rand}-{uid}-{private_key}")`.
pub fn aliyun_md5hash(
    uri: &str,
    timestamp: i64,
    rand: &str,
    uid: &str,
    private_key: &str,
) -> String {
    hex::encode(aliyun_digest(
        uri,
        &timestamp.to_string(),
        rand,
        uid,
        private_key,
    ))
}

fn aliyun_digest(uri: &str, ts: &str, rand: &str, uid: &str, key: &str) -> [u8; 16] {
    md5_bytes(&[
        uri.as_bytes(),
        b"-",
        ts.as_bytes(),
        b"-",
        rand.as_bytes(),
        b"-",
        uid.as_bytes(),
        b"-",
        key.as_bytes(),
    ])
}

/// The `auth_key` value `{timestamp}-{rand}-{uid}-{md5hash}`.
///
/// `timestamp`: see the module docs; Alibaba expires the URL at
/// `timestamp + validity configured in the console`. `rand` (e.g. hex of
/// random bytes, or `"0"`) and `uid` (`"0"`) must be non-empty
/// `[A-Za-z0-9_]`. `uri` is the path only and must start with `/`.
pub fn aliyun_auth_key(
    uri: &str,
    timestamp: i64,
    rand: &str,
    uid: &str,
    private_key: &str,
) -> Result<String, UrlError> {
    if timestamp <= 0 {
        return Err(UrlError::InvalidExpiry);
    }
    if !uri.starts_with('/') || uri.contains(['?', '#']) {
        return Err(UrlError::InvalidComponent("uri"));
    }
    if !is_aliyun_field(rand) {
        return Err(UrlError::InvalidComponent("rand"));
    }
    if !is_aliyun_field(uid) {
        return Err(UrlError::InvalidComponent("uid"));
    }
    let hash = aliyun_md5hash(uri, timestamp, rand, uid, private_key);
    Ok(format!("{timestamp}-{rand}-{uid}-{hash}"))
}

/// Appends `auth_key=...` to `url` (absolute `http(s)://` / `rtmp://` URL or
/// a bare path). The signed URI is the URL's path ([`url_path`]); an
/// existing query is kept.
pub fn aliyun_sign_url(
    url: &str,
    timestamp: i64,
    rand: &str,
    uid: &str,
    private_key: &str,
) -> Result<String, UrlError> {
    let auth_key = aliyun_auth_key(url_path(url), timestamp, rand, uid, private_key)?;
    append_params(url, &[("auth_key", &auth_key)])
}

/// Verifies a type A `auth_key` for request `path` and raw `query`.
/// Expired when `now > timestamp + validity_secs` (pass `0` when the
/// timestamp already is the expiry, as Tollgate generates it).
pub fn verify_aliyun_url(
    path: &str,
    query: &str,
    private_key: &str,
    now: i64,
    validity_secs: i64,
) -> Result<(), LinkError> {
    const P: &str = "auth_key";
    let auth = required_param(query, P)?;
    let mut parts = auth.split('-');
    let (Some(ts_raw), Some(rand), Some(uid), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(LinkError::Malformed(P));
    };
    let ts = if ts_raw.len() <= 15 {
        parse_decimal(ts_raw)
    } else {
        None
    }
    .ok_or(LinkError::Malformed(P))?;
    if rand.is_empty() || uid.is_empty() {
        return Err(LinkError::Malformed(P));
    }
    let given = decode_hex16(hash).ok_or(LinkError::Malformed(P))?;
    let expected = aliyun_digest(path, ts_raw, rand, uid, private_key);
    check_digest(
        &given,
        &expected,
        now,
        ts.saturating_add(validity_secs.max(0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn aliyun_published_vector() {
        assert_eq!(
            aliyun_md5hash(
                "/video/standard/1K.html",
                1444435200,
                "0",
                "0",
                "aliyuncdnexp1234"
            ),
            "80cd3862d699b7118eed99103f2a3a4f"
        );
        assert_eq!(
            aliyun_auth_key(
                "/video/standard/1K.html",
                1444435200,
                "0",
                "0",
                "aliyuncdnexp1234"
            )
            .unwrap(),
            "1444435200-0-0-80cd3862d699b7118eed99103f2a3a4f"
        );
    }

    #[test]
    fn aliyun_sign_and_verify() {
        let key = "aliyuncdnexp1234";
        let url = aliyun_sign_url(
            "http://cdn.example.com/video/standard/1K.html",
            1444435200,
            "0",
            "0",
            key,
        )
        .unwrap();
        assert_eq!(
            url,
            "http://cdn.example.com/video/standard/1K.html?auth_key=1444435200-0-0-80cd3862d699b7118eed99103f2a3a4f"
        );
        let (head, q) = url.split_once('?').unwrap();
        let path = url_path(head);
        assert_eq!(verify_aliyun_url(path, q, key, 1444435200, 0), Ok(()));
        assert_eq!(
            verify_aliyun_url(path, q, key, 1444435201, 0),
            Err(LinkError::Expired)
        );
        assert_eq!(verify_aliyun_url(path, q, key, 1444435201, 1800), Ok(()));
        assert_eq!(
            verify_aliyun_url(path, q, key, 1444435200 + 1801, 1800),
            Err(LinkError::Expired)
        );
        assert_eq!(
            verify_aliyun_url("/video/standard/2K.html", q, key, 0, 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_aliyun_url(path, q, "other", 0, 0),
            Err(LinkError::BadSignature)
        );
        // Existing query is kept, random rand works, RTMP path.
        let url = aliyun_sign_url(
            "rtmp://live.example.com/app/stream?foo=bar",
            NOW,
            "477b3bbc253f467b8def6711128c7bec",
            "0",
            key,
        )
        .unwrap();
        let (head, q) = url.split_once('?').unwrap();
        assert!(q.starts_with("foo=bar&auth_key="), "{q}");
        assert_eq!(url_path(head), "/app/stream");
        assert_eq!(verify_aliyun_url("/app/stream", q, key, NOW, 0), Ok(()));
        assert_eq!(
            aliyun_sign_url(&url, NOW, "0", "0", key),
            Err(UrlError::AlreadySigned("auth_key"))
        );
    }

    #[test]
    fn aliyun_builder_rejects_bad_input() {
        let k = "key";
        assert_eq!(
            aliyun_auth_key("/a", 0, "0", "0", k),
            Err(UrlError::InvalidExpiry)
        );
        assert_eq!(
            aliyun_auth_key("a", 1, "0", "0", k),
            Err(UrlError::InvalidComponent("uri"))
        );
        assert_eq!(
            aliyun_auth_key("/a?b", 1, "0", "0", k),
            Err(UrlError::InvalidComponent("uri"))
        );
        assert_eq!(
            aliyun_auth_key("/a", 1, "a-b", "0", k),
            Err(UrlError::InvalidComponent("rand"))
        );
        assert_eq!(
            aliyun_auth_key("/a", 1, "", "0", k),
            Err(UrlError::InvalidComponent("rand"))
        );
        assert_eq!(
            aliyun_auth_key("/a", 1, "0", "-", k),
            Err(UrlError::InvalidComponent("uid"))
        );
    }

    #[test]
    fn aliyun_verify_malformed() {
        let h = "80cd3862d699b7118eed99103f2a3a4f";
        let cases = [
            String::new(),
            "auth_key=".into(),
            format!("auth_key=1444435200-0-{h}"),
            format!("auth_key=1444435200-0-0-0-{h}"),
            format!("auth_key=-0-0-{h}"),
            format!("auth_key=+1444435200-0-0-{h}"),
            format!("auth_key=99999999999999999999-0-0-{h}"),
            format!("auth_key=1444435200--0-{h}"),
            format!("auth_key=1444435200-0--{h}"),
            "auth_key=1444435200-0-0-80cd".into(),
            "auth_key=1444435200-0-0-".into(),
            format!("auth_key=1444435200-0-0-{h}&auth_key=1444435200-0-0-{h}"),
        ];
        for q in &cases {
            let r = verify_aliyun_url("/video/standard/1K.html", q, "aliyuncdnexp1234", 0, 0);
            assert!(
                matches!(r, Err(LinkError::Missing(_) | LinkError::Malformed(_))),
                "{q:?}: {r:?}"
            );
        }
    }
}
