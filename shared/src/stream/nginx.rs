//! nginx `secure_link`.
//!
//! Matches this nginx configuration (`ngx_http_secure_link_module`):
//!
//! ```nginx
//! secure_link $arg_md5,$arg_expires;
//! secure_link_md5 "$secure_link_expires$uri$remote_addr SECRET";
//! ```
//!
//! or, when the operator does not bind links to a client IP, the same line
//! without `$remote_addr` (pass `remote_addr: None`). The `md5` argument is
//! `base64url(md5("{expires}{uri}{remote_addr} {secret}"))` without padding.
//! nginx checks the hash first (`$secure_link` = `""` → usually 403) and
//! then the expiry (`"0"` → usually 410); an `expires` that is missing or not
//! a positive decimal number makes the link invalid. `$uri` is nginx's
//! *decoded, normalised* path without the query, so the builder rejects
//! paths that nginx would rewrite (`//`, `.` and `..` segments) and
//! percent-encodes the path it emits.
//!
//! Like nginx, the expiry second itself is still valid: a link is rejected once
//! `now > expires`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::digest::{check_digest, md5_bytes, URL_SAFE_LENIENT};
use super::url::{parse_decimal, required_param, trim_base, LinkError, UrlError};

fn nginx_digest(expires: &str, uri: &str, remote_addr: Option<&str>, secret: &str) -> [u8; 16] {
    md5_bytes(&[
        expires.as_bytes(),
        uri.as_bytes(),
        remote_addr.unwrap_or("").as_bytes(),
        b" ",
        secret.as_bytes(),
    ])
}

/// The `md5` argument for nginx `secure_link`:
/// `base64url_nopad(md5("{expires}{uri}{remote_addr} {secret}"))`.
///
/// `remote_addr: None` matches a `secure_link_md5` line without
/// `$remote_addr`. `uri` is the decoded path as nginx's `$uri` sees it.
pub fn nginx_secure_link_hash(
    expires: i64,
    uri: &str,
    remote_addr: Option<&str>,
    secret: &str,
) -> String {
    URL_SAFE_NO_PAD.encode(nginx_digest(&expires.to_string(), uri, remote_addr, secret))
}

/// Percent-encodes a decoded path for use in a URL (keeps `/` and RFC 3986
/// pchar characters).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'/' | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// True if nginx would see this decoded path unchanged as `$uri`.
fn is_nginx_normal_path(uri: &str) -> bool {
    if !uri.starts_with('/') || uri.contains('\0') {
        return false;
    }
    // Skip the leading empty segment; reject empty (`//`), `.` and `..`.
    let segments: Vec<&str> = uri[1..].split('/').collect();
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .all(|(i, s)| (i == last || !s.is_empty()) && *s != "." && *s != "..")
}

/// Builds `{base}{uri}?md5={hash}&expires={expires}` for nginx `secure_link`.
///
/// `base` is scheme + host (e.g. `https://cdn.example.com`, a trailing `/` is
/// ignored); `uri` is the decoded path, starting with `/` (it is
/// percent-encoded in the output, hashed decoded as nginx does). `expires`
/// must be positive (nginx rejects `0`).
pub fn nginx_secure_link_url(
    base: &str,
    uri: &str,
    expires: i64,
    remote_addr: Option<&str>,
    secret: &str,
) -> Result<String, UrlError> {
    if expires <= 0 {
        return Err(UrlError::InvalidExpiry);
    }
    if !is_nginx_normal_path(uri) {
        return Err(UrlError::InvalidComponent("uri"));
    }
    let hash = nginx_secure_link_hash(expires, uri, remote_addr, secret);
    Ok(format!(
        "{}{}?md5={hash}&expires={expires}",
        trim_base(base),
        encode_path(uri)
    ))
}

/// Verifies an nginx `secure_link` request the way nginx does: `uri` is the
/// decoded path (nginx `$uri`), `query` the raw query string. Checks the
/// hash first, then expiry (`now > expires` ⇒ [`LinkError::Expired`]).
pub fn verify_nginx_secure_link(
    uri: &str,
    query: &str,
    remote_addr: Option<&str>,
    secret: &str,
    now: i64,
) -> Result<(), LinkError> {
    let md5 = required_param(query, "md5")?;
    let expires_raw = required_param(query, "expires")?;
    let expires = parse_decimal(expires_raw)
        .filter(|e| *e > 0)
        .ok_or(LinkError::Malformed("expires"))?;
    if md5.len() > 24 {
        return Err(LinkError::Malformed("md5"));
    }
    let given = URL_SAFE_LENIENT
        .decode(md5)
        .map_err(|_| LinkError::Malformed("md5"))?;
    if given.len() != 16 {
        return Err(LinkError::Malformed("md5"));
    }
    // nginx hashes the raw `expires` text, so do the same.
    let expected = nginx_digest(expires_raw, uri, remote_addr, secret);
    check_digest(&given, &expected, now, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::url::query_param;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn nginx_published_vector() {
        assert_eq!(
            nginx_secure_link_hash(2147483647, "/s/link", Some("127.0.0.1"), "secret"),
            "_e4Nc3iduzkWRm01TBBNYw"
        );
    }

    #[test]
    fn nginx_url_and_round_trip() {
        let url = nginx_secure_link_url(
            "https://cdn.example.com/",
            "/s/link",
            2147483647,
            Some("127.0.0.1"),
            "secret",
        )
        .unwrap();
        assert_eq!(
            url,
            "https://cdn.example.com/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"
        );
        let q = url.split_once('?').unwrap().1;
        assert_eq!(
            verify_nginx_secure_link("/s/link", q, Some("127.0.0.1"), "secret", NOW),
            Ok(())
        );
        assert_eq!(
            verify_nginx_secure_link("/s/link", q, Some("127.0.0.2"), "secret", NOW),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_nginx_secure_link("/s/link", q, None, "secret", NOW),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_nginx_secure_link("/s/other", q, Some("127.0.0.1"), "secret", NOW),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify_nginx_secure_link("/s/link", q, Some("127.0.0.1"), "secreT", NOW),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn nginx_without_remote_addr() {
        let url = nginx_secure_link_url("http://h", "/s/a.ts", NOW + 10, None, "k").unwrap();
        let q = url.split_once('?').unwrap().1;
        assert_eq!(
            verify_nginx_secure_link("/s/a.ts", q, None, "k", NOW),
            Ok(())
        );
        // Same as md5 over "{expires}{uri} {secret}".
        let expect =
            URL_SAFE_NO_PAD.encode(md5_bytes(&[format!("{}/s/a.ts k", NOW + 10).as_bytes()]));
        assert_eq!(query_param(q, "md5"), Ok(Some(expect.as_str())));
    }

    #[test]
    fn nginx_expiry_boundary_and_order() {
        let url = nginx_secure_link_url("http://h", "/s/a", NOW, None, "k").unwrap();
        let q = url.split_once('?').unwrap().1;
        assert_eq!(verify_nginx_secure_link("/s/a", q, None, "k", NOW), Ok(()));
        assert_eq!(
            verify_nginx_secure_link("/s/a", q, None, "k", NOW + 1),
            Err(LinkError::Expired)
        );
        // Signature is checked before expiry (nginx: 403 before 410).
        assert_eq!(
            verify_nginx_secure_link("/s/a", q, None, "bad", NOW + 1),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn nginx_padded_hash_accepted_like_nginx() {
        let url = nginx_secure_link_url("http://h", "/s/a", NOW, None, "k").unwrap();
        let q = url.split_once('?').unwrap().1.replacen("&", "==&", 1);
        assert_eq!(verify_nginx_secure_link("/s/a", &q, None, "k", NOW), Ok(()));
    }

    #[test]
    fn nginx_builder_rejects_bad_input() {
        assert_eq!(
            nginx_secure_link_url("http://h", "/s/a", 0, None, "k"),
            Err(UrlError::InvalidExpiry)
        );
        assert_eq!(
            nginx_secure_link_url("http://h", "/s/a", -5, None, "k"),
            Err(UrlError::InvalidExpiry)
        );
        for bad in ["", "s/a", "/s//a", "/s/./a", "/s/../a", "/..", "/a\0b"] {
            assert_eq!(
                nginx_secure_link_url("http://h", bad, 10, None, "k"),
                Err(UrlError::InvalidComponent("uri")),
                "{bad:?}"
            );
        }
        // Trailing slash is fine; special chars are percent-encoded in the URL.
        assert!(nginx_secure_link_url("http://h", "/s/dir/", 10, None, "k").is_ok());
        let url = nginx_secure_link_url("http://h", "/s/a b%?é", 10, None, "k").unwrap();
        assert!(
            url.starts_with("http://h/s/a%20b%25%3F%C3%A9?md5="),
            "{url}"
        );
    }

    #[test]
    fn nginx_verify_malformed() {
        let cases = [
            "",
            "md5=abc",
            "expires=10",
            "md5=&expires=10",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=0",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=-1",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=+10",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=1e3",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=99999999999999999999999",
            "md5=_e4Nc3iduzkWRm01TBBN&expires=10",
            "md5=_e4Nc3iduzkWRm01TBBNYwAAAA&expires=10",
            "md5=!!!!!!!!!!!!!!!!!!!!!!&expires=10",
            "md5=_e4Nc3iduzkWRm01TBBNYw&md5=x&expires=10",
            "md5=_e4Nc3iduzkWRm01TBBNYw&expires=10&expires=10",
        ];
        for q in cases {
            let r = verify_nginx_secure_link("/s/link", q, None, "secret", NOW);
            assert!(
                matches!(r, Err(LinkError::Missing(_) | LinkError::Malformed(_))),
                "{q:?}: {r:?}"
            );
        }
    }
}
