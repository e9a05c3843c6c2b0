//! Spread of a set of IDs over a candidate number of shards.

use std::fmt::Write as _;

use eltrix_shards::shard_of;

/// Number of IDs each shard owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    /// IDs owned by each shard, indexed by shard ID.
    pub counts: Vec<u64>,
}

impl Spread {
    /// Assigns every ID to its owning shard with the server's ownership hash.
    ///
    /// `nr_shards` must be at least 1.
    pub fn compute<'a>(ids: impl IntoIterator<Item = &'a str>, nr_shards: usize) -> Self {
        let mut counts = vec![0u64; nr_shards];
        for id in ids {
            counts[shard_of(id, nr_shards)] += 1;
        }
        Self { counts }
    }

    /// Total number of IDs.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean number of IDs per shard.
    pub fn mean(&self) -> f64 {
        to_f64(self.total()) / to_f64(self.counts.len() as u64)
    }

    /// Number of IDs on the fullest shard.
    pub fn max(&self) -> u64 {
        self.counts.iter().copied().max().unwrap_or(0)
    }

    /// Number of IDs on the emptiest shard.
    pub fn min(&self) -> u64 {
        self.counts.iter().copied().min().unwrap_or(0)
    }

    /// Ratio of the fullest shard to the mean: 1.0 is a perfectly even spread,
    /// 2.0 means one shard owns twice its fair share. Returns `None` when
    /// there are no IDs.
    pub fn skew(&self) -> Option<f64> {
        let mean = self.mean();
        (mean > 0.0).then(|| to_f64(self.max()) / mean)
    }

    /// Formats one line per shard, then the totals and the skew.
    pub fn format_table(&self) -> String {
        let total = self.total();
        let mut table = String::from("shard       ids   share\n");
        for (shard_id, count) in self.counts.iter().enumerate() {
            let share = 100.0 * to_f64(*count) / to_f64(total.max(1));
            let _ = writeln!(table, "{shard_id:>5} {count:>9} {share:>6.2}%");
        }
        let _ = writeln!(table, "total {total:>9}");
        let _ = writeln!(
            table,
            "min {}, max {}, mean {:.2}",
            self.min(),
            self.max(),
            self.mean()
        );
        match self.skew() {
            Some(skew) => {
                let _ = writeln!(table, "skew (max / mean) {skew:.4}");
            }
            None => table.push_str("skew (max / mean) undefined: no IDs\n"),
        }
        table
    }
}

/// Converts a count to `f64`. Counts here stay far below 2^53, where the
/// conversion is exact.
#[allow(clippy::cast_precision_loss)]
fn to_f64(count: u64) -> f64 {
    count as f64
}

/// Returns the IDs in `text`, one per line, with surrounding whitespace
/// removed and blank lines skipped.
pub fn parse_ids(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use eltrix_shards::shard_of;

    use super::{Spread, parse_ids};

    #[test]
    fn compute_counts_every_id_once() {
        let ids: Vec<String> = (0..1000).map(|i| format!("!room{i}:localhost")).collect();
        let spread = Spread::compute(ids.iter().map(String::as_str), 3);
        assert_eq!(spread.counts.len(), 3);
        assert_eq!(spread.total(), 1000);
    }

    #[test]
    fn compute_matches_shard_of() {
        let ids = ["@alice:localhost", "@bob:localhost", "!room:localhost"];
        let spread = Spread::compute(ids, 7);
        let mut expected = vec![0u64; 7];
        for id in ids {
            expected[shard_of(id, 7)] += 1;
        }
        assert_eq!(spread.counts, expected);
    }

    #[test]
    fn skew_of_even_spread_is_one() {
        let spread = Spread {
            counts: vec![5, 5, 5, 5],
        };
        assert_eq!(spread.max(), 5);
        assert_eq!(spread.min(), 5);
        assert!((spread.mean() - 5.0).abs() < 1e-9);
        assert!((spread.skew().unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn skew_of_uneven_spread() {
        let spread = Spread {
            counts: vec![6, 2, 0, 0],
        };
        assert!((spread.mean() - 2.0).abs() < 1e-9);
        assert_eq!(spread.max(), 6);
        assert_eq!(spread.min(), 0);
        assert!((spread.skew().unwrap() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn skew_without_ids_is_none() {
        let spread = Spread::compute(std::iter::empty(), 4);
        assert_eq!(spread.total(), 0);
        assert_eq!(spread.skew(), None);
        assert!(spread.format_table().contains("undefined"));
    }

    #[test]
    fn table_lists_each_shard() {
        let table = Spread { counts: vec![3, 1] }.format_table();
        assert!(table.contains("    0         3  75.00%"), "{table}");
        assert!(table.contains("    1         1  25.00%"), "{table}");
        assert!(table.contains("total         4"), "{table}");
        assert!(table.contains("skew (max / mean) 1.5000"), "{table}");
    }

    #[test]
    fn parse_ids_skips_blank_lines() {
        let text = "  @a:x \n\n\t!r:x\r\n   \n";
        assert_eq!(parse_ids(text), vec!["@a:x", "!r:x"]);
    }
}
