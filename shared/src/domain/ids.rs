//! Identifiers. Order ids are ULIDs: 26 Crockford base32 characters, sortable by creation
//! time, and within the 32-character, `[0-9A-Za-z_-*]` limits of WeChat's and Alipay's
//! `out_trade_no`, so the same id travels to every provider unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    /// Builds a ULID from a millisecond timestamp and 80 random bits supplied by the caller
    /// (the domain does no I/O, so randomness comes from outside).
    pub fn from_parts(unix_ms: u64, random: [u8; 10]) -> Self {
        let mut value: u128 = u128::from(unix_ms & 0xFFFF_FFFF_FFFF) << 80;
        for (i, b) in random.iter().enumerate() {
            value |= u128::from(*b) << (72 - 8 * i);
        }
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as u32;
            *slot = CROCKFORD[((value >> shift) & 0x1F) as usize];
        }
        OrderId(out.iter().map(|&b| b as char).collect())
    }

    /// Accepts only the canonical form (uppercase, no ambiguous letters) so one order has one id.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let b = text.as_bytes();
        if b.len() != 26 || b[0] > b'7' || !b.iter().all(|c| CROCKFORD.contains(c)) {
            return Err(IdError);
        }
        Ok(OrderId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 128-bit value the 26 characters encode.
    pub fn to_u128(&self) -> u128 {
        self.0.bytes().fold(0u128, |acc, c| {
            let digit = CROCKFORD.iter().position(|&d| d == c).unwrap_or(0) as u128;
            (acc << 5) | digit
        })
    }

    /// The id whose value is `v` (every 128-bit value is a canonical ULID).
    pub fn from_u128(v: u128) -> Self {
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as u32;
            *slot = CROCKFORD[((v >> shift) & 0x1F) as usize];
        }
        OrderId(out.iter().map(|&b| b as char).collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid order id (26-character ULID)")]
pub struct IdError;

impl TryFrom<String> for OrderId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        OrderId::parse(&s)
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> String {
        id.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Kept while the test suites move to `domain::time` (removed once they have).
pub use super::time::{parse_rfc3339, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_layout() {
        let id = OrderId::from_parts(0, [0; 10]);
        assert_eq!(id.as_str(), "00000000000000000000000000");
        let id = OrderId::from_parts(0xFFFF_FFFF_FFFF, [0xFF; 10]);
        assert_eq!(id.as_str(), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        // Spec example time prefix: 1469918176385 ms → "01ARYZ6S41".
        let id = OrderId::from_parts(1_469_918_176_385, [0; 10]);
        assert_eq!(&id.as_str()[..10], "01ARYZ6S41");
        assert!(OrderId::parse(id.as_str()).is_ok());
    }

    #[test]
    fn ulids_sort_by_time() {
        let a = OrderId::from_parts(1_000, [0xFF; 10]);
        let b = OrderId::from_parts(1_001, [0; 10]);
        assert!(a < b);
    }

    #[test]
    fn rejects_non_canonical() {
        for s in [
            "",
            "01ARYZ6S41",
            "01aryz6s410000000000000000",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "01ARYZ6S41000000000000000I",
            "01ARYZ6S41000000000000000U",
            "01ARYZ6S4100000000000000000",
            "../../etc/passwd0000000000",
        ] {
            assert!(OrderId::parse(s).is_err(), "{s}");
        }
    }
}
