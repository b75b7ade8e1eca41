//! FNV-1a, the hash every shard assignment uses (the due index, the day counters): stable
//! across processes and builds, unlike `DefaultHasher`, and not security relevant.

/// FNV-1a (32 bits) of `bytes`, in the order given.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u32 {
    bytes.into_iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        // The reference values of the FNV-1a 32-bit test suite.
        assert_eq!(super::fnv1a(*b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a(*b"a"), 0xe40c_292c);
        assert_eq!(super::fnv1a(*b"foobar"), 0xbf9c_f968);
    }
}
