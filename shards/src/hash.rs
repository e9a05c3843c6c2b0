//! The stable ownership hash.
//!
//! A room or user ID belongs to shard `u64_be(sha256(id)[0..8]) mod nr_shards`.
//! SHA-256 is used rather than the standard library's hasher because the
//! mapping must be the same in every build, on every machine and in tools
//! written in other languages (the black-box tests compute it in Python).

use sha2::{Digest, Sha256};

use crate::ShardId;

/// Returns the shard that owns `id` when the server runs `nr_shards` shards.
#[must_use]
pub fn shard_of(id: &str, nr_shards: usize) -> ShardId {
    debug_assert!(nr_shards > 0, "a server has at least one shard");
    let digest = Sha256::digest(id.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    let value = u64::from_be_bytes(prefix);
    let nr_shards = u64::try_from(nr_shards.max(1)).unwrap_or(u64::MAX);
    usize::try_from(value % nr_shards).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    /// Expected shards computed outside Rust with Python's `hashlib`:
    /// `int.from_bytes(sha256(id).digest()[:8], "big") % n`.
    const KNOWN: &[(&str, [usize; 4])] = &[
        ("@alice:localhost", [0, 1, 0, 2]),
        ("@bob:localhost", [0, 1, 1, 5]),
        ("!room:localhost", [0, 1, 0, 5]),
    ];

    #[test]
    fn matches_python_hashlib() {
        for (id, expected) in KNOWN {
            for (n, shard) in [1, 2, 3, 7].into_iter().zip(expected) {
                assert_eq!(shard_of(id, n), *shard, "{id} with {n} shards");
            }
        }
    }

    #[test]
    fn spreads_over_shards() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[shard_of(&format!("@user{i}:localhost"), 4)] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "uneven spread: {counts:?}");
        }
    }
}
