//! Tollgate's native stream tokens, checked by `POST /streams/verify`.
//!
//! `v1.{kid}.{base64url(json claims)}.{base64url(hmac_sha256(key, "v1.{kid}.{payload}"))}`
//! (base64url without padding). The MAC covers the version tag, the key id
//! and the encoded payload, so none of them can be swapped. The `v1` prefix
//! leaves room for a future format. Verification order: shape and size →
//! key lookup (`UnknownKey`) → constant-time HMAC check (`BadSignature`) →
//! only then base64/JSON decoding of the claims → expiry → IP binding.
//!
//! Expiry follows the JWT `exp` convention: rejected once `now >= exp` (the CDN
//! formats keep the expiry second itself valid, as nginx does).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::digest::URL_SAFE_LENIENT;

type HmacSha256 = Hmac<Sha256>;

/// Standard-alphabet decoder, padding optional (for key material in env vars).
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest native token accepted by [`verify`]; anything longer is malformed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Shortest accepted native signing secret, in bytes (after base64 decoding).
pub const MIN_SECRET_LEN: usize = 16;

/// Longest accepted key id.
pub const MAX_KID_LEN: usize = 64;

/// Claims carried by a native Tollgate token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Stream id.
    #[serde(rename = "str")]
    pub stream: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Expiry, unix seconds; rejected once `now >= exp`.
    pub exp: i64,
    /// Client IP the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Preview (free, limited) access.
    #[serde(default)]
    pub preview: bool,
}

/// Why a native token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Wrong shape, size, version, encoding or JSON.
    Malformed,
    /// The `kid` is not in the verifying key set.
    UnknownKey,
    /// The HMAC does not match.
    BadSignature,
    /// `now >= exp`.
    Expired,
    /// The token is bound to another client IP (or none was given).
    IpMismatch,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::UnknownKey => "unknown signing key",
            TokenError::BadSignature => "bad token signature",
            TokenError::Expired => "token expired",
            TokenError::IpMismatch => "token bound to another client IP",
        })
    }
}

impl std::error::Error for TokenError {}

/// A configuration error in a signing key set. Never contains secret
/// material: entries are named by position (1-based) and, once valid, kid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfigError(String);

impl fmt::Display for KeyConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyConfigError {}

fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// HMAC keys for native tokens. The first key signs; all keys verify.
///
/// Parsed from the env format `kid:base64secret,kid2:base64secret2`
/// (standard or URL-safe base64, padding optional; whitespace around entries
/// is ignored). `Debug` prints only the kids.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl SigningKeys {
    /// Parses the env format. See the type docs.
    pub fn parse(spec: &str) -> Result<Self, KeyConfigError> {
        let mut keys = Vec::new();
        for (i, raw) in spec.split(',').enumerate() {
            let n = i + 1;
            let entry = raw.trim();
            if entry.is_empty() {
                return Err(KeyConfigError(format!("signing key entry #{n} is empty")));
            }
            let Some((kid, b64)) = entry.split_once(':') else {
                return Err(KeyConfigError(format!(
                    "signing key entry #{n} is not of the form kid:base64secret"
                )));
            };
            let kid = kid.trim();
            if !is_valid_kid(kid) {
                return Err(KeyConfigError(format!(
                    "signing key entry #{n} has an invalid kid (1-{MAX_KID_LEN} chars of [A-Za-z0-9_-])"
                )));
            }
            let b64 = b64.trim();
            let secret = STANDARD_LENIENT
                .decode(b64)
                .or_else(|_| URL_SAFE_LENIENT.decode(b64))
                .map_err(|_| {
                    KeyConfigError(format!(
                        "signing key entry #{n} (kid {kid}): secret is not valid base64"
                    ))
                })?;
            keys.push((kid.to_owned(), secret));
        }
        Self::new(keys)
    }

    /// Builds a key set from `(kid, secret)` pairs; the first one signs.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Result<Self, KeyConfigError> {
        if keys.is_empty() {
            return Err(KeyConfigError("no signing keys configured".into()));
        }
        for (i, (kid, secret)) in keys.iter().enumerate() {
            let n = i + 1;
            if !is_valid_kid(kid) {
                return Err(KeyConfigError(format!(
                    "signing key entry #{n} has an invalid kid (1-{MAX_KID_LEN} chars of [A-Za-z0-9_-])"
                )));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeyConfigError(format!(
                    "signing key entry #{n} (kid {kid}): secret must be at least {MIN_SECRET_LEN} bytes"
                )));
            }
            if keys[..i].iter().any(|(k, _)| k == kid) {
                return Err(KeyConfigError(format!(
                    "signing key entry #{n}: duplicate kid {kid}"
                )));
            }
        }
        Ok(Self { keys })
    }

    /// The kid used for signing.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// All kids, signing kid first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.as_str())
    }

    fn secret_for(&self, kid: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, s)| s.as_slice())
    }
}

impl FromStr for SigningKeys {
    type Err = KeyConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

const TOKEN_VERSION: &str = "v1";

fn token_mac(secret: &[u8], signed_part: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(signed_part.as_bytes());
    mac
}

/// Signs `claims` with the first key:
/// `v1.{kid}.{base64url(json)}.{base64url(hmac)}`.
pub fn sign(keys: &SigningKeys, claims: &Claims) -> String {
    let (kid, secret) = &keys.keys[0];
    // Serialising a struct of strings, integers and bools cannot fail.
    let json = serde_json::to_vec(claims).expect("Claims serialise to JSON");
    let signed_part = format!("{TOKEN_VERSION}.{kid}.{}", URL_SAFE_NO_PAD.encode(json));
    let tag = token_mac(secret, &signed_part).finalize().into_bytes();
    format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(tag))
}

fn same_ip(bound: &str, client: &str) -> bool {
    match (bound.parse::<IpAddr>(), client.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a.to_canonical() == b.to_canonical(),
        _ => bound == client,
    }
}

/// Verifies a native token. Order: shape → kid (`UnknownKey`) → HMAC
/// (`BadSignature`, constant-time) → claims decoding (`Malformed`) →
/// `now >= exp` (`Expired`) → IP binding (`IpMismatch`: the token has an
/// `ip` and `client_ip` is absent or differs; IPv4-mapped IPv6 equals IPv4).
pub fn verify(
    keys: &SigningKeys,
    token: &str,
    now: i64,
    client_ip: Option<&str>,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed_part, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed_part.split('.');
    let (Some(version), Some(kid), Some(payload_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if version != TOKEN_VERSION || !is_valid_kid(kid) || payload_b64.is_empty() {
        return Err(TokenError::Malformed);
    }
    let secret = keys.secret_for(kid).ok_or(TokenError::UnknownKey)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed)?;
    token_mac(secret, signed_part)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if let Some(bound) = &claims.ip {
        match client_ip {
            Some(client) if same_ip(bound, client) => {}
            _ => return Err(TokenError::IpMismatch),
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{aliyun, nginx, tencent, url};

    const NOW: i64 = 1_700_000_000;

    fn keys(spec: &str) -> SigningKeys {
        SigningKeys::parse(spec).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn claims() -> Claims {
        Claims {
            stream: "stream-1".into(),
            sub: "user-42".into(),
            sid: "sess-9".into(),
            exp: NOW + 300,
            ip: None,
            preview: false,
        }
    }

    fn k1() -> String {
        format!("k1:{}", b64(&[1u8; 32]))
    }
    fn k2() -> String {
        format!("k2:{}", b64(&[2u8; 32]))
    }

    #[test]
    fn native_round_trip() {
        let ks = keys(&k1());
        let c = claims();
        let t = sign(&ks, &c);
        assert!(t.starts_with("v1.k1."), "{t}");
        assert_eq!(t.split('.').count(), 4);
        assert_eq!(verify(&ks, &t, NOW, None), Ok(c.clone()));
        assert_eq!(verify(&ks, &t, NOW, Some("203.0.113.7")), Ok(c));
        let p = Claims {
            preview: true,
            ..claims()
        };
        assert_eq!(verify(&ks, &sign(&ks, &p), NOW, None).unwrap(), p);
    }

    #[test]
    fn native_payload_is_plain_json() {
        let ks = keys(&k1());
        let t = sign(&ks, &claims());
        let payload = t.split('.').nth(2).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(json["str"], "stream-1");
        assert_eq!(json["sub"], "user-42");
        assert_eq!(json["sid"], "sess-9");
        assert_eq!(json["exp"], NOW + 300);
        assert_eq!(json["preview"], false);
        assert!(json.get("ip").is_none());
    }

    #[test]
    fn native_tampered_payload() {
        let ks = keys(&k1());
        let t = sign(&ks, &claims());
        let parts: Vec<&str> = t.split('.').collect();
        let evil = Claims {
            sub: "admin".into(),
            exp: i64::MAX,
            ..claims()
        };
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        let forged = format!("{}.{}.{}.{}", parts[0], parts[1], evil_payload, parts[3]);
        assert_eq!(
            verify(&ks, &forged, NOW, None),
            Err(TokenError::BadSignature)
        );
        // Flipping one payload character.
        let mut bytes = t.clone().into_bytes();
        let i = parts[0].len() + parts[1].len() + 3;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let t2 = String::from_utf8(bytes).unwrap();
        assert_eq!(verify(&ks, &t2, NOW, None), Err(TokenError::BadSignature));
        // Garbage payload with a bad signature fails on the signature, not JSON.
        let junk = format!("v1.k1.bm90LWpzb24.{}", parts[3]);
        assert_eq!(verify(&ks, &junk, NOW, None), Err(TokenError::BadSignature));
        // Truncated (but well-encoded) signature.
        let mut tag = URL_SAFE_NO_PAD.decode(parts[3]).unwrap();
        tag.truncate(16);
        let short = format!(
            "{}.{}.{}.{}",
            parts[0],
            parts[1],
            parts[2],
            URL_SAFE_NO_PAD.encode(&tag)
        );
        assert_eq!(
            verify(&ks, &short, NOW, None),
            Err(TokenError::BadSignature)
        );
        // Swapping the kid into another valid one with the same signature.
        let ks2 = keys(&format!("{},{}", k1(), k2()));
        let swapped = t.replacen("v1.k1.", "v1.k2.", 1);
        assert_eq!(
            verify(&ks2, &swapped, NOW, None),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn native_signed_garbage_json_is_malformed() {
        let ks = keys(&k1());
        let secret = ks.secret_for("k1").unwrap().to_vec();
        for payload in [&b"not json"[..], b"{}", b"{\"str\":1}", b"[]", b"null"] {
            let signed_part = format!("v1.k1.{}", URL_SAFE_NO_PAD.encode(payload));
            let tag = token_mac(&secret, &signed_part).finalize().into_bytes();
            let t = format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(tag));
            assert_eq!(verify(&ks, &t, NOW, None), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn native_wrong_key() {
        let t = sign(&keys(&k1()), &claims());
        let same_kid_other_secret = keys(&format!("k1:{}", b64(&[9u8; 32])));
        assert_eq!(
            verify(&same_kid_other_secret, &t, NOW, None),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&keys(&k2()), &t, NOW, None),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn native_key_rotation() {
        let old = keys(&k1());
        let t_old = sign(&old, &claims());
        // Rotation step: new key signs, old key still verifies.
        let rotating = keys(&format!("{},{}", k2(), k1()));
        assert_eq!(rotating.signing_kid(), "k2");
        assert!(verify(&rotating, &t_old, NOW, None).is_ok());
        let t_new = sign(&rotating, &claims());
        assert!(t_new.starts_with("v1.k2."));
        assert!(verify(&rotating, &t_new, NOW, None).is_ok());
        // Old key removed.
        let rotated = keys(&k2());
        assert_eq!(
            verify(&rotated, &t_old, NOW, None),
            Err(TokenError::UnknownKey)
        );
        assert!(verify(&rotated, &t_new, NOW, None).is_ok());
    }

    #[test]
    fn native_expiry_boundary() {
        let ks = keys(&k1());
        let t = sign(
            &ks,
            &Claims {
                exp: NOW,
                ..claims()
            },
        );
        assert!(verify(&ks, &t, NOW - 1, None).is_ok());
        assert_eq!(verify(&ks, &t, NOW, None), Err(TokenError::Expired));
        assert_eq!(verify(&ks, &t, NOW + 1, None), Err(TokenError::Expired));
        let t = sign(
            &ks,
            &Claims {
                exp: i64::MIN,
                ..claims()
            },
        );
        assert_eq!(verify(&ks, &t, i64::MIN, None), Err(TokenError::Expired));
    }

    #[test]
    fn native_ip_binding() {
        let ks = keys(&k1());
        let t = sign(
            &ks,
            &Claims {
                ip: Some("203.0.113.7".into()),
                ..claims()
            },
        );
        assert!(verify(&ks, &t, NOW, Some("203.0.113.7")).is_ok());
        assert!(verify(&ks, &t, NOW, Some("::ffff:203.0.113.7")).is_ok());
        assert_eq!(
            verify(&ks, &t, NOW, Some("203.0.113.8")),
            Err(TokenError::IpMismatch)
        );
        assert_eq!(verify(&ks, &t, NOW, None), Err(TokenError::IpMismatch));
        assert_eq!(verify(&ks, &t, NOW, Some("")), Err(TokenError::IpMismatch));
        assert_eq!(
            verify(&ks, &t, NOW, Some("garbage")),
            Err(TokenError::IpMismatch)
        );
        let t6 = sign(
            &ks,
            &Claims {
                ip: Some("2001:db8::1".into()),
                ..claims()
            },
        );
        assert!(verify(&ks, &t6, NOW, Some("2001:0db8:0:0::1")).is_ok());
        assert_eq!(
            verify(&ks, &t6, NOW, Some("2001:db8::2")),
            Err(TokenError::IpMismatch)
        );
        // Expiry is reported before IP mismatch.
        assert_eq!(
            verify(&ks, &t, NOW + 1000, Some("1.1.1.1")),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn native_malformed_inputs_never_panic() {
        let ks = keys(&format!("{},{}", k1(), k2()));
        let good = sign(&ks, &claims());
        let long_dots = ".".repeat(10_000);
        let long_token = format!("v1.k1.{}.AAAA", "A".repeat(MAX_TOKEN_LEN));
        let many_segments = format!("{good}.{good}");
        let mut inputs: Vec<String> = [
            "",
            ".",
            "..",
            "...",
            "....",
            ".....",
            "v1",
            "v1.",
            "v1..",
            "v1...",
            "v1.k1..",
            "v1.k1.e30.",
            "v1..e30.AAAA",
            "v2.k1.e30.AAAA",
            "V1.k1.e30.AAAA",
            "v1.k1.e30",
            "v1.k 1.e30.AAAA",
            "v1.k.1.e30.AAAA",
            "v1.k1.e30.AAAA",
            "v1.k1.e30.====",
            "v1.k1.e30.!!!!",
            "v1.k1.e30.A",
            "v1.k\u{e9}.e30.AAAA",
            "v1.k1.\u{1F600}.AAAA",
            "\u{1F600}.\u{1F600}.\u{1F600}.\u{1F600}",
            "日本語.トークン.です.よ",
            "\0\0\0",
            "v1.k1.e30.AAAA\0",
            " v1.k1.e30.AAAA",
            "v1.k1.e30.AAAA\n",
            "null",
            "{\"str\":\"x\"}",
            "Bearer v1.k1.e30.AAAA",
            "v1.unknown-kid.e30.AAAA",
            "v1.unknown_kid.e30.AAAA",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push(long_dots);
        inputs.push(long_token);
        inputs.push(many_segments);
        inputs.push(format!("{good}."));
        inputs.push(format!(".{good}"));
        inputs.push(format!("{good}="));
        inputs.push(good.replace('.', ".."));
        inputs.push(good.replacen("v1.k1.", "v1.k1.=", 1));
        inputs.push(good[..good.len() / 2].to_string());
        inputs.push(format!("v1.{}.e30.AAAA", "k".repeat(MAX_KID_LEN + 1)));
        for s in &inputs {
            let r = verify(&ks, s, NOW, Some("127.0.0.1"));
            assert!(r.is_err(), "{s:?} unexpectedly verified");
            assert_ne!(r, Err(TokenError::Expired), "{s:?}");
            // And the CDN verifiers never panic on the same junk.
            let _ = nginx::verify_nginx_secure_link(s, s, Some(s), s, NOW);
            let _ = tencent::verify_tencent_url(s, s, s, NOW);
            let _ = aliyun::verify_aliyun_url(s, s, s, NOW, i64::MAX);
            let _ = url::query_param(s, "md5");
            let _ = url::url_path(s);
            let _ = tencent::tencent_stream_name_from_path(s);
            let _ = nginx::nginx_secure_link_url(s, s, NOW, Some(s), s);
            let _ = tencent::tencent_play_url(s, s, s, s, s, NOW);
            let _ = tencent::tencent_sign_url(s, s, s, NOW);
            let _ = aliyun::aliyun_sign_url(s, NOW, s, s, s);
            let _ = SigningKeys::parse(s);
        }
        assert!(verify(&ks, &good, NOW, None).is_ok());
    }

    // --- key set parsing ---

    #[test]
    fn keys_parse_ok() {
        let spec = format!(" {} , {} ", k1(), k2());
        let ks: SigningKeys = spec.parse().unwrap();
        assert_eq!(ks.signing_kid(), "k1");
        assert_eq!(ks.kids().collect::<Vec<_>>(), ["k1", "k2"]);
        // URL-safe alphabet and missing padding are accepted.
        let raw = [0xfbu8; 17];
        let url_nopad = URL_SAFE_NO_PAD.encode(raw);
        assert!(url_nopad.contains('-') || url_nopad.contains('_'));
        let ks = keys(&format!("a-b_C9:{url_nopad}"));
        assert_eq!(ks.secret_for("a-b_C9"), Some(&raw[..]));
    }

    #[test]
    fn keys_parse_errors_name_entry_but_not_secret() {
        let secret16 = b64(b"0123456789abcdef");
        let short = b64(b"fifteen-bytes!!");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "entry #1 is empty"),
            (format!("{},", k1()), "entry #2 is empty"),
            (format!("k1{secret16}"), "entry #1 is not of the form"),
            (format!(":{secret16}"), "entry #1 has an invalid kid"),
            (format!("k.1:{secret16}"), "entry #1 has an invalid kid"),
            (
                format!("{},k\u{e9}:{secret16}", k1()),
                "entry #2 has an invalid kid",
            ),
            (
                format!("k1:{short}"),
                "entry #1 (kid k1): secret must be at least 16 bytes",
            ),
            (
                "k1:not*base64!".to_string(),
                "entry #1 (kid k1): secret is not valid base64",
            ),
            (
                format!("k1:{secret16},k1:{secret16}"),
                "entry #2: duplicate kid k1",
            ),
        ];
        for (spec, expect) in cases {
            let err = SigningKeys::parse(&spec).unwrap_err().to_string();
            assert!(err.contains(expect), "{spec:?}: {err}");
            assert!(!err.contains(&secret16), "{err}");
            assert!(!err.contains(&short), "{err}");
            assert!(!err.contains("not*base64"), "{err}");
        }
        assert!(SigningKeys::new(vec![]).is_err());
    }

    #[test]
    fn keys_debug_hides_secrets() {
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
        let ks = keys(&format!("main:{secret},old:{}", b64(&[7u8; 16])));
        let dbg = format!("{ks:?}");
        assert!(dbg.contains("main") && dbg.contains("old"), "{dbg}");
        assert!(!dbg.contains(secret), "{dbg}");
        assert!(!dbg.contains("115, 101"), "{dbg}"); // bytes of "se"
        assert!(!dbg.contains("7, 7"), "{dbg}");
        let alt = format!("{ks:#?}");
        assert!(!alt.contains(secret), "{alt}");
    }
}
