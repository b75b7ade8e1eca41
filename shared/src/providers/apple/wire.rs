//! The App Store's wire format (StoreKit 2, App Store Server Notifications V2): the signed
//! payloads Tollgate reads, their JWS verification, and the pre-order's `appAccountToken`.
//! Pure: the verifier in `mod.rs` supplies the trust roots and checks the app.
//!
//! Signed data is a compact JWS, ES256 only, whose `x5c` header carries exactly three
//! certificates. The leaf must be signed by the intermediate, the intermediate by one of the
//! configured roots (the `x5c` root itself is not trusted), all three valid at the payload's
//! `signedDate`, the leaf marked 1.2.840.113635.100.6.11.1 and the intermediate
//! 1.2.840.113635.100.6.2.1 — the same steps as Apple's own App Store Server Library.
//! Certificates are parsed with `x509-cert`; every signature is checked with aws-lc-rs. A
//! chain that passed is remembered with its roots (`chains.rs`), so a repeat costs one
//! signature check.
//!
//! The `appAccountToken` is the order id itself: a ULID is 128 bits, exactly a UUID, so the
//! token is the order id's value in UUID notation. Nothing extra is stored at create time,
//! the token maps back to the order with no lookup, and it reveals nothing the client does
//! not already know (its own order id).

use super::chains::{self, LeafKey, Verified, VerifiedChains};
use crate::domain::OrderId;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::Certificate;

/// The order id as a UUID string (lowercase, 8-4-4-4-12).
pub fn app_account_token(id: &OrderId) -> String {
    let h = format!("{:032x}", id.to_u128());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The order an `appAccountToken` names, if it is a UUID.
pub fn order_of_token(token: &str) -> Option<OrderId> {
    let hex: String = token.chars().filter(|c| *c != '-').collect();
    if token.len() != 36 || hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(OrderId::from_u128)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Environment {
    Production,
    Sandbox,
    Xcode,
    LocalTesting,
}

/// JWSTransactionDecodedPayload: the fields Tollgate uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub transaction_id: String,
    pub original_transaction_id: String,
    pub bundle_id: String,
    pub product_id: String,
    pub purchase_date: i64,
    #[serde(default)]
    pub original_purchase_date: Option<i64>,
    #[serde(default)]
    pub expires_date: Option<i64>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub app_account_token: Option<String>,
    pub environment: Environment,
    pub signed_date: i64,
    #[serde(default)]
    pub revocation_date: Option<i64>,
    #[serde(default)]
    pub quantity: Option<i64>,
    /// What the period was sold for, in milliunits of `currency` (`9990` for 9.99); sent
    /// since App Store Server API 1.10, absent before.
    #[serde(default)]
    pub price: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// JWSRenewalInfoDecodedPayload: the fields Tollgate uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalInfo {
    pub original_transaction_id: String,
    #[serde(default)]
    pub auto_renew_status: Option<i64>,
    #[serde(default)]
    pub grace_period_expires_date: Option<i64>,
    #[serde(default)]
    pub is_in_billing_retry_period: Option<bool>,
    pub environment: Environment,
    pub signed_date: i64,
}

/// responseBodyV2DecodedPayload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub notification_type: String,
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(rename = "notificationUUID")]
    pub notification_uuid: String,
    pub signed_date: i64,
    #[serde(default)]
    pub data: Option<NotificationData>,
    /// Sent instead of `data` by summary notifications (e.g. RENEWAL_EXTENSION).
    #[serde(default)]
    pub summary: Option<NotificationSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSummary {
    #[serde(default)]
    pub app_apple_id: Option<i64>,
    #[serde(default)]
    pub bundle_id: Option<String>,
    pub environment: Environment,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationData {
    #[serde(default)]
    pub app_apple_id: Option<i64>,
    #[serde(default)]
    pub bundle_id: Option<String>,
    pub environment: Environment,
    #[serde(default)]
    pub signed_transaction_info: Option<String>,
    #[serde(default)]
    pub signed_renewal_info: Option<String>,
}

/// Why signed data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppleRejection {
    #[error(transparent)]
    Jws(#[from] JwsError),
    #[error("payload is not the expected shape: {0}")]
    Shape(String),
    #[error("bundle id does not match this app")]
    BundleId,
    #[error("app Apple id does not match this app")]
    AppAppleId,
    #[error("environment {0:?} is not accepted by this deployment")]
    Environment(Environment),
}

impl AppleRejection {
    /// A stable code for the refusal figures and the `CallbackRejected` metric.
    pub fn code(&self) -> &'static str {
        match self {
            AppleRejection::Jws(JwsError::Malformed(_)) | AppleRejection::Shape(_) => "malformed",
            AppleRejection::Jws(JwsError::Algorithm) => "algorithm",
            AppleRejection::Jws(JwsError::ChainLength | JwsError::Chain(_)) => "chain",
            AppleRejection::Jws(JwsError::Signature) => "signature",
            AppleRejection::BundleId => "bundle_id",
            AppleRejection::AppAppleId => "app_apple_id",
            AppleRejection::Environment(_) => "environment",
        }
    }
}

/// Verifies `jws` under `roots` and reads its payload as `T`. Which app and environment it
/// names is the caller's check.
pub fn decode_payload<T: serde::de::DeserializeOwned>(
    jws: &str,
    roots: &TrustRoots,
) -> Result<T, AppleRejection> {
    let payload = verify_jws(jws, roots)?;
    serde_json::from_value(payload).map_err(|e| AppleRejection::Shape(e.to_string()))
}

pub const LEAF_MARKER_OID: &str = "1.2.840.113635.100.6.11.1";
pub const INTERMEDIATE_MARKER_OID: &str = "1.2.840.113635.100.6.2.1";

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const BASIC_CONSTRAINTS: &str = "2.5.29.19";
/// Critical extensions a verifier may understand; any other critical one fails the chain,
/// as it does in OpenSSL (which Apple's libraries use).
const KNOWN_CRITICAL: &[&str] = &[
    BASIC_CONSTRAINTS,
    "2.5.29.15", // key usage
    "2.5.29.37", // extended key usage
    "2.5.29.32", // certificate policies
    "2.5.29.17", // subject alternative name
    "2.5.29.30", // name constraints
];

/// Apple Root CA - G3 (SHA-256 fingerprint 63:34:3A:BF:...:3E:91:79), the default trust root.
pub const APPLE_ROOT_CA_G3_PEM: &str = include_str!("apple_root_ca_g3.pem");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("malformed signed data: {0}")]
    Malformed(&'static str),
    #[error("signed data must use ES256")]
    Algorithm,
    #[error("x5c must hold exactly 3 certificates")]
    ChainLength,
    #[error("certificate chain rejected: {0}")]
    Chain(&'static str),
    #[error("signature does not verify")]
    Signature,
}

/// The certificates Apple's chains must end in (DER), and the chains already verified
/// against them (shared by clones: the same roots).
#[derive(Clone)]
pub struct TrustRoots {
    roots: Vec<Vec<u8>>,
    verified: std::sync::Arc<VerifiedChains>,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustRoots({} certificates)", self.roots.len())
    }
}

impl TrustRoots {
    /// Every `CERTIFICATE` block of a PEM bundle; each must parse.
    pub fn from_pem(bundle: &str) -> Result<Self, String> {
        let mut roots = Vec::new();
        let mut rest = bundle;
        while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
            let body = &rest[start + "-----BEGIN CERTIFICATE-----".len()..];
            let end = body
                .find("-----END CERTIFICATE-----")
                .ok_or("unterminated CERTIFICATE block")?;
            let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
            let der = STANDARD
                .decode(b64)
                .map_err(|_| "a CERTIFICATE block is not base64")?;
            Certificate::from_der(&der).map_err(|_| "a CERTIFICATE block is not X.509")?;
            roots.push(der);
            rest = &body[end..];
        }
        if roots.is_empty() {
            return Err("no CERTIFICATE block found".into());
        }
        Ok(TrustRoots {
            roots,
            verified: Default::default(),
        })
    }

    pub fn apple_default() -> Self {
        Self::from_pem(APPLE_ROOT_CA_G3_PEM).unwrap_or(TrustRoots {
            roots: Vec::new(),
            verified: Default::default(),
        })
    }
}

/// Verifies `jws` and returns its payload. The effective time is the payload's `signedDate`
/// (milliseconds), as in Apple's library when it runs without online revocation checks.
pub fn verify_jws(jws: &str, roots: &TrustRoots) -> Result<serde_json::Value, JwsError> {
    let mut parts = jws.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("not a compact JWS"));
    };
    let header: serde_json::Value = decode_json(h)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
        return Err(JwsError::Algorithm);
    }
    let x5c = header
        .get("x5c")
        .and_then(|v| v.as_array())
        .ok_or(JwsError::Malformed("no x5c header"))?;
    if x5c.len() != 3 {
        return Err(JwsError::ChainLength);
    }
    let ders = x5c
        .iter()
        .map(|c| {
            c.as_str()
                .and_then(|t| STANDARD.decode(t).ok())
                .ok_or(JwsError::Malformed("x5c entry is not base64"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let payload: serde_json::Value = decode_json(p)?;
    // Like Apple's library: `signedDate`, else `receiptCreationDate` (app transactions).
    // Without either Apple's library falls back to the current time; this one refuses.
    let signed_ms = ["signedDate", "receiptCreationDate"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(|v| v.as_i64()))
        .ok_or(JwsError::Malformed("payload has no signedDate"))?;
    let leaf_key = verify_chain(&ders[0], &ders[1], roots, signed_ms.div_euclid(1000))?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwsError::Malformed("signature is not base64url"))?;
    let signing_input = &jws.trim()[..h.len() + 1 + p.len()];
    let (curve, point) = leaf_key;
    if curve != P256 {
        return Err(JwsError::Chain("leaf key is not P-256"));
    }
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| JwsError::Signature)?;
    Ok(payload)
}

fn decode_json(part: &str) -> Result<serde_json::Value, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed("segment is not base64url"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed("segment is not JSON"))?;
    if !v.is_object() {
        return Err(JwsError::Malformed("segment is not a JSON object"));
    }
    Ok(v)
}

/// Checks leaf ← intermediate ← configured root at `at` (unix seconds); returns the leaf's
/// curve OID and public point. A chain verified before against these roots is only checked
/// for validity at `at`: every other check does not depend on time.
fn verify_chain(
    leaf_der: &[u8],
    inter_der: &[u8],
    roots: &TrustRoots,
    at: i64,
) -> Result<LeafKey, JwsError> {
    let fingerprint = chains::fingerprint(leaf_der, inter_der);
    if let Some(known) = roots.verified.get(&fingerprint) {
        if at < known.valid_from || at > known.valid_until {
            return Err(JwsError::Chain("certificate not valid at signedDate"));
        }
        return Ok(known.key);
    }
    let verified = verify_chain_in_full(leaf_der, inter_der, roots, at)?;
    let key = verified.key.clone();
    roots.verified.insert(fingerprint, verified);
    Ok(key)
}

/// Every check of [`verify_chain`], and the window in which the three certificates are all
/// valid.
fn verify_chain_in_full(
    leaf_der: &[u8],
    inter_der: &[u8],
    roots: &TrustRoots,
    at: i64,
) -> Result<Verified, JwsError> {
    let leaf = Certificate::from_der(leaf_der).map_err(|_| JwsError::Chain("leaf is not X.509"))?;
    let inter = Certificate::from_der(inter_der)
        .map_err(|_| JwsError::Chain("intermediate is not X.509"))?;
    let leaf_window = check_cert(&leaf, at, false)?;
    let inter_window = check_cert(&inter, at, true)?;
    if !has_extension(&leaf, LEAF_MARKER_OID) {
        return Err(JwsError::Chain("leaf lacks Apple's marker extension"));
    }
    if !has_extension(&inter, INTERMEDIATE_MARKER_OID) {
        return Err(JwsError::Chain(
            "intermediate lacks Apple's marker extension",
        ));
    }
    if leaf.tbs_certificate.issuer != inter.tbs_certificate.subject {
        return Err(JwsError::Chain("leaf was not issued by the intermediate"));
    }
    check_signature(leaf_der, &leaf, &inter)?;
    let mut anchored = None;
    for root_der in &roots.roots {
        let Ok(root) = Certificate::from_der(root_der) else {
            continue;
        };
        if root.tbs_certificate.subject != inter.tbs_certificate.issuer {
            continue;
        }
        if check_signature(inter_der, &inter, &root).is_ok() {
            anchored = Some(check_cert(&root, at, true)?);
            break;
        }
    }
    let Some(root_window) = anchored else {
        return Err(JwsError::Chain(
            "intermediate does not chain to a trusted root",
        ));
    };
    let windows = [leaf_window, inter_window, root_window];
    Ok(Verified {
        key: public_key(&leaf)?,
        valid_from: windows.iter().map(|w| w.0).max().unwrap_or(i64::MAX),
        valid_until: windows.iter().map(|w| w.1).min().unwrap_or(i64::MIN),
    })
}

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

fn has_extension(cert: &Certificate, id: &str) -> bool {
    let id = oid(id);
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == id)
}

/// Checks one certificate at `at`; its validity window (unix seconds, inclusive).
fn check_cert(cert: &Certificate, at: i64, must_be_ca: bool) -> Result<(i64, i64), JwsError> {
    let v = &cert.tbs_certificate.validity;
    let from = v.not_before.to_unix_duration().as_secs() as i64;
    let until = v.not_after.to_unix_duration().as_secs() as i64;
    if at < from || at > until {
        return Err(JwsError::Chain("certificate not valid at signedDate"));
    }
    let mut is_ca = false;
    for e in cert.tbs_certificate.extensions.iter().flatten() {
        let id = e.extn_id.to_string();
        if e.critical && !KNOWN_CRITICAL.contains(&id.as_str()) {
            return Err(JwsError::Chain("unknown critical extension"));
        }
        if id == BASIC_CONSTRAINTS {
            let bc = x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes())
                .map_err(|_| JwsError::Chain("bad basicConstraints"))?;
            is_ca = bc.ca;
        }
    }
    if must_be_ca && !is_ca {
        return Err(JwsError::Chain("issuer is not a CA"));
    }
    Ok((from, until))
}

/// The EC curve OID and uncompressed point of a certificate's key.
fn public_key(cert: &Certificate) -> Result<(String, Vec<u8>), JwsError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != oid(EC_PUBLIC_KEY) {
        return Err(JwsError::Chain("key is not an EC key"));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or(JwsError::Chain("EC key without a named curve"))?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(JwsError::Chain("key bits are not whole bytes"))?;
    Ok((curve.to_string(), point.to_vec()))
}

/// Whether `issuer`'s key signed `cert` (whose DER is `der`).
fn check_signature(der: &[u8], cert: &Certificate, issuer: &Certificate) -> Result<(), JwsError> {
    let (curve, point) = public_key(issuer)?;
    let sig_alg = cert.signature_algorithm.oid.to_string();
    let alg: &'static dyn VerificationAlgorithm = match (curve.as_str(), sig_alg.as_str()) {
        (P256, ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
        (P256, ECDSA_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
        (P384, ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
        (P384, ECDSA_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return Err(JwsError::Chain("unsupported signature algorithm")),
    };
    let tbs = first_element(der).ok_or(JwsError::Chain("certificate is not DER"))?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or(JwsError::Chain("signature bits are not whole bytes"))?;
    UnparsedPublicKey::new(alg, point.as_slice())
        .verify(tbs, sig)
        .map_err(|_| JwsError::Chain("certificate signature does not verify"))
}

/// The raw bytes of the first element inside the outer SEQUENCE (a certificate's TBS part,
/// exactly as signed: never re-encoded).
fn first_element(der: &[u8]) -> Option<&[u8]> {
    let (_, inner) = tlv(der)?;
    let (total, _) = tlv(inner)?;
    inner.get(..total)
}

/// One DER TLV at the start of `b`: (its total length, its contents).
fn tlv(b: &[u8]) -> Option<(usize, &[u8])> {
    if *b.first()? != 0x30 {
        return None;
    }
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let total = hdr.checked_add(len)?;
    Some((total, b.get(hdr..total)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_to_the_order() {
        let id = OrderId::from_parts(1_800_000_000_123, [7; 10]);
        let t = app_account_token(&id);
        assert_eq!(t.len(), 36);
        assert_eq!(order_of_token(&t), Some(id.clone()));
        assert_eq!(order_of_token(&t.to_uppercase()), Some(id));
        assert_eq!(order_of_token("not-a-uuid"), None);
        assert_eq!(order_of_token("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), None);
        assert_eq!(order_of_token("+0000000-0000-0000-0000-000000000000"), None);
    }

    #[test]
    fn default_root_is_apple_root_ca_g3() {
        use sha2::{Digest, Sha256};
        let roots = TrustRoots::apple_default();
        assert_eq!(roots.roots.len(), 1);
        assert_eq!(
            hex::encode(Sha256::digest(&roots.roots[0])),
            "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"
        );
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let roots = TrustRoots::apple_default();
        for input in ["", "a.b", "a.b.c.d", "...", "eyJ9.e30.AA", "e30.e30.e30"] {
            assert!(verify_jws(input, &roots).is_err(), "{input}");
        }
        assert!(TrustRoots::from_pem("nothing").is_err());
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }
}
