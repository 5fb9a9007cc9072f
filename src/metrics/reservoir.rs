//! A fixed-size uniform sample of a stream, for rank tests: [`Reservoir`].
//!
//! # Method
//!
//! Vitter's Algorithm R: the first `capacity` values are kept; the `i`-th value after that
//! (1-based over the whole stream) replaces a random slot with probability `capacity / i`. Every
//! value seen is then kept with the same probability. The generator is a seeded SplitMix64
//! (Steele, Lea & Flood 2014; plain, `Clone`able state, unlike `rand`'s `StdRng`), so a run is
//! reproducible.
//!
//! Merging two reservoirs of streams of sizes `a` and `b` keeps `round(capacity · a / (a + b))`
//! values drawn at random from the first and fills the rest from the second (each clamped to
//! what is available): an approximately uniform sample of the union. When both hold their
//! whole stream and fit together, the merge is exact.

/// SplitMix64: a tiny seeded generator, good enough to pick sample slots.
#[derive(Debug, Clone)]
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` for `n > 0` (multiply-shift; the bias, below `n / 2^64`, is
    /// negligible here).
    fn below(&mut self, n: u64) -> u64 {
        // The high half of a 64×64-bit product is < n, so it fits in u64.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index in `lo..hi` for `lo < hi`.
    fn index_in(&mut self, lo: usize, hi: usize) -> usize {
        // usize ↔ u64 is lossless on every supported (≤ 64-bit) target.
        lo + self.below((hi - lo) as u64) as usize
    }
}

/// A seeded, fixed-capacity uniform sample of `u64` values. Memory: O(capacity).
#[derive(Debug, Clone)]
pub(super) struct Reservoir {
    capacity: usize,
    seen: u64,
    values: Vec<u64>,
    rng: SplitMix64,
}

impl Reservoir {
    /// An empty reservoir keeping at most `capacity` values.
    pub(super) fn new(capacity: usize, seed: u64) -> Self {
        Self {
            capacity,
            seen: 0,
            values: Vec::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Offers one value from the stream.
    ///
    /// Time: O(1).
    pub(super) fn offer(&mut self, value: u64) {
        self.seen += 1;
        if self.values.len() < self.capacity {
            self.values.push(value);
            return;
        }
        let slot = self.rng.below(self.seen);
        // slot < capacity ≤ usize::MAX, so the conversion is lossless when taken.
        if let Ok(slot) = usize::try_from(slot)
            && slot < self.capacity
        {
            self.values[slot] = value;
        }
    }

    /// The values kept, in no particular order.
    pub(super) fn values(&self) -> &[u64] {
        &self.values
    }

    /// Adds `other`'s stream to this one (approximately uniform; see the [module docs](self)).
    ///
    /// Time: O(capacity).
    pub(super) fn merge(&mut self, other: &Self) {
        let total = self.seen + other.seen;
        if self.values.len() + other.values.len() <= self.capacity {
            self.values.extend_from_slice(&other.values);
            self.seen = total;
            return;
        }
        // total > 0 here; counts below 2^53 convert exactly to f64, and 0 ≤ share ≤ capacity,
        // so rounding it back to usize is exact.
        let share = self.capacity as f64 * self.seen as f64 / total as f64;
        let from_self = (share.round() as usize)
            .max(self.capacity.saturating_sub(other.values.len()))
            .min(self.values.len());
        let from_other = (self.capacity - from_self).min(other.values.len());
        let mut theirs = other.values.clone();
        choose_in_place(&mut self.values, from_self, &mut self.rng);
        choose_in_place(&mut theirs, from_other, &mut self.rng);
        self.values.extend_from_slice(&theirs);
        self.seen = total;
    }
}

/// Keeps `k` values of `values` chosen uniformly without replacement (a partial Fisher–Yates
/// shuffle); `k` is at most `values.len()`.
///
/// Time: O(k).
pub(super) fn choose_in_place(values: &mut Vec<u64>, k: usize, rng: &mut SplitMix64) {
    for i in 0..k.min(values.len()) {
        let j = rng.index_in(i, values.len());
        values.swap(i, j);
    }
    values.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_until_full_then_samples_uniformly() {
        let mut r = Reservoir::new(100, 1);
        (0..50).for_each(|v| r.offer(v));
        assert_eq!(r.values(), (0..50).collect::<Vec<_>>());
        (50..100_000).for_each(|v| r.offer(v));
        assert_eq!(r.values().len(), 100);
        // A uniform sample of 0..100000 has mean ≈ 50000 (sd of the mean ≈ 2900).
        let mean = r.values().iter().sum::<u64>() / 100;
        assert!((35_000..65_000).contains(&mean), "{mean}");
    }

    #[test]
    fn merge_weights_by_stream_size() {
        let mut small = Reservoir::new(100, 2);
        (0..1000).for_each(|_| small.offer(1));
        let mut large = Reservoir::new(100, 3);
        (0..3000).for_each(|_| large.offer(2));
        small.merge(&large);
        assert_eq!(small.values().len(), 100);
        assert_eq!(small.values().iter().filter(|&&v| v == 1).count(), 25);
        assert_eq!(small.seen, 4000);
    }

    #[test]
    fn merge_of_partial_reservoirs_is_exact() {
        let mut a = Reservoir::new(10, 4);
        (0..3).for_each(|v| a.offer(v));
        let mut b = Reservoir::new(10, 5);
        (3..7).for_each(|v| b.offer(v));
        a.merge(&b);
        assert_eq!(a.values(), [0, 1, 2, 3, 4, 5, 6]);
    }
}
