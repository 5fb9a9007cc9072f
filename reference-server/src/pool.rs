//! The block pool: a fixed number of blocks, each 256 tokens of one layer.
//!
//! The pool only counts. Who holds which blocks (agents' caches, in-flight reservations) is
//! [`super::agents`]'s business; the pool guarantees that `used` never exceeds `total` and never
//! goes below zero, and remembers the peak.

/// Counts of a fixed pool of blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockPool {
    total: u64,
    used: u64,
    peak: u64,
}

impl BlockPool {
    /// An empty pool of `total` blocks.
    pub(crate) fn new(total: u64) -> Self {
        Self {
            total,
            used: 0,
            peak: 0,
        }
    }

    /// Blocks in the pool.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Blocks in use.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Most blocks ever in use at once.
    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }

    /// Blocks not in use.
    pub(crate) fn free(&self) -> u64 {
        self.total - self.used
    }

    /// Takes `n` blocks; `false` (and nothing taken) if fewer are free.
    pub(crate) fn allocate(&mut self, n: u64) -> bool {
        if n > self.free() {
            return false;
        }
        self.used += n;
        self.peak = self.peak.max(self.used);
        true
    }

    /// Returns `n` blocks.
    ///
    /// # Panics
    /// In debug builds, if more blocks are freed than are in use (a bookkeeping bug); release
    /// builds clamp at zero.
    pub(crate) fn release(&mut self, n: u64) {
        debug_assert!(n <= self.used, "freeing {n} blocks, {} in use", self.used);
        self.used = self.used.saturating_sub(n);
    }
}

/// `part / whole` as a float, 0 when `whole` is 0.
pub(crate) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        // Block counts are far below 2^52, so the conversions are exact.
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_and_release_balance_and_track_the_peak() {
        let mut pool = BlockPool::new(10);
        assert!(pool.allocate(4));
        assert!(pool.allocate(6));
        assert!(!pool.allocate(1), "full pool refuses");
        assert_eq!(pool.used(), 10);
        pool.release(7);
        assert_eq!((pool.used(), pool.free(), pool.peak()), (3, 7, 10));
        assert!((ratio(pool.used(), pool.total()) - 0.3).abs() < 1e-9);
        pool.release(3);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn empty_pool_has_zero_utilization() {
        assert!(ratio(0, 0).abs() < f64::EPSILON);
        assert!(!BlockPool::new(0).allocate(1));
    }
}
