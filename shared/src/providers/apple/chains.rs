//! Chains already verified. Apple signs every transaction and notification with the same
//! few leaf and intermediate certificates, so verifying each chain anew repeats three
//! certificate parses and two certificate signatures per call, most of the cost of a signed
//! transaction. A chain that passed every check against one set of trust roots is kept by
//! its fingerprint, with the window in which its three certificates (leaf, intermediate and
//! the root it chains to) are all valid; a repeat then costs a hash and the window check at
//! its own `signedDate`, and the JWS signature is still verified every time.
//!
//! Only chains that passed are kept, so a forged or broken chain is verified in full every
//! time and can never fill the cache; a chain with any other certificate, or checked against
//! other roots (each [`super::wire::TrustRoots`] has its own), is a miss. In memory only,
//! bounded: Apple rotates its certificates rarely, so a handful of entries is plenty.

use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many chains are remembered; the oldest goes first.
const CAPACITY: usize = 16;

/// A leaf's key as the JWS signature check needs it: the curve OID and the public point.
pub(super) type LeafKey = (String, Vec<u8>);

/// What a verified chain is remembered by and with.
#[derive(Debug, Clone)]
pub(super) struct Verified {
    pub key: LeafKey,
    /// Unix seconds: the latest `notBefore` and the earliest `notAfter` of the three.
    pub valid_from: i64,
    pub valid_until: i64,
}

#[derive(Debug, Default)]
pub(super) struct VerifiedChains {
    entries: Mutex<VecDeque<([u8; 32], Verified)>>,
}

/// SHA-256 over both certificates, the leaf's length first so that no two pairs share an
/// input.
pub(super) fn fingerprint(leaf_der: &[u8], inter_der: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((leaf_der.len() as u64).to_be_bytes());
    h.update(leaf_der);
    h.update(inter_der);
    h.finalize().into()
}

impl VerifiedChains {
    pub(super) fn get(&self, fingerprint: &[u8; 32]) -> Option<Verified> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|(fp, _)| fp == fingerprint)
            .map(|(_, v)| v.clone())
    }

    pub(super) fn insert(&self, fingerprint: [u8; 32], verified: Verified) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.iter().any(|(fp, _)| *fp == fingerprint) {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back((fingerprint, verified));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: i64) -> Verified {
        Verified {
            key: ("curve".into(), vec![n as u8]),
            valid_from: n,
            valid_until: n + 10,
        }
    }

    #[test]
    fn bounded_oldest_first_and_keyed_by_both_certificates() {
        let c = VerifiedChains::default();
        let a = fingerprint(b"leaf", b"inter");
        assert_ne!(a, fingerprint(b"leafinter", b""), "the split point counts");
        assert_ne!(a, fingerprint(b"leaf", b"other"));
        c.insert(a, v(0));
        assert_eq!(c.get(&a).unwrap().valid_from, 0);
        for i in 1..=CAPACITY as i64 {
            c.insert(fingerprint(b"leaf", &i.to_be_bytes()), v(i));
        }
        assert_eq!(c.len(), CAPACITY);
        assert!(c.get(&a).is_none(), "the oldest went first");
        let last = fingerprint(b"leaf", &(CAPACITY as i64).to_be_bytes());
        assert_eq!(c.get(&last).unwrap().valid_from, CAPACITY as i64);
    }
}
