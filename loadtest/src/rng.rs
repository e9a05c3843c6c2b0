//! Seeded random choices: the room of each send, weighted choices such as
//! Zipf-distributed room popularity, and shuffles.
//!
//! The room of send number `index` depends only on the seed and `index`, so a
//! run with the same `--seed` spreads its sends over the rooms in the same way
//! whichever worker thread makes each send.

/// The output function of `SplitMix64`: a bijective mix of all 64 bits, used to turn
/// the seed and index into a well-spread, nonzero xorshift state.
pub fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The xorshift64* generator: Marsaglia's xorshift with a multiplied output.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        // The all-zero state is a fixed point of xorshift, so it is replaced.
        let state = splitmix64(seed);
        Self {
            state: if state == 0 {
                0x2545_F491_4F6C_DD1D
            } else {
                state
            },
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Returns a uniform value in `[0, 1)` from the top 53 bits.
    #[allow(clippy::cast_precision_loss)]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Returns a uniform index below `len`, which must be at least 1.
    pub fn below(&mut self, len: usize) -> usize {
        let len = u64::try_from(len.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % len).unwrap_or(0)
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            items.swap(last, self.below(last + 1));
        }
    }
}

/// Returns the Zipf weights `1 / (k + 1)^exponent` of the indices
/// `0..count`: index 0 is the most popular.
pub fn zipf_weights(count: usize, exponent: f64) -> Vec<f64> {
    (0..count)
        .map(|k| {
            #[allow(clippy::cast_precision_loss)]
            let rank = (k + 1) as f64;
            rank.powf(-exponent)
        })
        .collect()
}

/// Picks an index with probability proportional to its weight, among the
/// indices for which `allowed` returns true. Returns `None` when no allowed
/// index has a positive weight.
pub fn pick_weighted(
    rng: &mut XorShift64,
    weights: &[f64],
    allowed: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total: f64 = (0..weights.len())
        .filter(|&index| allowed(index))
        .map(|index| weights[index])
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut target = rng.next_f64() * total;
    let mut last_allowed = None;
    for (index, &weight) in weights.iter().enumerate() {
        if !allowed(index) || weight <= 0.0 {
            continue;
        }
        if target < weight {
            return Some(index);
        }
        target -= weight;
        last_allowed = Some(index);
    }
    // Rounding can leave `target` just above the last weight.
    last_allowed
}

/// Returns the index, below `nr_rooms`, of the room that send `index` goes to.
/// `nr_rooms` must be at least 1.
pub fn pick_room(seed: u64, index: u64, nr_rooms: usize) -> usize {
    let mut rng = XorShift64::new(seed ^ splitmix64(index));
    let nr_rooms = u64::try_from(nr_rooms.max(1)).unwrap_or(u64::MAX);
    // The modulo bias is below nr_rooms / 2^64, far too small to matter.
    usize::try_from(rng.next_u64() % nr_rooms).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{XorShift64, pick_room, pick_weighted, zipf_weights};

    #[test]
    fn same_seed_same_rooms() {
        let first: Vec<usize> = (0..100).map(|i| pick_room(7, i, 5)).collect();
        let second: Vec<usize> = (0..100).map(|i| pick_room(7, i, 5)).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn different_seed_different_rooms() {
        let first: Vec<usize> = (0..100).map(|i| pick_room(1, i, 5)).collect();
        let second: Vec<usize> = (0..100).map(|i| pick_room(2, i, 5)).collect();
        assert_ne!(first, second);
    }

    #[test]
    fn rooms_are_in_range_and_all_used() {
        let mut counts = [0u32; 4];
        for index in 0..4000 {
            counts[pick_room(42, index, 4)] += 1;
        }
        for count in counts {
            assert!(
                (800..1200).contains(&count),
                "uneven room choice: {counts:?}"
            );
        }
    }

    #[test]
    fn one_room_is_always_zero() {
        assert!((0..50).all(|i| pick_room(3, i, 1) == 0));
    }

    #[test]
    fn zero_seed_does_not_stick() {
        let mut rng = XorShift64::new(0);
        let first = rng.next_u64();
        assert_ne!(first, 0);
        assert_ne!(rng.next_u64(), first);
    }

    #[test]
    fn next_f64_is_in_unit_interval() {
        let mut rng = XorShift64::new(5);
        for _ in 0..10_000 {
            let value = rng.next_f64();
            assert!((0.0..1.0).contains(&value), "{value}");
        }
    }

    #[test]
    fn zipf_weights_fall_with_rank() {
        let weights = zipf_weights(4, 1.0);
        for (weight, expected) in weights.into_iter().zip([1.0, 0.5, 1.0 / 3.0, 0.25]) {
            assert!((weight - expected).abs() < 1e-12, "{weight} != {expected}");
        }
        assert_eq!(zipf_weights(3, 0.0), [1.0, 1.0, 1.0]);
    }

    #[test]
    fn zipf_choice_follows_weights() {
        let weights = zipf_weights(4, 1.0);
        let mut rng = XorShift64::new(11);
        let mut counts = [0u32; 4];
        for _ in 0..20_800 {
            counts[pick_weighted(&mut rng, &weights, |_| true).unwrap()] += 1;
        }
        // The weights 1, 1/2, 1/3, 1/4 sum to 25/12, so the expected
        // counts are 9984, 4992, 3328 and 2496.
        for (count, expected) in counts.into_iter().zip([9984.0, 4992.0, 3328.0, 2496.0]) {
            let deviation = (f64::from(count) - expected).abs() / expected;
            assert!(deviation < 0.05, "counts {counts:?}");
        }
    }

    #[test]
    fn weighted_choice_skips_excluded() {
        let weights = [1.0, 1.0, 1.0];
        let mut rng = XorShift64::new(3);
        for _ in 0..1000 {
            assert_eq!(pick_weighted(&mut rng, &weights, |i| i == 1), Some(1));
        }
        assert_eq!(pick_weighted(&mut rng, &weights, |_| false), None);
        assert_eq!(pick_weighted(&mut rng, &[0.0, 0.0], |_| true), None);
        assert_eq!(pick_weighted(&mut rng, &[], |_| true), None);
    }

    #[test]
    fn weighted_choice_is_seeded() {
        let weights = zipf_weights(10, 1.2);
        let picks = |seed| {
            let mut rng = XorShift64::new(seed);
            (0..50)
                .map(|_| pick_weighted(&mut rng, &weights, |_| true).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(9), picks(9));
        assert_ne!(picks(9), picks(10));
    }

    #[test]
    fn shuffle_is_seeded_permutation() {
        let shuffled = |seed| {
            let mut items: Vec<u32> = (0..20).collect();
            XorShift64::new(seed).shuffle(&mut items);
            items
        };
        let first = shuffled(4);
        assert_eq!(first, shuffled(4));
        assert_ne!(first, (0..20).collect::<Vec<_>>());
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    }
}
