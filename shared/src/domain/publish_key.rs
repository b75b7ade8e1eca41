//! Publish keys: the credential a streamer's encoder presents to push a stream. Tollgate
//! stores only the key's SHA-256 (a key is 32 random bytes, so a fast hash is enough: there
//! is nothing to guess), and an operator rotates it without a redeploy.

use sha2::{Digest, Sha256};

/// The stored side of a stream's publish key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishKey {
    /// Hex SHA-256 of the key.
    pub hash: String,
    /// 1 for the first key, one more with each rotation.
    pub version: u64,
    pub rotated_at: i64,
    /// The operator who rotated it last (user id or IAM ARN); `None` for keys rotated before
    /// operators were recorded.
    pub rotated_by: Option<String>,
}

/// A fresh key: 32 random bytes, hex (URL- and form-safe as it is).
pub fn generate() -> String {
    hex::encode(crate::crypto::random_bytes::<32>())
}

/// The hash stored for `key`.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl PublishKey {
    /// Whether `presented` is this key, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        crate::crypto::ct_eq(hash(presented).as_bytes(), self.hash.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_itself_matches() {
        let key = generate();
        assert_eq!(key.len(), 64);
        assert_ne!(key, generate());
        let stored = PublishKey {
            hash: hash(&key),
            version: 1,
            rotated_at: 0,
            rotated_by: None,
        };
        assert!(stored.matches(&key));
        assert!(!stored.matches(&generate()));
        assert!(!stored.matches(""));
        assert!(!stored.matches(&stored.hash), "the hash is not the key");
    }
}
