//! Shared types and helpers for the payment-provider wire-format modules.
//!
//! Everything here is pure: no I/O, no clock, no global state. Crypto is
//! done exclusively with `aws-lc-rs` (the same library rustls / the AWS SDK
//! already pull in), X.509 parsing with `x509-cert`, PEM with
//! `rustls-pki-types`.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls_pki_types::pem::{PemObject, SectionKind};

// ---------------------------------------------------------------------------
// Output types (shape fixed by the integration brief)
// ---------------------------------------------------------------------------

/// What a verified provider notification means for our order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    Paid,
    Refunded,
    Closed,
    Pending,
}

/// A provider notification whose signature (and, where applicable,
/// encryption) has been verified and whose app / merchant ids matched the
/// configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedNotification {
    pub kind: NotificationKind,
    /// Our order id.
    pub out_trade_no: String,
    /// transaction_id (WeChat) / trade_no (Alipay) / orderId (Huya).
    pub provider_txn_id: String,
    /// Total paid (or, for WeChat refund notifications, the refunded amount),
    /// in minor units (fen).
    pub amount_minor: i64,
    /// ISO currency, "CNY" for all three providers.
    pub currency: String,
    /// Unix seconds, if the provider states when the event happened.
    pub occurred_at: Option<i64>,
    /// Decoded fields for the audit record. Never contains keys or signatures
    /// we could not verify... it contains only provider-sent business fields.
    pub raw: serde_json::Value,
}

/// Why a notification / response was rejected. `Display` output is safe to
/// log: it never contains key material and only short, provider-controlled
/// identifiers (serials, field names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    BadSignature,
    UnknownKey(String),
    StaleTimestamp,
    WrongApp,
    WrongMerchant,
    Malformed(String),
    Unsupported(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::BadSignature => f.write_str("signature verification failed"),
            VerifyError::UnknownKey(s) => write!(f, "unknown verification key: {}", clip(s)),
            VerifyError::StaleTimestamp => f.write_str("timestamp outside the accepted window"),
            VerifyError::WrongApp => f.write_str("app id does not match configuration"),
            VerifyError::WrongMerchant => f.write_str("merchant id does not match configuration"),
            VerifyError::Malformed(s) => write!(f, "malformed message: {}", clip(s)),
            VerifyError::Unsupported(s) => write!(f, "unsupported: {}", clip(s)),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Limit attacker-controlled text that ends up in log lines.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX)
        .collect();
    if s.chars().count() > MAX {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

/// Configuration / key-loading error. The message never contains key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider configuration error: {}", self.0)
    }
}
impl std::error::Error for ConfigError {}

/// Error building an outgoing request (bad input or signing failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    InvalidInput(String),
    Signing,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidInput(s) => write!(f, "invalid request input: {s}"),
            BuildError::Signing => f.write_str("signing failed"),
        }
    }
}
impl std::error::Error for BuildError {}

// ---------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------

/// Parse a decimal yuan string into fen, exactly.
///
/// Accepted: `"12"`, `"12.0"`, `"12.00"`, `"0.01"`. Rejected: empty, sign,
/// exponent, more than two decimals (`"12.001"`), trailing dot (`"12."`),
/// leading dot (`".5"`), whitespace, overflow.
pub fn parse_yuan_to_fen(s: &str) -> Option<i64> {
    let (int_part, frac_part) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int_part.is_empty() || int_part.len() > 15 || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut fen: i64 = int_part.parse::<i64>().ok()?.checked_mul(100)?;
    if let Some(f) = frac_part {
        if f.is_empty() || f.len() > 2 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut v: i64 = f.parse().ok()?;
        if f.len() == 1 {
            v *= 10;
        }
        fen = fen.checked_add(v)?;
    }
    Some(fen)
}

/// Format fen as a yuan string with exactly two decimals (`1234` → `"12.34"`).
/// Returns `None` for negative amounts.
pub fn fen_to_yuan(fen: i64) -> Option<String> {
    if fen < 0 {
        return None;
    }
    Some(format!("{}.{:02}", fen / 100, fen % 100))
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn civil_to_unix(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..61).contains(&s)
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s)
}

/// Parse an RFC 3339 timestamp (`2015-05-20T13:29:35+08:00`, `...Z`,
/// optional fractional seconds) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() {
        return None;
    }
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let y = digits(&s[0..4])?;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    let h = digits(&s[11..13])?;
    let mi = digits(&s[14..16])?;
    let sec = digits(&s[17..19])?;
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = if rest == "Z" || rest == "z" {
        0
    } else {
        let rb = rest.as_bytes();
        if rb.len() != 6 || rb[3] != b':' {
            return None;
        }
        let sign = match rb[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let oh = digits(&rest[1..3])?;
        let om = digits(&rest[4..6])?;
        if oh > 23 || om > 59 {
            return None;
        }
        sign * (oh * 3600 + om * 60)
    };
    Some(civil_to_unix(y, mo, d, h, mi, sec)? - offset)
}

/// Format unix seconds as RFC 3339 in China Standard Time
/// (`2024-01-02T03:04:05+08:00`), the form WeChat Pay shows in its docs.
pub fn format_rfc3339_cst(unix: i64) -> String {
    let t = unix + 8 * 3600;
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+08:00",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Format unix seconds as `yyyy-MM-dd HH:mm:ss` in China Standard Time
/// (Alipay's `timestamp` / `time_expire` format).
pub fn format_cst_datetime(unix: i64) -> String {
    let t = unix + 8 * 3600;
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Parse `yyyy-MM-dd HH:mm:ss` interpreted as China Standard Time (UTC+8).
pub fn parse_cst_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19
        || !s.is_ascii()
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let t = civil_to_unix(
        digits(&s[0..4])?,
        digits(&s[5..7])?,
        digits(&s[8..10])?,
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    )?;
    Some(t - 8 * 3600)
}

/// Parse `yyyyMMddHHmmss` interpreted as China Standard Time (UTC+8).
pub fn parse_compact_cst(s: &str) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = civil_to_unix(
        digits(&s[0..4])?,
        digits(&s[4..6])?,
        digits(&s[6..8])?,
        digits(&s[8..10])?,
        digits(&s[10..12])?,
        digits(&s[12..14])?,
    )?;
    Some(t - 8 * 3600)
}

// ---------------------------------------------------------------------------
// RSA keys
// ---------------------------------------------------------------------------

/// An RSA private key used for SHA256withRSA (PKCS#1 v1.5) signatures.
/// `Debug` prints only the public modulus size.
pub struct RsaPrivateKey {
    pair: RsaKeyPair,
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaPrivateKey({} bits, <redacted>)",
            self.pair.public_modulus_len() * 8
        )
    }
}

impl RsaPrivateKey {
    /// Load from PEM (`PRIVATE KEY` = PKCS#8, or `RSA PRIVATE KEY` = PKCS#1),
    /// or from bare base64 DER without PEM armour (the form Alipay's key tool
    /// shows), trying PKCS#8 then PKCS#1.
    pub fn from_pem_or_base64(text: &str) -> Result<Self, ConfigError> {
        let text = unescape_newlines(text);
        let pair = if text.contains("-----BEGIN") {
            let (kind, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(text.as_bytes())
                .map_err(|_| ConfigError("private key: invalid PEM".into()))?;
            match kind {
                SectionKind::PrivateKey => RsaKeyPair::from_pkcs8(&der),
                SectionKind::RsaPrivateKey => RsaKeyPair::from_der(&der),
                _ => {
                    return Err(ConfigError(
                        "private key: PEM section is not an RSA private key".into(),
                    ))
                }
            }
            .map_err(|_| {
                ConfigError("private key: not an acceptable RSA key (2048..8192 bits)".into())
            })?
        } else {
            let der = decode_b64_lenient(&text)
                .ok_or_else(|| ConfigError("private key: not PEM and not base64".into()))?;
            RsaKeyPair::from_pkcs8(&der)
                .or_else(|_| RsaKeyPair::from_der(&der))
                .map_err(|_| {
                    ConfigError("private key: not an acceptable RSA key (2048..8192 bits)".into())
                })?
        };
        Ok(RsaPrivateKey { pair })
    }

    /// base64(SHA256withRSA(msg)), PKCS#1 v1.5 padding.
    pub fn sign_sha256_b64(&self, msg: &[u8]) -> Result<String, BuildError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| BuildError::Signing)?;
        Ok(B64.encode(sig))
    }
}

/// An RSA public key used to verify SHA256withRSA (PKCS#1 v1.5) signatures.
#[derive(Clone)]
pub struct RsaPublicKey {
    spki_der: Vec<u8>,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({} DER bytes)", self.spki_der.len())
    }
}

impl RsaPublicKey {
    /// From DER SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey); the key is
    /// parsed and checked immediately.
    pub fn from_der(der: &[u8]) -> Result<Self, ConfigError> {
        aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| ConfigError("public key: not a valid RSA public key".into()))?;
        // Keep the bytes; `UnparsedPublicKey` accepts both RFC 5280 and 8017.
        Ok(RsaPublicKey {
            spki_der: der.to_vec(),
        })
    }

    /// From PEM `PUBLIC KEY` (SPKI), PEM `CERTIFICATE` (X.509, the key is taken
    /// from its SubjectPublicKeyInfo), or bare base64 SPKI DER (Alipay's
    /// "支付宝公钥" as shown in the console).
    pub fn from_pem_or_base64(text: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_pem_or_base64_with_cert_serial(text)?.0)
    }

    /// Like [`Self::from_pem_or_base64`] but also returns the certificate's
    /// serial number as uppercase hex (no leading zero bytes) if the input was
    /// an X.509 certificate.
    pub fn from_pem_or_base64_with_cert_serial(
        text: &str,
    ) -> Result<(Self, Option<String>), ConfigError> {
        let text = unescape_newlines(text);
        if text.contains("-----BEGIN") {
            let (kind, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(text.as_bytes())
                .map_err(|_| ConfigError("public key: invalid PEM".into()))?;
            match kind {
                SectionKind::PublicKey => Ok((Self::from_der(&der)?, None)),
                SectionKind::Certificate => {
                    let (spki, serial) = spki_from_certificate(&der)?;
                    Ok((Self::from_der(&spki)?, Some(serial)))
                }
                _ => Err(ConfigError(
                    "public key: PEM section must be PUBLIC KEY or CERTIFICATE".into(),
                )),
            }
        } else {
            let der = decode_b64_lenient(&text)
                .ok_or_else(|| ConfigError("public key: not PEM and not base64".into()))?;
            Ok((Self::from_der(&der)?, None))
        }
    }

    /// Verify a SHA256withRSA (PKCS#1 v1.5) signature. Accepts 2048..8192-bit keys.
    pub fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.spki_der)
            .verify(msg, sig)
            .is_ok()
    }

    /// Verify a base64 signature; any base64 error is a bad signature.
    pub fn verify_sha256_b64(&self, msg: &[u8], sig_b64: &str) -> bool {
        match B64.decode(sig_b64.trim()) {
            Ok(sig) => self.verify_sha256(msg, &sig),
            Err(_) => false,
        }
    }
}

/// Extract the DER SubjectPublicKeyInfo and serial (uppercase hex) from a DER
/// X.509 certificate. Validity dates and chain are NOT checked (WeChat Pay's
/// docs only ask to match the serial from `Wechatpay-Serial`).
fn spki_from_certificate(der: &[u8]) -> Result<(Vec<u8>, String), ConfigError> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|_| ConfigError("certificate: invalid X.509 DER".into()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| ConfigError("certificate: cannot re-encode public key".into()))?;
    let serial = normalize_serial(&hex::encode_upper(
        cert.tbs_certificate.serial_number.as_bytes(),
    ));
    Ok((spki, serial))
}

/// Uppercase hex with leading zeros removed (so `00AB` == `AB`).
pub fn normalize_serial(s: &str) -> String {
    let up = s.trim().to_ascii_uppercase();
    let t = up.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// Environment variables often carry PEM with literal `\n` escapes.
fn unescape_newlines(s: &str) -> String {
    s.replace("\\r\\n", "\n").replace("\\n", "\n")
}

fn decode_b64_lenient(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    B64.decode(compact).ok()
}

/// Constant-time byte comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    #[allow(deprecated)]
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Base64 (standard alphabet, padded).
pub fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Base64 decode (standard alphabet); whitespace is not accepted.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

/// Test-only key material generated at test time (no fixtures on disk).
#[cfg(test)]
pub(crate) mod testkeys {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use std::sync::OnceLock;

    /// (PKCS#8 PEM, SPKI PEM) of a fresh RSA-2048 key; generated once per
    /// index per test binary because RSA generation is slow in debug builds.
    pub fn rsa_pem(index: usize) -> (String, String) {
        static KEYS: OnceLock<Vec<(String, String)>> = OnceLock::new();
        KEYS.get_or_init(|| (0..3).map(|_| generate()).collect())[index].clone()
    }

    fn generate() -> (String, String) {
        use aws_lc_rs::signature::KeyPair as _;
        let kp = KeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let pkcs8 = kp.as_der().expect("pkcs8");
        let spki = kp.public_key().as_der().expect("spki");
        (
            pem("PRIVATE KEY", pkcs8.as_ref()),
            pem("PUBLIC KEY", spki.as_ref()),
        )
    }

    pub fn pem(label: &str, der: &[u8]) -> String {
        let b = super::b64_encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in b.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parsing_is_exact() {
        assert_eq!(parse_yuan_to_fen("12.00"), Some(1200));
        assert_eq!(parse_yuan_to_fen("12"), Some(1200));
        assert_eq!(parse_yuan_to_fen("12.5"), Some(1250));
        assert_eq!(parse_yuan_to_fen("0.01"), Some(1));
        for bad in [
            "12.001",
            "1e3",
            "-1",
            "12.",
            ".5",
            "",
            " 1",
            "1 ",
            "+1",
            "1,00",
            "١٢",
            "99999999999999999999",
        ] {
            assert_eq!(parse_yuan_to_fen(bad), None, "{bad}");
        }
        assert_eq!(fen_to_yuan(1), Some("0.01".into()));
        assert_eq!(fen_to_yuan(123456), Some("1234.56".into()));
        assert_eq!(fen_to_yuan(-1), None);
    }

    #[test]
    fn time_helpers() {
        assert_eq!(parse_rfc3339("2015-05-20T13:29:35+08:00"), Some(1432099775));
        assert_eq!(parse_rfc3339("2015-05-20T05:29:35Z"), Some(1432099775));
        assert_eq!(parse_rfc3339("2015-05-20T05:29:35.123Z"), Some(1432099775));
        assert_eq!(parse_rfc3339("2015-02-30T05:29:35Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2015-05-20T13:29:35+0800"), None);
        assert_eq!(format_rfc3339_cst(1432099775), "2015-05-20T13:29:35+08:00");
        assert_eq!(format_cst_datetime(1432099775), "2015-05-20 13:29:35");
        assert_eq!(parse_cst_datetime("2015-05-20 13:29:35"), Some(1432099775));
        assert_eq!(parse_compact_cst("20150520132935"), Some(1432099775));
        assert_eq!(parse_compact_cst("2015052013293"), None);
        assert_eq!(parse_compact_cst("20151320132935"), None);
    }

    #[test]
    fn key_debug_is_redacted_and_roundtrip_signs() {
        let (sk_pem, pk_pem) = testkeys::rsa_pem(0);
        let sk = RsaPrivateKey::from_pem_or_base64(&sk_pem).unwrap();
        let dbg = format!("{sk:?}");
        assert!(dbg.contains("redacted") && !dbg.contains("MII"));
        let pk = RsaPublicKey::from_pem_or_base64(&pk_pem).unwrap();
        let sig = sk.sign_sha256_b64(b"hello").unwrap();
        assert!(pk.verify_sha256_b64(b"hello", &sig));
        assert!(!pk.verify_sha256_b64(b"hellp", &sig));
        assert!(!pk.verify_sha256_b64(b"hello", "not base64!"));
        // Bare base64 and escaped-newline env forms.
        let bare: String = pk_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(RsaPublicKey::from_pem_or_base64(&bare).is_ok());
        let escaped = sk_pem.replace('\n', "\\n");
        assert!(RsaPrivateKey::from_pem_or_base64(&escaped).is_ok());
        assert!(RsaPrivateKey::from_pem_or_base64("garbage").is_err());
        assert!(RsaPublicKey::from_pem_or_base64(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
    }
}
