//! Seeded choice of the room for each send.
//!
//! The room of send number `index` depends only on the seed and `index`, so a
//! run with the same `--seed` spreads its sends over the rooms in the same way
//! whichever worker thread makes each send.

/// The output function of `SplitMix64`: a bijective mix of all 64 bits, used to turn
/// the seed and index into a well-spread, nonzero xorshift state.
fn splitmix64(value: u64) -> u64 {
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
    use super::{XorShift64, pick_room};

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
}
