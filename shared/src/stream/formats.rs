//! Signed playback URL / token formats used by Tollgate.
//!
//! Pure code: no I/O, no async, no clocks (callers pass `now` as unix
//! seconds), and no panics on caller- or attacker-controlled input.
//!
//! Formats:
//!
//! * [nginx `secure_link`](#nginx-secure_link) (`md5` + `expires` query args),
//! * [Tencent Cloud CSS hotlink protection](#tencent-cloud-css-live) (`txSecret` + `txTime`),
//! * [Alibaba Cloud CDN / ApsaraVideo Live type A](#alibaba-cloud-type-a) (`auth_key`),
//! * [Tollgate native tokens](#native-tokens) (HMAC-SHA256, key rotation by `kid`).
//!
//! All digest comparisons are constant-time: HMAC through
//! [`hmac::Mac::verify_slice`], MD5 digests through a small byte comparison
//! that never exits early.
//!
//! ## Expiry boundaries
//!
//! The CDN formats treat the expiry second itself as still valid, like nginx
//! does (`expires < now` ⇒ expired): a link is rejected once `now > expiry`.
//! Native tokens follow the JWT `exp` convention instead: rejected once
//! `now >= exp`.
//!
//! ## Query strings
//!
//! The `verify_*` helpers take the request path and the *raw* query string
//! (as an edge hook receives it, with or without the leading `?`). Parameter
//! values are compared raw, without percent-decoding, which is what nginx's
//! `$arg_*` does; every value these formats produce is made of URL-safe
//! characters anyway. A signature parameter that appears twice is rejected as
//! malformed, so the edge and the CDN can never disagree about which copy
//! counts.
//!
//! # nginx secure_link
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
//! # Tencent Cloud CSS (live)
//!
//! Hotlink protection per
//! <https://www.tencentcloud.com/document/product/267/31560> and the URL
//! splicing rules at <https://www.tencentcloud.com/document/product/267/38393>:
//! `txSecret = lowercase hex md5(KEY + StreamName + txTime)`, where `txTime`
//! is the time the URL **expires**, as unix seconds in hexadecimal (the docs'
//! examples use uppercase, e.g. `5C271099`, and also show lowercase
//! `65029b21`). `StreamName` is the stream id as it appears in the path,
//! without the protocol suffix (`.flv`, `.m3u8`, ...):
//! `http://domain/AppName/StreamName.flv?txSecret=...&txTime=...`. The docs
//! also note that the CDN's actual cut-off is `txTime` plus the validity
//! period configured for the key in the console; [`verify_tencent_url`] is
//! strict and stops at `txTime`.
//!
//! # Alibaba Cloud type A
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
//!
//! # Native tokens
//!
//! `v1.{kid}.{base64url(json claims)}.{base64url(hmac_sha256(key, "v1.{kid}.{payload}"))}`
//! (base64url without padding). The MAC covers the version tag, the key id
//! and the encoded payload, so none of them can be swapped. The `v1` prefix
//! leaves room for a future format. Verification order: shape and size →
//! key lookup (`UnknownKey`) → constant-time HMAC check (`BadSignature`) →
//! only then base64/JSON decoding of the claims → expiry → IP binding.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// URL-safe base64 decoder that accepts input with or without `=` padding
/// (nginx's `ngx_decode_base64url` stops at `=`).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Constant-time equality for byte strings (lengths are not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn md5_bytes(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn is_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a non-empty run of ASCII decimal digits (no sign, no spaces).
fn parse_decimal(s: &str) -> Option<i64> {
    if !is_ascii_digits(s) {
        return None;
    }
    s.parse().ok()
}

/// Parses a non-empty run of ASCII hex digits (either case, no sign, no `0x`).
fn parse_hex(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(s, 16).ok()
}

/// Decodes exactly 32 hex digits (either case) into 16 bytes.
fn decode_hex16(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Errors from the URL builders: the named input cannot be represented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// The named input is empty or has characters the format cannot carry.
    InvalidComponent(&'static str),
    /// The expiry / timestamp is not a positive number of seconds.
    InvalidExpiry,
    /// The URL already carries the named signature parameter.
    AlreadySigned(&'static str),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::InvalidComponent(what) => write!(f, "invalid {what}"),
            UrlError::InvalidExpiry => f.write_str("expiry must be a positive unix time"),
            UrlError::AlreadySigned(p) => write!(f, "URL already has a `{p}` parameter"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Why a signed CDN URL was rejected by a `verify_*` helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// A required query parameter is absent.
    Missing(&'static str),
    /// A parameter (or the path) is unparseable or duplicated.
    Malformed(&'static str),
    /// The digest does not match.
    BadSignature,
    /// The signature is valid but the link has expired.
    Expired,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Missing(p) => write!(f, "missing `{p}` parameter"),
            LinkError::Malformed(p) => write!(f, "malformed `{p}`"),
            LinkError::BadSignature => f.write_str("bad signature"),
            LinkError::Expired => f.write_str("link expired"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Returns the raw value of query parameter `name` (first `=` splits name and
/// value; a bare `name` has an empty value). `Ok(None)` when absent,
/// `Err(Malformed)` when present more than once.
pub fn query_param<'a>(query: &'a str, name: &'static str) -> Result<Option<&'a str>, LinkError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(LinkError::Malformed(name));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

fn required_param<'a>(query: &'a str, name: &'static str) -> Result<&'a str, LinkError> {
    query_param(query, name)?.ok_or(LinkError::Missing(name))
}

/// Splits `url` into (everything before the query, query without `?`,
/// fragment including `#`). Missing parts are empty strings.
fn split_url(url: &str) -> (&str, &str, &str) {
    let (rest, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    match rest.split_once('?') {
        Some((head, q)) => (head, q, fragment),
        None => (rest, "", fragment),
    }
}

/// The path of an absolute URL (`scheme://host[:port]/path`), or of a bare
/// path; `/` when the URL has none. Query and fragment are excluded.
pub fn url_path(url: &str) -> &str {
    let (head, _, _) = split_url(url);
    let after_scheme = match head.find("://") {
        Some(i) => &head[i + 3..],
        None => {
            if head.starts_with('/') {
                return head;
            }
            head
        }
    };
    match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "/",
    }
}

/// Appends `params` (already URL-safe) to `url`, keeping any existing query
/// and fragment. Fails if one of the parameter names is already present.
pub fn append_params(url: &str, params: &[(&'static str, &str)]) -> Result<String, UrlError> {
    let (head, query, fragment) = split_url(url);
    for (name, _) in params {
        if !matches!(query_param(query, name), Ok(None)) {
            return Err(UrlError::AlreadySigned(name));
        }
    }
    let mut out = String::with_capacity(url.len() + 96);
    out.push_str(head);
    out.push('?');
    if !query.is_empty() {
        out.push_str(query);
        if !query.ends_with('&') {
            out.push('&');
        }
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out.push_str(fragment);
    Ok(out)
}

fn trim_base(base: &str) -> &str {
    base.trim_end_matches('/')
}

/// Characters allowed in an app / stream name used as a path segment.
fn is_segment_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!' | b'*')
        })
}

// ---------------------------------------------------------------------------
// nginx secure_link
// ---------------------------------------------------------------------------

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
    if !ct_eq(&given, &expected) {
        return Err(LinkError::BadSignature);
    }
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tencent Cloud CSS
// ---------------------------------------------------------------------------

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
const TENCENT_SUFFIXES: &[&str] = &[".flv", ".m3u8", ".mpd", ".sdp", ".ts", ".mp4"];

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
    if !ct_eq(&given, &expected) {
        return Err(LinkError::BadSignature);
    }
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Alibaba Cloud CDN / ApsaraVideo Live, type A
// ---------------------------------------------------------------------------

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
    if !ct_eq(&given, &expected) {
        return Err(LinkError::BadSignature);
    }
    if now > ts.saturating_add(validity_secs.max(0)) {
        return Err(LinkError::Expired);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Native tokens
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

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

    // --- shared helpers ---

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn query_param_parsing() {
        assert_eq!(query_param("a=1&b=2", "b"), Ok(Some("2")));
        assert_eq!(query_param("?a=1&b=2", "a"), Ok(Some("1")));
        assert_eq!(query_param("a&b=2", "a"), Ok(Some("")));
        assert_eq!(query_param("a=1=2", "a"), Ok(Some("1=2")));
        assert_eq!(query_param("", "a"), Ok(None));
        assert_eq!(query_param("aa=1", "a"), Ok(None));
        assert_eq!(query_param("a=1&a=2", "a"), Err(LinkError::Malformed("a")));
    }

    #[test]
    fn url_path_variants() {
        assert_eq!(url_path("https://h.example/a/b.flv?x=1#f"), "/a/b.flv");
        assert_eq!(url_path("rtmp://h.example:1935/live/s"), "/live/s");
        assert_eq!(url_path("https://h.example"), "/");
        assert_eq!(url_path("https://h.example?x=1"), "/");
        assert_eq!(url_path("/p/q?x"), "/p/q");
        assert_eq!(url_path(""), "/");
    }

    // --- nginx ---

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

    // --- Tencent ---

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

    // --- Alibaba ---

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

    // --- native tokens ---

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
            let _ = verify_nginx_secure_link(s, s, Some(s), s, NOW);
            let _ = verify_tencent_url(s, s, s, NOW);
            let _ = verify_aliyun_url(s, s, s, NOW, i64::MAX);
            let _ = query_param(s, "md5");
            let _ = url_path(s);
            let _ = tencent_stream_name_from_path(s);
            let _ = nginx_secure_link_url(s, s, NOW, Some(s), s);
            let _ = tencent_play_url(s, s, s, s, s, NOW);
            let _ = tencent_sign_url(s, s, s, NOW);
            let _ = aliyun_sign_url(s, NOW, s, s, s);
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
