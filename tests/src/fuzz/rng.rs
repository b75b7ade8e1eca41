//! SplitMix64: a tiny, seedable, reproducible generator. Every fuzz run draws from its own
//! generator, derived from (campaign seed, target, run index), so any single run can be
//! replayed from those three numbers without replaying the runs before it.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The generator of run `index` of `target` in the campaign `seed`.
    pub fn for_run(seed: u64, target: &str, index: u64) -> Self {
        let mut h = Rng(seed ^ 0x5851_f42d_4c95_7f2d);
        for b in target.bytes() {
            h.0 ^= u64::from(b);
            h.next_u64();
        }
        h.0 ^= index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h.next_u64();
        h
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den as usize) < num as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_run(7, "t", 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_run(7, "t", 3).next_u64(),
            Rng::for_run(7, "t", 4).next_u64()
        );
        assert_ne!(
            Rng::for_run(7, "t", 3).next_u64(),
            Rng::for_run(7, "u", 3).next_u64()
        );
    }
}
