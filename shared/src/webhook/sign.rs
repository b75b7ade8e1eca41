//! Standard Webhooks 1.0 signatures, pure: no I/O, no clock (the timestamp is given).
//!
//! A delivery carries `webhook-id` (the event id, the same on every retry),
//! `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`: for each key,
//! `v1,` + base64 of HMAC-SHA256 over `"<id>.<timestamp>.<body>"`, space-separated, so a
//! receiver that holds either key while one rotates accepts the delivery. A key is written
//! `whsec_` + base64 of its bytes; the MAC key is those bytes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A signing key, decoded. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a webhook secret is whsec_ followed by base64")]
    Malformed,
}

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is also accepted absent, as libraries do).
    pub fn parse(secret: &str) -> Result<SigningKey, KeyError> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        match crate::crypto::b64_decode(b64) {
            Some(k) if !k.is_empty() => Ok(SigningKey(k)),
            _ => Err(KeyError::Malformed),
        }
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key");
        m.update(id.as_bytes());
        m.update(b".");
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        m.finalize().into_bytes().to_vec()
    }
}

/// The headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl SignedHeaders {
    /// As `(name, value)` pairs, in the spec's names.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("webhook-id", &self.id),
            ("webhook-timestamp", &self.timestamp),
            ("webhook-signature", &self.signature),
        ]
    }
}

/// Signs `body` as message `id` at `timestamp` with every key (the current one first).
pub fn sign(id: &str, timestamp: i64, body: &[u8], keys: &[SigningKey]) -> SignedHeaders {
    let signature = keys
        .iter()
        .map(|k| {
            format!(
                "v1,{}",
                crate::crypto::b64_encode(&k.mac(id, timestamp, body))
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    SignedHeaders {
        id: id.to_owned(),
        timestamp: timestamp.to_string(),
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    const SPEC_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_specifications_example() {
        let key = SigningKey::parse(SPEC_KEY).unwrap();
        let h = sign(SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes(), &[key]);
        assert_eq!(h.signature, SPEC_SIG);
        assert_eq!(h.timestamp, "1614265330");
        assert_eq!(h.pairs()[0], ("webhook-id", SPEC_ID));
    }

    #[test]
    fn one_signature_per_key_while_rotating() {
        let new = SigningKey::parse("whsec_bmV3LWtleS1vZi0xNi1ieXRlcw==").unwrap();
        let old = SigningKey::parse(SPEC_KEY).unwrap();
        let h = sign(SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes(), &[new, old]);
        let parts: Vec<&str> = h.signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], SPEC_SIG);
        assert_ne!(parts[0], SPEC_SIG);
        // Anything else signed changes the signature: id, time, body.
        let k = SigningKey::parse(SPEC_KEY).unwrap();
        let k = std::slice::from_ref(&k);
        assert_ne!(
            sign("msg_x", SPEC_TS, SPEC_BODY.as_bytes(), k).signature,
            SPEC_SIG
        );
        assert_ne!(
            sign(SPEC_ID, SPEC_TS + 1, SPEC_BODY.as_bytes(), k).signature,
            SPEC_SIG
        );
        assert_ne!(sign(SPEC_ID, SPEC_TS, b"{}", k).signature, SPEC_SIG);
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert_eq!(SigningKey::parse("whsec_!!"), Err(KeyError::Malformed));
        assert_eq!(SigningKey::parse("whsec_"), Err(KeyError::Malformed));
        let k = SigningKey::parse(SPEC_KEY).unwrap();
        assert_eq!(format!("{k:?}"), "SigningKey(***)");
    }
}
