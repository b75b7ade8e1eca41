//! RSA keys as WeChat Pay and Alipay hand them out (PEM, escaped-newline PEM, bare base64
//! DER, or an X.509 certificate carrying the key), for SHA256withRSA signing and
//! verification on aws-lc-rs. Key bytes never reach `Debug` or error messages.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::wire_error::BuildError;

/// Why a configured key could not be loaded. The message never contains key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider key: {}", self.0)
    }
}
impl std::error::Error for KeyError {}

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
    pub fn from_pem_or_base64(text: &str) -> Result<Self, KeyError> {
        let text = unescape_newlines(text);
        let pair = if text.contains("-----BEGIN") {
            let (kind, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(text.as_bytes())
                .map_err(|_| KeyError("private key: invalid PEM".into()))?;
            match kind {
                SectionKind::PrivateKey => RsaKeyPair::from_pkcs8(&der),
                SectionKind::RsaPrivateKey => RsaKeyPair::from_der(&der),
                _ => {
                    return Err(KeyError(
                        "private key: PEM section is not an RSA private key".into(),
                    ))
                }
            }
            .map_err(|_| {
                KeyError("private key: not an acceptable RSA key (2048..8192 bits)".into())
            })?
        } else {
            let der = decode_b64_lenient(&text)
                .ok_or_else(|| KeyError("private key: not PEM and not base64".into()))?;
            RsaKeyPair::from_pkcs8(&der)
                .or_else(|_| RsaKeyPair::from_der(&der))
                .map_err(|_| {
                    KeyError("private key: not an acceptable RSA key (2048..8192 bits)".into())
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
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| KeyError("public key: not a valid RSA public key".into()))?;
        // Keep the bytes; `UnparsedPublicKey` accepts both RFC 5280 and 8017.
        Ok(RsaPublicKey {
            spki_der: der.to_vec(),
        })
    }

    /// From PEM `PUBLIC KEY` (SPKI), PEM `CERTIFICATE` (X.509, the key is taken
    /// from its SubjectPublicKeyInfo), or bare base64 SPKI DER (Alipay's
    /// "支付宝公钥" as shown in the console).
    pub fn from_pem_or_base64(text: &str) -> Result<Self, KeyError> {
        Ok(Self::from_pem_or_base64_with_cert_serial(text)?.0)
    }

    /// Like [`Self::from_pem_or_base64`] but also returns the certificate's
    /// serial number as uppercase hex (no leading zero bytes) if the input was
    /// an X.509 certificate.
    pub fn from_pem_or_base64_with_cert_serial(
        text: &str,
    ) -> Result<(Self, Option<String>), KeyError> {
        let text = unescape_newlines(text);
        if text.contains("-----BEGIN") {
            let (kind, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(text.as_bytes())
                .map_err(|_| KeyError("public key: invalid PEM".into()))?;
            match kind {
                SectionKind::PublicKey => Ok((Self::from_der(&der)?, None)),
                SectionKind::Certificate => {
                    let (spki, serial) = spki_from_certificate(&der)?;
                    Ok((Self::from_der(&spki)?, Some(serial)))
                }
                _ => Err(KeyError(
                    "public key: PEM section must be PUBLIC KEY or CERTIFICATE".into(),
                )),
            }
        } else {
            let der = decode_b64_lenient(&text)
                .ok_or_else(|| KeyError("public key: not PEM and not base64".into()))?;
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
fn spki_from_certificate(der: &[u8]) -> Result<(Vec<u8>, String), KeyError> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|_| KeyError("certificate: invalid X.509 DER".into()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| KeyError("certificate: cannot re-encode public key".into()))?;
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
        let b = crate::crypto::b64_encode(der);
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
