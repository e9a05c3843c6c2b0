//! Sync tokens and pagination tokens.
//!
//! A sync token `s<p0>_<p1>_…` lists one stream position per shard. A token
//! made under another shard count still works: the smallest of its positions
//! stands for every shard, which may repeat events but never skips one.
//! A pagination token `t<pos>` is a boundary in one room's timeline:
//! backwards pagination returns events before it, forwards from it.

/// Formats the frontier vector as a sync token.
#[must_use]
pub fn format_sync(frontier: &[u64]) -> String {
    let parts: Vec<String> = frontier.iter().map(u64::to_string).collect();
    format!("s{}", parts.join("_"))
}

/// Parses a sync token into one position per shard of `nr_shards`.
#[must_use]
pub fn parse_sync(token: &str, nr_shards: usize) -> Option<Vec<u64>> {
    let body = token.strip_prefix('s')?;
    let positions = body
        .split('_')
        .map(str::parse::<u64>)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    if positions.is_empty() {
        return None;
    }
    if positions.len() == nr_shards {
        return Some(positions);
    }
    let lowest = positions.iter().copied().min()?;
    Some(vec![lowest; nr_shards])
}

/// Returns a room-timeline boundary from a `t` token or from a sync token, given the
/// position index `shard` of the room's owner.
#[must_use]
pub fn parse_boundary(token: &str, shard: usize, nr_shards: usize) -> Option<u64> {
    if let Some(pos) = token.strip_prefix('t') {
        return pos.parse().ok();
    }
    // Everything up to a sync token's position was delivered: the boundary
    // sits just after it.
    parse_sync(token, nr_shards)?
        .get(shard)
        .map(|pos| pos.saturating_add(1))
}

/// Formats a room-timeline boundary.
#[must_use]
pub fn format_boundary(pos: u64) -> String {
    format!("t{pos}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_token_round_trips() {
        let token = format_sync(&[5, 9]);
        assert_eq!(token, "s5_9");
        assert_eq!(parse_sync(&token, 2), Some(vec![5, 9]));
    }

    #[test]
    fn other_shard_count_takes_minimum() {
        assert_eq!(parse_sync("s5_9", 3), Some(vec![5, 5, 5]));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_sync("x1", 2), None);
        assert_eq!(parse_sync("s1_x", 2), None);
        assert_eq!(parse_boundary("t", 0, 1), None);
    }

    #[test]
    fn boundary_from_sync_token_is_after_position() {
        assert_eq!(parse_boundary("s5_9", 1, 2), Some(10));
        assert_eq!(parse_boundary("t42", 0, 2), Some(42));
    }
}
