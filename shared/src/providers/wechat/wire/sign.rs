//! The `WECHATPAY2-SHA256-RSA2048` signature scheme: the `Authorization` of our requests
//! (merchant key), the signatures on WeChat Pay's answers and callbacks (platform keys), and
//! the `AEAD_AES_256_GCM` encryption of callback resources (APIv3 key).
//!
//! Sources:
//! - Request signature, 5-line string `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, URL without host
//!   but with `?query`, GET body empty:
//!   <https://pay.weixin.qq.com/wiki/doc/api_external/en/wechatpay/wechatpay4_0.shtml>,
//!   <https://heiqu.com/zgdfzs_2.html>
//! - Response / callback verification, 3-line string `timestamp\nnonce\nbody\n` (body empty for 204),
//!   key selected by `Wechatpay-Serial`:
//!   <https://pay.weixin.qq.com/wiki/doc/apiv3/wechatpay/wechatpay4_1.shtml>
//! - Callback decryption AEAD_AES_256_GCM, key = APIv3 key (32 bytes), nonce 12 bytes,
//!   associated_data may be empty, ciphertext base64 with the 16-byte tag appended:
//!   <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter3_2_5.shtml>

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::{serial_key, WechatConfig};
use crate::crypto::b64_decode;
use crate::providers::wire_error::{BuildError, VerifyError};

/// The only signature scheme WeChat Pay v3 uses with RSA keys.
pub const SIGNATURE_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// The four `Wechatpay-*` headers (and optional `Wechatpay-Signature-Type`).
/// Header names are case-insensitive in HTTP; the caller looks them up.
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    pub signature: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub serial: &'a str,
    pub signature_type: Option<&'a str>,
}

/// Nonces go into signed strings and header values: short alphanumerics only.
pub(super) fn check_nonce(nonce: &str) -> Result<(), BuildError> {
    if nonce.is_empty() || nonce.len() > 32 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BuildError::InvalidInput(
            "nonce must be 1..=32 ASCII alphanumerics".into(),
        ));
    }
    Ok(())
}

impl WechatConfig {
    /// `Authorization` header value for an API request.
    ///
    /// `url_path_with_query` is the absolute URL minus scheme and host, with
    /// `?query` if any (e.g. `/v3/pay/transactions/out-trade-no/X?mchid=1`).
    /// `body` is exactly the bytes that will be sent (empty for GET).
    pub fn authorization_header(
        &self,
        method: &str,
        url_path_with_query: &str,
        body: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<String, BuildError> {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(BuildError::InvalidInput(
                "method must be uppercase ASCII".into(),
            ));
        }
        if !url_path_with_query.starts_with('/') || url_path_with_query.contains(['\n', '\r', ' '])
        {
            return Err(BuildError::InvalidInput(
                "url must be a path starting with '/'".into(),
            ));
        }
        check_nonce(nonce)?;
        let msg = format!("{method}\n{url_path_with_query}\n{timestamp}\n{nonce}\n{body}\n");
        let signature = self.merchant_key.sign_sha256_b64(msg.as_bytes())?;
        Ok(format!(
            "{SIGNATURE_SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mch_id, self.merchant_serial
        ))
    }

    /// Verify the signature of an API response or a callback.
    ///
    /// Message: `Wechatpay-Timestamp\nWechatpay-Nonce\nBODY\n` over the raw
    /// body bytes exactly as received (empty for 204).
    pub fn verify_signature(
        &self,
        h: &SignatureHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        if let Some(t) = h.signature_type {
            if t.trim() != SIGNATURE_SCHEME {
                return Err(VerifyError::Unsupported(format!("signature type {t}")));
            }
        }
        let ts_str = h.timestamp.trim();
        if ts_str.is_empty() || ts_str.len() > 12 || !ts_str.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::Malformed("Wechatpay-Timestamp".into()));
        }
        let ts: i64 = ts_str
            .parse()
            .map_err(|_| VerifyError::Malformed("Wechatpay-Timestamp".into()))?;
        if h.nonce.is_empty() || h.nonce.contains(['\n', '\r']) {
            return Err(VerifyError::Malformed("Wechatpay-Nonce".into()));
        }
        let key = self
            .platform_keys
            .get(&serial_key(h.serial))
            .ok_or_else(|| VerifyError::UnknownKey(h.serial.to_string()))?;
        if (now - ts).abs() > self.max_skew_secs {
            return Err(VerifyError::StaleTimestamp);
        }
        let sig = b64_decode(h.signature.trim()).ok_or(VerifyError::BadSignature)?;
        let mut msg = Vec::with_capacity(body.len() + 64);
        msg.extend_from_slice(ts_str.as_bytes());
        msg.push(b'\n');
        msg.extend_from_slice(h.nonce.as_bytes());
        msg.push(b'\n');
        msg.extend_from_slice(body);
        msg.push(b'\n');
        if key.verify_sha256(&msg, &sig) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    /// Decrypt an `AEAD_AES_256_GCM` resource (callbacks, `/v3/certificates`).
    pub fn decrypt_resource(
        &self,
        algorithm: &str,
        ciphertext_b64: &str,
        nonce: &str,
        associated_data: &str,
    ) -> Result<Vec<u8>, VerifyError> {
        if algorithm != "AEAD_AES_256_GCM" {
            return Err(VerifyError::Unsupported(format!("algorithm {algorithm}")));
        }
        let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes())
            .map_err(|_| VerifyError::Malformed("resource.nonce must be 12 bytes".into()))?;
        let mut buf = b64_decode(ciphertext_b64)
            .ok_or_else(|| VerifyError::Malformed("resource.ciphertext base64".into()))?;
        if buf.len() < AES_256_GCM.tag_len() {
            return Err(VerifyError::Malformed(
                "resource.ciphertext too short".into(),
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, &self.api_v3_key)
            .map_err(|_| VerifyError::Malformed("aead key".into()))?;
        let plain = LessSafeKey::new(key)
            .open_in_place(nonce, Aad::from(associated_data.as_bytes()), &mut buf)
            .map_err(|_| {
                VerifyError::Malformed(
                    "resource decryption failed (wrong APIv3 key or corrupted ciphertext)".into(),
                )
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;
    use crate::crypto::b64_encode;

    #[test]
    fn authorization_header_format_and_signature() {
        let f = fixture();
        let body = r#"{"mchid":"1900000109"}"#;
        let h = f
            .cfg
            .authorization_header(
                "POST",
                "/v3/pay/transactions/out-trade-no/order_123456/close",
                body,
                1554208460,
                NONCE,
            )
            .unwrap();
        assert!(h.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",signature=\""));
        assert!(h.ends_with(",timestamp=\"1554208460\",serial_no=\"MERCHANTSERIAL01\""));
        let sig = h
            .split("signature=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let msg = format!("POST\n/v3/pay/transactions/out-trade-no/order_123456/close\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{body}\n");
        assert!(f.merchant_pub.verify_sha256_b64(msg.as_bytes(), sig));
        assert!(f
            .cfg
            .authorization_header("post", "/v3", "", 1, "n")
            .is_err());
        assert!(f.cfg.authorization_header("GET", "v3", "", 1, "n").is_err());
        assert!(f
            .cfg
            .authorization_header("GET", "/v3", "", 1, "bad\"nonce")
            .is_err());
    }

    #[test]
    fn both_key_kinds_verify_under_their_own_serial_only() {
        let f = fixture();
        let body = envelope("TRANSACTION.SUCCESS", &transaction(MCH, APP), V3KEY);
        let ts = (NOW - 10).to_string();
        let sig = signed(&f, &body, NOW - 10);
        assert_eq!(
            f.cfg
                .verify_signature(&headers(&sig, &ts, PUBKEY_ID), &body, NOW),
            Ok(())
        );
        // platform certificate (serial in lower case in the header also works)
        let sig = sign(&f.cert_signer, NOW - 10, NONCE, &body);
        let lower = CERT_SERIAL.to_lowercase();
        assert_eq!(
            f.cfg
                .verify_signature(&headers(&sig, &ts, &lower), &body, NOW),
            Ok(())
        );
        // ...but the cert key does not verify under the PUB_KEY_ID serial
        assert_eq!(
            f.cfg
                .verify_signature(&headers(&sig, &ts, PUBKEY_ID), &body, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn signature_rejections() {
        let f = fixture();
        let body = envelope("TRANSACTION.SUCCESS", &transaction(MCH, APP), V3KEY);
        let ts = NOW.to_string();
        let sig = signed(&f, &body, NOW);
        let ok = headers(&sig, &ts, PUBKEY_ID);
        assert!(f.cfg.verify_signature(&ok, &body, NOW).is_ok());
        let verify = |h: &SignatureHeaders<'_>, b: &[u8]| f.cfg.verify_signature(h, b, NOW);

        // bad signature bytes
        let mut bad = b64_decode(&sig).unwrap();
        bad[10] ^= 1;
        let bad = b64_encode(&bad);
        assert_eq!(
            verify(&headers(&bad, &ts, PUBKEY_ID), &body),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&headers("!!notbase64", &ts, PUBKEY_ID), &body),
            Err(VerifyError::BadSignature)
        );
        // every single-byte tamper of the body is caught
        for i in [0, body.len() / 2, body.len() - 1] {
            let mut t = body.clone();
            t[i] ^= 0x01;
            assert_eq!(verify(&ok, &t), Err(VerifyError::BadSignature), "byte {i}");
        }
        // trailing whitespace / re-serialised JSON is a different body
        let mut t = body.clone();
        t.push(b'\n');
        assert_eq!(verify(&ok, &t), Err(VerifyError::BadSignature));
        // nonce and timestamp are signed
        let other_nonce = SignatureHeaders {
            nonce: "other",
            ..ok
        };
        assert_eq!(verify(&other_nonce, &body), Err(VerifyError::BadSignature));
        let ts2 = (NOW + 1).to_string();
        assert_eq!(
            verify(&headers(&sig, &ts2, PUBKEY_ID), &body),
            Err(VerifyError::BadSignature)
        );
        // unknown serial (also non-ASCII, must not panic)
        assert!(matches!(
            verify(&headers(&sig, &ts, "PUB_KEY_I虎_x"), &body),
            Err(VerifyError::UnknownKey(_))
        ));
        assert_eq!(
            verify(&headers(&sig, &ts, "PUB_KEY_ID_999"), &body),
            Err(VerifyError::UnknownKey("PUB_KEY_ID_999".into()))
        );
        // stale / future timestamps (boundary 300 s accepted)
        let old = (NOW - 301).to_string();
        let sig_old = signed(&f, &body, NOW - 301);
        assert_eq!(
            verify(&headers(&sig_old, &old, PUBKEY_ID), &body),
            Err(VerifyError::StaleTimestamp)
        );
        let fut = (NOW + 301).to_string();
        let sig_fut = signed(&f, &body, NOW + 301);
        assert_eq!(
            verify(&headers(&sig_fut, &fut, PUBKEY_ID), &body),
            Err(VerifyError::StaleTimestamp)
        );
        let edge = (NOW - 300).to_string();
        let sig_edge = signed(&f, &body, NOW - 300);
        assert!(verify(&headers(&sig_edge, &edge, PUBKEY_ID), &body).is_ok());
        // malformed timestamp
        for bad_ts in ["", "abc", "-1", "1e9", "99999999999999999999"] {
            assert!(
                matches!(
                    verify(&headers(&sig, bad_ts, PUBKEY_ID), &body),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad_ts}"
            );
        }
        // unsupported signature type
        let sm2 = SignatureHeaders {
            signature_type: Some("WECHATPAY2-SM2-WITH-SM3"),
            ..ok
        };
        assert!(matches!(
            verify(&sm2, &body),
            Err(VerifyError::Unsupported(_))
        ));
    }

    #[test]
    fn response_signature_with_empty_body() {
        // 204 answers (close) are signed over "ts\nnonce\n\n".
        let f = fixture();
        let sig = signed(&f, b"", NOW);
        let ts = NOW.to_string();
        assert!(f
            .cfg
            .verify_signature(&headers(&sig, &ts, PUBKEY_ID), b"", NOW)
            .is_ok());
    }

    #[test]
    fn resource_decryption_and_its_rejections() {
        let f = fixture();
        let plain = br#"{"mchid":"1900000109"}"#;
        let (nonce, aad) = ("fdasflkja484", "transaction");
        let ct = encrypt(plain, nonce, aad, V3KEY);
        let open = |alg: &str, ct: &str, nonce: &str, aad: &str| {
            f.cfg.decrypt_resource(alg, ct, nonce, aad)
        };
        assert_eq!(
            open("AEAD_AES_256_GCM", &ct, nonce, aad).as_deref(),
            Ok(&plain[..])
        );
        let decryption_failed = |r: Result<Vec<u8>, VerifyError>| matches!(r, Err(VerifyError::Malformed(m)) if m.contains("decryption"));
        // encrypted with another key => tag failure
        let other = encrypt(plain, nonce, aad, "ffffffffffffffffffffffffffffffff");
        assert!(decryption_failed(open(
            "AEAD_AES_256_GCM",
            &other,
            nonce,
            aad
        )));
        // ciphertext / tag / aad / nonce tampering
        let raw = b64_decode(&ct).unwrap();
        for idx in [0, raw.len() - 1] {
            let mut c = raw.clone();
            c[idx] ^= 0x80;
            assert!(decryption_failed(open(
                "AEAD_AES_256_GCM",
                &b64_encode(&c),
                nonce,
                aad
            )));
        }
        assert!(decryption_failed(open(
            "AEAD_AES_256_GCM",
            &ct,
            nonce,
            "refund"
        )));
        assert!(decryption_failed(open(
            "AEAD_AES_256_GCM",
            &ct,
            "fdasflkja485",
            aad
        )));
        // bad nonce length / algorithm / short ciphertext / not base64
        assert!(matches!(
            open("AEAD_AES_256_GCM", &ct, "short", aad),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            open("AES_128", &ct, nonce, aad),
            Err(VerifyError::Unsupported(_))
        ));
        for bad in ["AAAA", "%%%"] {
            assert!(
                matches!(
                    open("AEAD_AES_256_GCM", bad, nonce, aad),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    /// NIST GCM spec test cases 13/14 (AES-256, zero key and IV) check our
    /// "tag appended to ciphertext" layout against aws-lc.
    #[test]
    fn aes_gcm_known_answer() {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0u8; 32]).unwrap());
        let mut buf = vec![0u8; 16];
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::empty(),
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            hex::encode(&buf),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        let mut empty = Vec::new();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::empty(),
            &mut empty,
        )
        .unwrap();
        assert_eq!(hex::encode(&empty), "530f8afbc74536b9a963b4f1c4cb738b");
    }
}
