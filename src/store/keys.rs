//! Key builders for the store's maps. Parts are joined with a 0x00 byte,
//! which no Matrix ID or accepted state key contains. Positions are 8-byte
//! big-endian, so key order is position order.

/// Joins `parts` with 0x00 separators.
#[must_use]
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

/// Key prefix selecting every row that starts with `id`.
#[must_use]
pub fn prefix(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key
}

/// `room_id 0x00 pos` in `roomid_pos_eventid`.
#[must_use]
pub fn timeline(room_id: &str, pos: u64) -> Vec<u8> {
    let mut key = prefix(room_id);
    key.extend_from_slice(&pos.to_be_bytes());
    key
}

/// Decodes the position from a `roomid_pos_eventid` key.
#[must_use]
pub fn timeline_pos(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    if key.len() >= 8 {
        bytes.copy_from_slice(&key[key.len() - 8..]);
    }
    u64::from_be_bytes(bytes)
}

/// `room_id 0x00 event_type 0x00 state_key` in `roomid_type_statekey_eventid`.
#[must_use]
pub fn state(room_id: &str, event_type: &str, state_key: &str) -> Vec<u8> {
    join(&[
        room_id.as_bytes(),
        event_type.as_bytes(),
        state_key.as_bytes(),
    ])
}

/// `room_id 0x00 event_type 0x00 state_key 0x00 pos` in
/// `roomid_type_statekey_pos_eventid`: every state event ever applied.
#[must_use]
pub fn state_history(room_id: &str, event_type: &str, state_key: &str, pos: u64) -> Vec<u8> {
    let mut key = state(room_id, event_type, state_key);
    key.push(0);
    key.extend_from_slice(&pos.to_be_bytes());
    key
}

/// Splits a `roomid_type_statekey_pos_eventid` key into type, state key and
/// position.
#[must_use]
pub fn split_state_history(key: &[u8]) -> Option<(String, String, u64)> {
    if key.len() < 9 {
        return None;
    }
    let (head, pos) = key.split_at(key.len() - 9);
    let pos = timeline_pos(pos);
    let mut parts = head.splitn(3, |b| *b == 0).skip(1);
    let kind = String::from_utf8_lossy(parts.next()?).into_owned();
    let state_key = String::from_utf8_lossy(parts.next()?).into_owned();
    Some((kind, state_key, pos))
}

/// `user_id 0x00 second` for the maps keyed by user and one more ID.
#[must_use]
pub fn pair(first: &str, second: &str) -> Vec<u8> {
    join(&[first.as_bytes(), second.as_bytes()])
}

/// Returns the part after the last 0x00 separator as text.
#[must_use]
pub fn last_part(key: &[u8]) -> String {
    let start = key.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&key[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_keys_sort_by_position() {
        let a = timeline("!r:x", 255);
        let b = timeline("!r:x", 256);
        assert!(a < b);
        assert_eq!(timeline_pos(&b), 256);
    }

    #[test]
    fn prefix_does_not_match_longer_ids() {
        let key = pair("@ab:x", "!r");
        assert!(!key.starts_with(&prefix("@a")));
        assert!(key.starts_with(&prefix("@ab:x")));
    }

    #[test]
    fn state_history_key_round_trips() {
        let key = state_history("!r:x", "m.room.member", "@u:x", 77);
        assert_eq!(
            split_state_history(&key),
            Some(("m.room.member".into(), "@u:x".into(), 77))
        );
        let empty = state_history("!r:x", "m.room.name", "", 1);
        assert_eq!(
            split_state_history(&empty),
            Some(("m.room.name".into(), String::new(), 1))
        );
    }

    #[test]
    fn last_part_of_state_key() {
        assert_eq!(last_part(&state("!r", "m.room.member", "@u:x")), "@u:x");
        assert_eq!(last_part(&state("!r", "m.room.name", "")), "");
    }
}
