//! The few cryptographic primitives every part of Tollgate shares: constant-time comparison,
//! random bytes and base64. One definition each, on aws-lc-rs (the AWS SDK's own stack), so
//! that a signature check anywhere compares the same way.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// Compares two byte strings in time that depends only on their lengths, so a forged MAC
/// or signature learns nothing from how long the refusal took.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    #[allow(deprecated)]
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// `N` bytes from the system's cryptographic random number generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // aws-lc aborts the process itself if the system RNG fails; an error here cannot
    // happen on a working system and leaves nothing sensible to continue with.
    aws_lc_rs::rand::fill(&mut b).expect("system random number generator");
    b
}

/// Base64, standard alphabet, padded.
pub fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Base64, standard alphabet; whitespace is not accepted.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_encodes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert_eq!(b64_encode(b"hi"), "aGk=");
        assert_eq!(b64_decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(b64_decode("a Gk="), None);
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }
}
